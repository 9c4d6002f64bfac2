"""The typed config of ``robot-learning train`` (filled from ``configs/train.yaml``)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from robot_learning.config import recorded_setting
from robot_learning.envs import TaskConfig
from robot_learning.policy import PolicyConfig

log = logging.getLogger(__name__)

#: warm-up of ``warmup_steps=null`` for runs of at least 5000 steps (Diffusion Policy: 500)
DEFAULT_WARMUP_STEPS = 500


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


#: training precisions: full fp32, or bfloat16 autocast with fp32 master weights
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Settings of one imitation-training run; defaults follow Diffusion Policy's recipe."""

    policy: str
    """Registered zoo name: ``diffusion``, ``flow``, ``meanflow``, ..."""
    dataset: str | list[str]
    """LeRobotDataset v3.0 folder to train on, or a list of folders trained on together (same
    features and fps; e.g. ``[demos, corrections]`` in the correction loop)."""
    out: str
    """Run folder: checkpoints, TensorBoard logs, final policy."""
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    """Policy config fields (``configs/policy/<name>.yaml`` merged with ``policy.<field>=`` overrides)."""
    task: TaskConfig | None = None
    """Task for periodic evaluation; its env spec is checked against the dataset's features."""
    init: str | None = None
    """Start from this checkpoint's weights (same policy family; fine-tuning). Its architecture
    settings are used unless ``policy.<field>=`` is given; normalisation comes from the dataset."""
    steps: int = 20_000
    """Optimisation steps (also the length of the cosine LR schedule)."""
    batch_size: int = 64
    """Windows per batch."""
    lr: float = 1e-4
    """Peak AdamW learning rate (Diffusion Policy: 1e-4)."""
    weight_decay: float = 1e-6
    """AdamW weight decay (Diffusion Policy: 1e-6)."""
    betas: tuple[float, float] = (0.95, 0.999)
    """AdamW betas (Diffusion Policy: 0.95, 0.999)."""
    warmup_steps: int | None = None
    """Linear LR warmup steps (Diffusion Policy: 500). None: ``min(500, steps // 10)`` (so a short
    run such as ``steps=20`` works with the defaults), or the value recorded in ``out`` when
    resuming; an explicit value must be below ``steps``."""
    min_lr_ratio: float = 0.0
    """Cosine decay floor as a fraction of ``lr``."""
    grad_clip: float = 10.0
    """Clip the global gradient norm to this value (0 disables clipping)."""
    use_ema: bool = True
    """Keep an exponential moving average of the weights; checkpoints and evaluations use it."""
    ema_decay: float = 0.9999
    """Maximum EMA decay (Diffusion Policy: 0.9999)."""
    ema_power: float | None = 0.75
    """EMA warm-up: decay at step k is ``1 - (1 + k) ** -ema_power`` up to ``ema_decay``; None = constant."""
    device: str = "cpu"
    """Torch device, e.g. ``cpu`` or ``cuda``."""
    precision: str = "fp32"
    """``fp32``, or ``bf16``: the forward pass and loss under bfloat16 autocast (weights, gradients,
    optimizer and EMA stay fp32); about 2x faster convolutions on CPUs with AVX-512 BF16 or AMX."""
    threads: int | None = None
    """torch intra-op CPU threads for this run (None: torch's default, one per core); 1 is often
    fastest on a loaded machine, where spinning OpenMP threads contend."""
    num_workers: int = 0
    """DataLoader worker processes gathering batches (0: in the training process)."""
    seed: int = 0
    """Seeds policy initialisation, the data order and every training RNG."""
    log_every: int = 50
    """Steps between TensorBoard/log lines (the loss is averaged over the interval)."""
    save_every: int = 2_000
    """Steps between checkpoints (one is also written at the end)."""
    keep_checkpoints: int | None = 3
    """Step checkpoints kept on disk (oldest removed first); ``None`` keeps all."""
    eval_every: int = 0
    """Steps between evaluations of the EMA policy on ``task`` (0: never)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation."""
    eval_num_envs: int = 10
    """Environments stepped in lockstep during periodic evaluation."""
    max_minutes: float | None = None
    """Wall-clock budget: stop cleanly (checkpoint + final policy) after this many minutes."""
    resume: bool = False
    """Continue the run in ``out`` from its last checkpoint (exactly, see :mod:`.loop`)."""
    intervention_weight: float = 1.0
    """Windows whose current frame an operator drove (``complementary_info.is_intervention``)
    are sampled this many times as often as the others (HG-DAgger corrections); datasets
    without the column weigh 1."""

    def __post_init__(self) -> None:
        if isinstance(self.task, dict):
            self.task = TaskConfig.from_dict(self.task)
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.dataset = _absolute_datasets(self.dataset)
        if not self.intervention_weight > 0:
            raise ValueError(
                f"intervention_weight={self.intervention_weight} must be > 0 "
                "(1: intervened frames count like the others)"
            )
        self.out = str(Path(self.out).expanduser().absolute())
        positive = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "log_every": self.log_every,
            "save_every": self.save_every,
            "eval_episodes": self.eval_episodes,
            "eval_num_envs": self.eval_num_envs,
        }
        bad = [f"{k}={v}" for k, v in positive.items() if v < 1]
        if bad:
            raise ValueError(f"train settings must be >= 1: {', '.join(bad)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, grad_clip >= 0; got lr={self.lr}, "
                f"weight_decay={self.weight_decay}, grad_clip={self.grad_clip}"
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas={self.betas} must be two values in [0, 1)")
        if self.warmup_steps is None:
            self.warmup_steps = self._default_warmup()
        elif not 0 <= self.warmup_steps < self.steps:
            raise ValueError(
                f"warmup_steps={self.warmup_steps} must be in [0, steps={self.steps}): the learning rate "
                f"would never leave its warm-up; pass warmup_steps=<N below {self.steps}> "
                f"(e.g. warmup_steps={self.steps // 10}) or warmup_steps=null for min(500, steps // 10)"
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        if self.use_ema and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay} must be in (0, 1) (or use_ema=false)")
        if self.use_ema and self.ema_power is not None and self.ema_power <= 0:
            raise ValueError(
                f"ema_power={self.ema_power} must be > 0 (or null for a constant decay)"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not one of {PRECISIONS}")
        if self.precision == "bf16" and self.device == "cpu" and not cpu_has_bf16():
            log.warning(
                "precision=bf16 on a CPU without native bfloat16 (torch reports %s, no oneDNN bf16): "
                "autocast is emulated and training runs many times slower than fp32; use precision=fp32 "
                "(policy.image_obs_steps=1 still halves the camera work)",
                torch.backends.cpu.get_cpu_capability(),
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads} must be >= 1 (or null for torch's default)")
        if self.num_workers < 0:
            raise ValueError(f"num_workers={self.num_workers} must be >= 0")
        if self.keep_checkpoints is not None and self.keep_checkpoints < 1:
            raise ValueError(
                f"keep_checkpoints={self.keep_checkpoints} must be >= 1 (or null to keep all)"
            )
        if self.eval_every < 0:
            raise ValueError(f"eval_every={self.eval_every} must be >= 0")
        if self.eval_every and self.task is None:
            raise ValueError(
                f"eval_every={self.eval_every} needs a task (task=<name>) to evaluate on"
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes={self.max_minutes} must be > 0 (or null for no budget)")
        if self.eval_every > self.steps:
            log.warning(
                "eval_every=%d > steps=%d: the policy is evaluated only once, at the end of training",
                self.eval_every,
                self.steps,
            )
        try:
            torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(f"device={self.device!r} is not a torch device ({exc})") from None

    @property
    def datasets(self) -> list[str]:
        """The dataset folders as a list (one element for ``dataset=DIR``)."""
        return [self.dataset] if isinstance(self.dataset, str) else list(self.dataset)

    def _default_warmup(self) -> int:
        """``warmup_steps=null``: the run's recorded value when resuming, else ``min(500, steps // 10)``."""
        value = (
            recorded_setting(self.out, "train_config.json", "warmup_steps") if self.resume else None
        )
        if isinstance(value, int):
            return value
        return min(DEFAULT_WARMUP_STEPS, self.steps // 10)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (embedded in checkpoints and ``train_config.json``)."""
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data


def _absolute_datasets(dataset: str | list[str]) -> str | list[str]:
    """Absolute folder(s), keeping a single folder a string (as recorded by earlier runs)."""
    if isinstance(dataset, str):
        return str(Path(dataset).expanduser().absolute())
    if not dataset:
        raise ValueError("dataset=[] names no dataset; pass dataset=DIR or dataset=[DIR1,DIR2]")
    return [str(Path(d).expanduser().absolute()) for d in dataset]


def build_policy_config(policy_cls: type, overrides: dict[str, Any]) -> PolicyConfig:
    """The policy's config dataclass from YAML/CLI values.

    Every value is checked against its field's type; unknown fields and wrong types are a
    ``ConfigError`` naming the ``policy.<field>`` (and the nearest valid field).
    """
    from robot_learning.config import build

    values = {k: v for k, v in overrides.items() if k != "name"}
    return build(
        policy_cls.config_class, values, where=f"policy {policy_cls.name!r}", prefix="policy."
    )
