"""The settings of one RL fine-tuning run (``configs/finetune.yaml``)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from robot_learning.config import recorded_setting
from robot_learning.envs import TaskConfig

log = logging.getLogger(__name__)

#: warm-up of ``warmup_steps=null`` for runs of at least 50000 environment steps
DEFAULT_WARMUP_STEPS = 5_000

#: fields that may differ when resuming (everything else must match the checkpoint)
RESUMABLE_CHANGES = (
    "env_steps",
    "resume",
    "eval_every",
    "eval_episodes",
    "save_every",
    "keep_checkpoints",
    "log_every",
    "threads",
    "env_threads",
    "num_workers",
    "cluster",
    "device",
    "max_minutes",
)


@dataclass
class FinetuneConfig:
    """One off-policy run: task, algorithm, data flow, evaluation and checkpoints."""

    task: TaskConfig
    """Task to learn on (state observations)."""
    out: str
    """Run folder: ``checkpoints/``, ``tb/``, ``learning_curve.png``, ``finetune.json``."""
    algo: str = "sac"
    """Registered algorithm name (``robot_learning.rl.algos.ALGOS``)."""
    algo_overrides: dict[str, Any] = field(default_factory=dict)
    """Fields of the algorithm's ``Config`` dataclass."""
    env_steps: int = 100_000
    """Total environment steps (summed over the parallel environments)."""
    num_envs: int = 1
    """Environments stepped in lockstep by the collector."""
    env_threads: int = 1
    """Threads stepping the ``num_envs`` environments in parallel (state tasks; see
    :mod:`robot_learning.env_threads`); the run is the same for any value."""
    num_workers: int | None = None
    """Step the ``num_envs`` environments on this many Ray rollout workers, one environment each
    (so ``num_envs`` must equal it; :mod:`robot_learning.ray_envs`); the run is the same as
    without them. None: in this process."""
    cluster: str | None = None
    """With ``num_workers``: ``local`` (default: start Ray on this machine), ``auto`` (the Ray
    cluster started here with ``ray start``) or a cluster address ``HOST:PORT``."""
    warmup_steps: int | None = None
    """Uniform random actions for this many environment steps; updates start after them. None:
    ``min(5000, env_steps // 10)`` (the value recorded in ``out`` when resuming); an explicit value
    must be below ``env_steps``, else the run would make no update at all."""
    utd_ratio: float | None = None
    """Gradient updates per environment step (update-to-data ratio); None: the algorithm's own
    ``utd_ratio`` when its config has one (rlpd: its critic steps per actor step), else 1."""
    batch_size: int = 256
    """Transitions per update (half from demonstrations when ``demos`` is set)."""
    buffer_size: int = 1_000_000
    """Online replay capacity in rows (transitions plus one final observation per episode)."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """Steps in the n-step return (computed at sample time, cut at episode ends)."""
    demos: str | None = None
    """LeRobotDataset of demonstrations for symmetric 50/50 batches; None: online data only."""
    demo_done_means: str = "success"
    """How a demo episode's final ``next.done`` ends it: ``success``, ``terminated`` or ``truncated``."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy every this many environment steps (0: only at start and end)."""
    eval_episodes: int = 10
    """Episodes per evaluation (seeds from 100000 up, disjoint from training seeds)."""
    save_every: int = 10_000
    """Checkpoint every this many environment steps (0: only at the end)."""
    keep_checkpoints: int | None = 2
    """Step checkpoints kept (None: all)."""
    log_every: int = 1_000
    """Log losses to TensorBoard every this many environment steps."""
    seed: int = 0
    """Seeds networks, exploration and training episodes (episode ``k`` resets with ``seed + k``)."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    device: str = "cpu"
    """torch device."""
    max_minutes: float | None = None
    """Wall-clock budget: evaluate, checkpoint and stop cleanly after this many minutes (None: no limit)."""
    resume: bool = False
    """Continue the run in ``out`` from ``checkpoints/last``."""

    def __post_init__(self) -> None:
        if isinstance(self.task, dict):
            self.task = TaskConfig.from_dict(self.task)
        if self.warmup_steps is None:
            self.warmup_steps = self._default_warmup()
        positive = ("env_steps", "num_envs", "batch_size", "buffer_size", "n_step", "eval_episodes")
        bad = [f"{name}={getattr(self, name)}" for name in positive if getattr(self, name) < 1]
        bad += [
            f"{name}={getattr(self, name)}"
            for name in ("warmup_steps", "eval_every", "save_every", "log_every")
            if getattr(self, name) < 0
        ]
        if bad:
            raise ValueError(
                f"finetune settings must be positive (warm-up/intervals >= 0): {', '.join(bad)}"
            )
        algo_utd = self.algo_overrides.get("utd_ratio")
        if self.utd_ratio is None:
            self.utd_ratio = float(algo_utd) if algo_utd is not None else 1.0
        elif algo_utd is not None and float(algo_utd) != float(self.utd_ratio):
            log.warning(
                "finetune utd_ratio=%s differs from algo.utd_ratio=%s: the actor will not step once per "
                "environment step",
                self.utd_ratio,
                algo_utd,
            )
        if self.utd_ratio <= 0:
            raise ValueError(f"finetune utd_ratio={self.utd_ratio} must be > 0")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"finetune gamma={self.gamma} must be in (0, 1]")
        if self.buffer_size < 2 * self.num_envs:
            raise ValueError(
                f"finetune buffer_size={self.buffer_size} must be >= 2 * num_envs={2 * self.num_envs}"
            )
        self._check_degenerate()

    def _check_degenerate(self) -> None:
        """Settings that are legal one by one but make the run pointless: errors, or warnings saying what happens."""
        if self.warmup_steps >= self.env_steps:
            raise ValueError(
                f"finetune warmup_steps={self.warmup_steps} >= env_steps={self.env_steps}: the run would "
                f"only act randomly and make 0 updates; pass warmup_steps=<N below {self.env_steps}> "
                f"(e.g. warmup_steps={self.env_steps // 10}), warmup_steps=null for min(5000, env_steps // 10), "
                f"or raise env_steps"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(
                f"finetune threads={self.threads} must be >= 1 (or null for torch's default)"
            )
        if self.keep_checkpoints is not None and self.keep_checkpoints < 1:
            raise ValueError(
                f"finetune keep_checkpoints={self.keep_checkpoints} must be >= 1 (or null to keep all)"
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(
                f"finetune max_minutes={self.max_minutes} must be > 0 (or null for no budget)"
            )
        if self.eval_every > self.env_steps:
            log.warning(
                "finetune eval_every=%d > env_steps=%d: the policy is evaluated only at the start and the end",
                self.eval_every,
                self.env_steps,
            )
        from robot_learning.env_threads import check_threadable

        check_threadable(self.env_threads, self.task.obs, where="finetune ")
        self._check_workers()
        if self.num_envs > self.env_steps:
            raise ValueError(
                f"finetune num_envs={self.num_envs} > env_steps={self.env_steps}: not even one step per "
                "environment; lower num_envs or raise env_steps"
            )

    def _check_workers(self) -> None:
        """``num_workers=``/``cluster=`` as for collect, plus one environment per worker."""
        from robot_learning.ray_rollouts import check_worker_settings

        check_worker_settings(self.num_workers, self.cluster)
        if self.num_workers is None:
            return
        if self.env_threads > 1:
            raise ValueError(
                f"finetune env_threads={self.env_threads} with num_workers={self.num_workers}: the "
                "environments step on the Ray workers, in parallel already; drop env_threads="
            )
        if self.num_envs != self.num_workers:
            raise ValueError(
                f"finetune num_workers={self.num_workers} needs num_envs={self.num_workers} (got "
                f"num_envs={self.num_envs}): each Ray worker owns one environment"
            )

    def _default_warmup(self) -> int:
        """``warmup_steps=null``: the run's recorded value when resuming, else ``min(5000, env_steps // 10)``."""
        value = (
            recorded_setting(self.out, "finetune_config.json", "warmup_steps")
            if self.resume
            else None
        )
        if isinstance(value, int):
            return value
        return min(DEFAULT_WARMUP_STEPS, self.env_steps // 10)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready resolved config."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["task"] = asdict(self.task)
        return out
