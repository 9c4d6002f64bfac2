"""Settings of HIL-SERL runs: the algorithm (``algo.*``) and the transport (``transport.*``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robot_learning.hil.transport import Security
from robot_learning.rl.algos.rlpd import RLPDConfig

#: how the learner turns a transition into the reward it trains on
REWARD_MODES = ("env", "classifier", "rlif")


@dataclass
class HilSerlConfig(RLPDConfig):
    """RLPD's hyper-parameters plus the human-in-the-loop settings (``configs/algo/hil_serl.yaml``)."""

    num_actors: int = 2
    """Actors ``finetune algo=hil_serl`` starts next to the learner (each its own process)."""
    max_actors: int = 8
    """Actors the learner accepts at once (one online-buffer ring each)."""
    device: str | None = "expert"
    """Teleop device of the actors for interventions (``expert``: the simulated operator);
    None: no interventions (plain actor/learner RLPD)."""
    device_options: dict[str, Any] = field(default_factory=dict)
    """``device.<key>`` options of the device (e.g. ``hold_steps`` of ``expert``)."""
    reward: str = "env"
    """``env`` (the task's reward), ``classifier`` (``reward_model``'s success as reward 1 and
    termination; the task's own reward is ignored) or ``rlif`` (-1 on the transition that led to
    each intervention, 0 otherwise: no task reward)."""
    reward_model: str | None = None
    """Checkpoint or bundle of a ``reward_classifier`` (needed for ``reward=classifier``)."""
    reward_threshold: float | None = None
    """Success when the classifier's probability >= this (None: the threshold the classifier
    chose on its held-out frames); raise it on a robot when false successes appear."""
    offline_rows: int = 100_000
    """Rows kept for intervention segments in the offline buffer (beside the demonstrations)."""
    publish_every: int = 20
    """Learner: new policy weights for the actors every this many actor updates."""
    send_every: int = 25
    """Actor: send buffered transitions every this many steps (and at every episode end)."""
    queue_limit: int = 20_000
    """Learner: transitions waiting to be stored before pushes are refused (back-pressure)."""
    actor_buffer: int = 20_000
    """Actor: transitions kept while the learner is unreachable (the oldest are dropped beyond)."""
    learner_images: bool = True
    """On a camera task (``obs=pixels``) the policy reads the cameras through ``algo.encoder``
    (pixel RL; frames travel to the learner); false: the policy reads the state keys and the
    cameras stay on the actors (e.g. for the reward classifier)."""
    max_backlog: int | None = 200
    """Actor: pause while the learner has more than this many received steps not yet trained on
    at its ``utd_ratio`` (keeps the update-to-data ratio in simulation, where actors outrun the
    learner); None: never pause (a real robot keeps acting and the learner trains as it can)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward not in REWARD_MODES:
            raise ValueError(f"hil_serl reward={self.reward!r} must be one of {REWARD_MODES}")
        if self.reward == "classifier" and not self.reward_model:
            raise ValueError(
                "hil_serl reward=classifier needs algo.reward_model=<checkpoint or bundle of a "
                "reward_classifier> (train one with `robot-learning train policy=reward_classifier`)"
            )
        small = [
            f"algo.{name}={getattr(self, name)}"
            for name in ("num_actors", "max_actors", "publish_every", "send_every", "queue_limit")
            if getattr(self, name) < 1
        ]
        if small:
            raise ValueError(f"{', '.join(small)}: must be >= 1")
        if self.num_actors > self.max_actors:
            raise ValueError(
                f"algo.num_actors={self.num_actors} > algo.max_actors={self.max_actors}"
            )


@dataclass
class TransportConfig:
    """Where the learner listens and how both sides authenticate (``transport.*``)."""

    host: str = "127.0.0.1"
    """Learner: the interface to bind (``0.0.0.0`` for every interface; use TLS then)."""
    port: int = 50051
    """Learner: the port to bind (0: any free port, written to ``learner_address.json``)."""
    learner: str = "127.0.0.1:50051"
    """Actor: the learner's ``host:port``."""
    token: str | None = None
    """Shared secret (or the ``ROBOT_LEARNING_HIL_TOKEN`` environment variable); required."""
    cert: str | None = None
    """PEM certificate of this side (learner: server certificate; actor: client certificate)."""
    key: str | None = None
    """PEM private key of ``cert``."""
    ca: str | None = None
    """Actor: PEM CA of the learner's certificate (turns TLS on)."""
    client_ca: str | None = None
    """Learner: PEM CA every actor certificate must be signed by (mutual TLS)."""
    server_name: str | None = None
    """Actor: name expected in the learner's certificate (default: the dialled host)."""
    max_message_mb: float = 64.0
    """Largest message either side accepts."""
    timeout_s: float = 10.0
    """Deadline of every call."""
    retry_s: float = 1.0
    """Actor: first wait before reconnecting (doubles up to 10 s)."""
    give_up_s: float = 300.0
    """Actor: stop with an error after this long without any answer from the learner."""

    def security(self) -> Security:
        """The :class:`~robot_learning.hil.transport.Security` of these settings."""
        return Security(
            token=self.token,
            cert=self.cert,
            key=self.key,
            ca=self.ca,
            client_ca=self.client_ca,
            server_name=self.server_name,
        )
