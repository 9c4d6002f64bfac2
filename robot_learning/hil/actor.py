"""The HIL-SERL actor: run the current policy on a task, let the operator intervene, stream data.

One control tick: the policy samples an action (exploration) -> the teleop device reads the
operator (``device=expert``: the simulated operator) -> the executed action is the operator's
while ``intervene`` is held, else the policy's -> the environment steps -> the learned reward
model (``algo.reward=classifier``) scores the new observation and may end the episode -> the
transition is buffered. Every ``algo.send_every`` steps and at each episode end the buffer goes
to the learner and the newest weights the learner has streamed (a background thread keeps a
``StreamWeights`` call open) replace the policy's.

Connection loss never stops the robot's episode: transitions wait (up to ``algo.actor_buffer``,
the oldest dropped beyond that with a warning) while the actor reconnects with back-off, and
the learner is found again after a restart (a new ``Hello``). A refused handshake, a wrong token
or a learner silent for ``transport.give_up_s`` end the actor with an error naming the cause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import torch

from robot_learning.collect import write_json
from robot_learning.envs import TaskConfig, make_env
from robot_learning.hil.config import HilSerlConfig, TransportConfig
from robot_learning.hil.contract import HilContract, load_payload
from robot_learning.hil.messages import Transition, cast_observation, episode_summary
from robot_learning.hil.proto import hil_pb2 as pb
from robot_learning.hil.transport import PROTOCOL_VERSION, LearnerClient, TransportError
from robot_learning.training.progress import GracefulStop

log = logging.getLogger(__name__)

#: gRPC codes after which the actor reconnects instead of failing
RETRYABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.FAILED_PRECONDITION,  # the learner restarted and does not know us: Hello again
)


@dataclass
class ActorStats:
    """What one actor did (``actor.json``)."""

    actor_id: str
    episodes: int = 0
    env_steps: int = 0
    successes: int = 0
    interventions: int = 0
    intervention_steps: int = 0
    sent: int = 0
    dropped: int = 0
    reconnects: int = 0
    versions: list[int] = field(default_factory=list)
    """Every policy version the actor loaded, in order."""
    stopped: str = "learner"


class LearnerLink:
    """The actor's session with the learner: handshake and pushes with retry (weights arrive by :class:`WeightStream`)."""

    def __init__(
        self, transport: TransportConfig, actor_id: str, contract: HilContract, stats: ActorStats
    ) -> None:
        self.client = LearnerClient(
            transport.learner, transport.security(), transport.timeout_s, transport.max_message_mb
        )
        self.transport, self.actor_id, self.contract, self.stats = (
            transport,
            actor_id,
            contract,
            stats,
        )
        self.connected = False
        self.learner_id = ""
        self.sequence = 0
        self._next_try = 0.0
        self._backoff = transport.retry_s
        self._last_contact = time.monotonic()

    def _fail(self, exc: grpc.RpcError) -> None:
        code = exc.code() if hasattr(exc, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise TransportError(
                f"the learner at {self.transport.learner} refused the token: use the learner's token= "
                "(or ROBOT_LEARNING_HIL_TOKEN)"
            ) from exc
        if code not in RETRYABLE:
            raise TransportError(f"learner call failed: {code}: {exc.details()}") from exc
        if self.connected:
            log.warning("lost the learner at %s (%s); reconnecting", self.transport.learner, code)
        self.connected = False
        self._next_try = time.monotonic() + self._backoff
        self._backoff = min(10.0, 2 * self._backoff)
        if time.monotonic() - self._last_contact > self.transport.give_up_s:
            raise TransportError(
                f"no answer from the learner at {self.transport.learner} for {self.transport.give_up_s:.0f} s; "
                "is it running (robot-learning hil learner), and are learner=, the port and TLS settings right?"
            ) from exc

    def ensure(self) -> bool:
        """Connected (say Hello when needed, at most once per back-off); False while unreachable."""
        if self.connected:
            return True
        if time.monotonic() < self._next_try:
            return False
        hello = pb.HelloRequest(
            protocol_version=PROTOCOL_VERSION,
            actor_id=self.actor_id,
            spec_sha256=self.contract.spec_hash,
            arch_sha256=self.contract.arch_hash,
        )
        try:
            reply = self.client.call("Hello", hello)
        except grpc.RpcError as exc:
            self._fail(exc)
            return False
        if not reply.accepted:
            raise TransportError(f"the learner refused this actor: {reply.reason}")
        if self.learner_id and reply.learner_id != self.learner_id:
            log.warning(
                "the learner restarted (new id %s); continuing with it", reply.learner_id[:8]
            )
        if self.learner_id:
            self.stats.reconnects += 1
        self.learner_id, self.connected = reply.learner_id, True
        self._backoff, self._last_contact = self.transport.retry_s, time.monotonic()
        return True

    def push(self, transitions: list[Transition], episodes: list[dict]) -> pb.PushReply | None:
        """Send one batch; None when it could not be delivered (the caller keeps it)."""
        if not self.ensure():
            return None
        batch = pb.TransitionBatch(
            actor_id=self.actor_id,
            sequence=self.sequence,
            transitions=[t.to_proto() for t in transitions],
            episodes=[episode_summary(e) for e in episodes],
        )
        try:
            reply = self.client.call("PushTransitions", batch)
        except grpc.RpcError as exc:
            self._fail(exc)
            return None
        self.sequence += 1
        self._last_contact = time.monotonic()
        return reply


class WeightStream:
    """A background thread that keeps the learner's ``StreamWeights`` call open and leaves the
    newest weights in a slot for the control loop (which never waits for the network).

    Each call has a deadline (``stream_s``) and is reopened when it expires; a lost learner is
    retried with back-off (the :class:`LearnerLink` decides when to give up). The learner ends
    the stream itself only when its run is over: :attr:`finished` then tells the actor to stop,
    even if its next push would come after the learner stopped answering. A refused token
    ends the thread and is raised by :meth:`newer_than`.
    """

    def __init__(self, link: LearnerLink, stream_s: float) -> None:
        self.link, self.stream_s = link, stream_s
        self._latest: pb.Weights | None = None
        self._error: TransportError | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._call: Any = None
        self.finished = False
        """True once the learner ended the stream (its run is over)."""
        self._thread = threading.Thread(target=self._run, name="hil-weights", daemon=True)

    def start(self) -> WeightStream:
        """Open the stream in the background."""
        self._thread.start()
        return self

    def newer_than(self, version: int) -> pb.Weights | None:
        """The newest streamed weights if newer than ``version``, else None."""
        if self._error is not None:
            raise self._error
        with self._lock:
            latest = self._latest
        return latest if latest is not None and latest.version > version else None

    def _run(self) -> None:
        retry = backoff = self.link.transport.retry_s
        while not self._stop.is_set():
            with self._lock:
                have = self._latest.version if self._latest is not None else 0
            request = pb.WeightsRequest(actor_id=self.link.actor_id, have_version=have)
            try:
                self._call = self.link.client.stream("StreamWeights", request, self.stream_s)
                for weights in self._call:
                    with self._lock:
                        self._latest = weights
                    backoff = retry
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if self._stop.is_set():
                    return
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    self._error = TransportError(
                        f"the learner at {self.link.transport.learner} refused the token: use the "
                        "learner's token= (or ROBOT_LEARNING_HIL_TOKEN)"
                    )
                    return
                if code != grpc.StatusCode.DEADLINE_EXCEEDED:  # expiry: reopen at once
                    self._stop.wait(backoff)
                    backoff = min(10.0, 2 * backoff)
                continue
            self.finished = True  # the learner ended the stream: its run is over
            return

    def close(self) -> None:
        """Cancel the open call and end the thread."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=5.0)


def run_actor(
    task: TaskConfig,
    algo_cfg: HilSerlConfig,
    transport: TransportConfig,
    actor_id: str = "actor-0",
    seed: int = 0,
    out: str | None = None,
    max_episodes: int | None = None,
    threads: int | None = 1,
) -> ActorStats:
    """Act until the learner says stop (or ``max_episodes``, or SIGINT/SIGTERM); see the module doc."""
    if threads is not None:
        torch.set_num_threads(threads)
    env = make_env(task)
    contract = HilContract.for_algo(env.features, algo_cfg)
    observations = contract.observations
    schema, stats = contract.schema, ActorStats(actor_id)
    policy = contract.build_actor()
    device = _device(algo_cfg, env)
    reward_model = _reward_model(algo_cfg)
    threshold = None if reward_model is None else algo_cfg.reward_threshold
    if reward_model is not None and threshold is None:
        threshold = reward_model.threshold
    link = LearnerLink(transport, actor_id, contract, stats)
    weights_stream = WeightStream(link, max(30.0, transport.timeout_s)).start()
    version, outbox, finished = 0, deque(), []
    low = np.asarray(contract.action.low, np.float32)
    high = np.asarray(contract.action.high, np.float32)

    def sync(force: bool = False) -> bool:
        """Push what is waiting, load the newest streamed weights; True when the learner said stop."""
        nonlocal version, finished
        stop = False
        while outbox or finished:
            chunk = [outbox.popleft() for _ in range(min(len(outbox), algo_cfg.send_every * 4))]
            reply = link.push(chunk, finished)
            if reply is None:
                outbox.extendleft(reversed(chunk))
                break
            stats.sent += len(chunk)
            finished, stop = [], reply.stop
            if not stop and algo_cfg.max_backlog is not None and not outbox:
                stop = wait_for_learner(reply.backlog_steps)
        while len(outbox) > algo_cfg.actor_buffer:
            outbox.popleft()
            stats.dropped += 1
        weights = weights_stream.newer_than(version)
        if weights is not None:
            load_payload(policy, weights.payload, weights.sha256)
            version = int(weights.version)
            stats.versions.append(version)
        return stop or weights_stream.finished

    def wait_for_learner(backlog: int) -> bool:
        """Pause while the learner is behind by more than ``algo.max_backlog`` steps; True on stop."""
        while backlog > algo_cfg.max_backlog:
            time.sleep(0.02)
            reply = link.push([], [])
            if reply is None:
                return False
            if reply.stop:
                return True
            backlog = reply.backlog_steps
        return False

    deadline = time.monotonic() + transport.give_up_s
    while version == 0:  # the first weights: never act with a network the learner does not have
        link.ensure()  # the handshake first: a refused actor learns why before waiting for weights
        sync()
        if version == 0:
            if time.monotonic() > deadline:
                raise TransportError(
                    f"no weights from the learner at {transport.learner} in {transport.give_up_s:.0f} s"
                )
            time.sleep(0.2)
    episode = 0
    with GracefulStop() as stop:
        while not stop.requested and (max_episodes is None or episode < max_episodes):
            obs, _ = env.reset(seed=seed + episode)
            if device is not None:
                device.reset(seed=seed + episode)
            ep = {
                "episode": episode,
                "episode_return": 0.0,
                "length": 0,
                "success": False,
                "interventions": 0,
                "intervention_steps": 0,
                "policy_version": version,
            }
            was_intervening, done, step, told_stop = False, False, 0, False
            while not done:
                with torch.no_grad():
                    policy_action = policy(observations.single(obs))[0][0].numpy()
                inp = device.read(obs, policy_action) if device is not None else None
                intervening = inp is not None and inp.intervene and inp.action is not None
                action = np.clip(
                    np.asarray(inp.action if intervening else policy_action, np.float32), low, high
                )
                next_obs, reward, terminated, truncated, info = env.step(action)
                success = bool(info.get("is_success", False))
                classifier_reward = 0.0
                if reward_model is not None:
                    said = reward_model.probability(next_obs) >= threshold
                    classifier_reward = float(said)
                    success = said
                    terminated = bool(terminated or (said and algo_cfg.reward == "classifier"))
                started = intervening and not was_intervening
                outbox.append(
                    Transition(
                        observation=cast_observation(obs, schema),
                        next_observation=cast_observation(next_obs, schema),
                        action=action,
                        policy_action=np.asarray(policy_action, np.float32),
                        is_intervention=intervening,
                        intervention_start=started,
                        source="human" if intervening else "policy",
                        policy_version=version,
                        env_reward=float(reward),
                        classifier_reward=classifier_reward,
                        terminated=bool(terminated),
                        truncated=bool(truncated),
                        episode=episode,
                        step=step,
                    )
                )
                ep["episode_return"] += float(
                    reward if algo_cfg.reward != "classifier" else classifier_reward
                )
                ep["length"] += 1
                ep["success"] = ep["success"] or success
                ep["interventions"] += int(started)
                ep["intervention_steps"] += int(intervening)
                was_intervening, obs, step = intervening, next_obs, step + 1
                done = bool(terminated or truncated)
                if not done and step % algo_cfg.send_every == 0:
                    told_stop = sync() or told_stop
            finished.append(ep)
            episode += 1
            stats.episodes, stats.env_steps = episode, stats.env_steps + ep["length"]
            stats.successes += int(ep["success"])
            stats.interventions += ep["interventions"]
            stats.intervention_steps += ep["intervention_steps"]
            if sync() or told_stop:
                break
        else:
            stats.stopped = "signal" if stop.requested else "max_episodes"
    sync()
    weights_stream.close()
    link.client.close()
    env.close()
    if out is not None:
        write_json(Path(out) / f"actor_{actor_id}.json", stats.__dict__)
    return stats


def _device(algo_cfg: HilSerlConfig, env: Any) -> Any:
    """The connected teleop device for interventions (None: no operator)."""
    if not algo_cfg.device:
        return None
    from hardware.teleop.base import TeleopContext, make_device

    device = make_device(
        algo_cfg.device, TeleopContext(env.features, env.fps, env, dict(algo_cfg.device_options))
    )
    device.connect()
    return device


def _reward_model(algo_cfg: HilSerlConfig) -> Any:
    """The learned success classifier (None unless ``algo.reward=classifier`` or a model is given)."""
    if not algo_cfg.reward_model:
        return None
    from robot_learning.runtime.reward import load_reward_model

    return load_reward_model(algo_cfg.reward_model)
