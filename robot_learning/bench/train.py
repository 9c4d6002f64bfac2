"""``robot-learning bench train``: the learning benchmarks, end to end, into bench.json.

One preset = a task, an observation mode and a demonstration count. The benchmark

1. collects scripted demonstrations (successful episodes only, seeds 0, 1, ...) unless the
   dataset folder already holds enough of them;
2. trains the policy for a wall-clock budget (``minutes``; the cosine schedule is sized from a
   short timing probe so it ends near the budget) or a fixed number of ``steps``;
3. evaluates the final (EMA) policy over ``eval_episodes`` episodes (seeds from 100000);
4. times ``predict_chunk`` at batch 1 on CPU (what ``select_action`` runs when its queue is
   empty): p50/p99 over ``latency_calls`` calls after a warm-up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_learning.bench.sim import _cpu_count
from robot_learning.collect import CollectConfig, collect
from robot_learning.compat import guard_triton
from robot_learning.datasets import LeRobotDataset
from robot_learning.envs import TaskConfig, make_env
from robot_learning.evaluation import EvalConfig, TorchPolicySource, evaluate
from robot_learning.policy import POLICIES, Policy
from robot_learning.training import TrainConfig, build_policy_config, train

log = logging.getLogger(__name__)
guard_triton()  # before any env is built: see robot_learning.compat


@dataclass(frozen=True)
class Preset:
    """A benchmark problem: what to collect and evaluate on."""

    task: TaskConfig
    demos: int


PRESETS: dict[str, Preset] = {
    "lift_state": Preset(TaskConfig(name="lift", obs="state"), demos=100),
    "pusht_state": Preset(TaskConfig(name="pusht", obs="state"), demos=200),
    "lift_pixels": Preset(
        TaskConfig(name="lift", obs="pixels", cameras=("front", "wrist")), demos=100
    ),
}


@dataclass
class TrainBenchConfig:
    """Settings of ``bench train`` (``configs/bench_train.yaml``)."""

    preset: str
    """One of :data:`PRESETS`."""
    policy: str = "flow"
    """Zoo policy to train."""
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    """Policy config fields (``configs/policy/<name>.yaml`` + ``policy.<field>=``)."""
    minutes: float | None = 30.0
    """Wall-clock training budget (ignored when ``steps`` is set)."""
    steps: int | None = None
    """Fixed number of training steps instead of a time budget."""
    demos: int | None = None
    """Demonstrations to collect; None = the preset's count."""
    batch_size: int = 64
    """Training batch size."""
    lr: float = 1e-4
    """Peak learning rate."""
    precision: str = "fp32"
    """Training precision: ``fp32`` or ``bf16`` (autocast; see ``train precision=``)."""
    eval_episodes: int = 100
    """Evaluation episodes of the final policy."""
    eval_num_envs: int = 10
    """Environments stepped in lockstep during evaluation."""
    latency_calls: int = 200
    """Timed ``predict_chunk`` calls at batch 1."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    seed: int = 0
    """Training seed."""
    data_root: str = "runs/bench_train/data"
    """Where demonstration datasets are collected (reused across runs)."""
    out: str | None = None
    """Run folder; None = ``runs/bench_train/<preset>_<policy>``."""
    resume: bool = False
    """Continue an interrupted training run in ``out``."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r} is not one of {sorted(PRESETS)}")
        if self.steps is None and self.minutes is None:
            raise ValueError("set minutes=<budget> or steps=<N>")
        if self.steps is not None and self.steps < 2:
            raise ValueError(f"steps={self.steps} must be >= 2")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes={self.minutes} must be > 0")
        if self.demos is not None and self.demos < 1:
            raise ValueError(f"demos={self.demos} must be >= 1")
        if self.eval_episodes < 1 or self.latency_calls < 1:
            raise ValueError(
                f"eval_episodes={self.eval_episodes} and latency_calls={self.latency_calls} must be >= 1"
            )
        if self.batch_size < 1 or self.eval_num_envs < 1 or self.lr <= 0:
            raise ValueError(
                f"need batch_size >= 1, eval_num_envs >= 1 and lr > 0; got batch_size={self.batch_size}, "
                f"eval_num_envs={self.eval_num_envs}, lr={self.lr}"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads} must be >= 1 (or null for torch's default)")
        if self.out is None:
            self.out = f"runs/bench_train/{self.preset}_{self.policy}"


def run_train_bench(cfg: TrainBenchConfig, report=None) -> dict[str, Any]:
    """Collect -> train -> evaluate -> time inference; returns the bench.json payload.

    ``report(stage, message)`` is told about each stage as it starts (for the CLI).
    """
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, report or (lambda stage, message: None))
    finally:
        torch.set_num_threads(threads)


def _run(cfg: TrainBenchConfig, report) -> dict[str, Any]:
    preset = PRESETS[cfg.preset]
    demos = cfg.demos or preset.demos
    out = Path(cfg.out)
    data_dir = Path(cfg.data_root) / f"{cfg.preset}_{demos}"
    report(
        "collect", f"{demos} scripted demos of {preset.task.name}/{preset.task.obs} into {data_dir}"
    )
    collect_seconds = ensure_demos(preset.task, data_dir, demos)
    dataset = LeRobotDataset(data_dir)
    train_cfg = TrainConfig(
        policy=cfg.policy,
        dataset=str(data_dir),
        out=str(out / "train"),
        policy_overrides=cfg.policy_overrides,
        steps=cfg.steps or 10_000,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        precision=cfg.precision,
        seed=cfg.seed,
        threads=cfg.threads,
        max_minutes=None if cfg.steps else cfg.minutes,
        resume=cfg.resume,
        save_every=1000,
        warmup_steps=min(500, max(0, (cfg.steps or 10_000) // 10)),
    )
    if cfg.steps is None:
        rate = probe_steps_per_s(train_cfg, dataset)
        steps = max(10, int(0.95 * rate * 60 * cfg.minutes))
        report(
            "train",
            f"{rate:.2f} steps/s in a probe -> cosine schedule of {steps} steps for {cfg.minutes} min",
        )
        train_cfg = TrainConfig(
            **{
                **asdict(train_cfg),
                "steps": steps,
                "warmup_steps": min(500, steps // 10),
                "task": None,
            }
        )
    report(
        "train", f"{cfg.policy} on {dataset.num_episodes} episodes ({dataset.num_frames} frames)"
    )
    result = train(train_cfg)
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    policy = Policy.load(result.final_dir or _latest(out / "train"))
    report("eval", f"{cfg.eval_episodes} episodes on {preset.task.name}")
    eval_cfg = EvalConfig(task=preset.task, episodes=cfg.eval_episodes, num_envs=cfg.eval_num_envs)
    source = TorchPolicySource(policy)
    evaluation = evaluate(source, eval_cfg, progress=True).to_json(source, eval_cfg)
    report("latency", f"{cfg.latency_calls} predict_chunk calls at batch 1")
    latency = time_inference(policy, preset.task, cfg.latency_calls)
    stable = (
        "episodes",
        "success_rate",
        "success_ci95",
        "mean_max_reward",
        "mean_episode_length",
        "seconds",
    )
    return {
        "benchmark": "train",
        "preset": cfg.preset,
        "policy": cfg.policy,
        "machine": {
            "cpus": _cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "config": asdict(cfg),
        "dataset": {
            "dir": str(data_dir),
            "episodes": dataset.num_episodes,
            "frames": dataset.num_frames,
            "collect_seconds": round(collect_seconds, 2),
        },
        "train": {
            "steps": result.step,
            "seconds": round(result.seconds, 2),
            "steps_per_s": round(result.steps_per_s, 3),
            "final_loss": float(np.mean(result.losses[-50:])) if result.losses else None,
            "stopped": result.stopped,
            "batch_size": cfg.batch_size,
            "parameters": sum(p.numel() for p in policy.parameters()),
            "run": str(out / "train"),
        },
        "eval": {k: evaluation[k] for k in stable},
        "latency_ms": latency,
    }


def ensure_demos(task: TaskConfig, data_dir: Path, demos: int) -> float:
    """Collect successful scripted demos until ``data_dir`` holds ``demos`` episodes; returns seconds."""
    have = (
        LeRobotDataset(data_dir).num_episodes if (data_dir / "meta" / "info.json").is_file() else 0
    )
    if have >= demos:
        log.info("%s already holds %d episodes; not collecting", data_dir, have)
        return 0.0
    t0 = time.perf_counter()
    result = collect(
        CollectConfig(
            task=task, out=str(data_dir), episodes=demos - have, only_success=True, resume=have > 0
        )
    )
    if result.interrupted or result.episodes < demos - have:
        raise RuntimeError(
            f"collected only {have + result.episodes} of {demos} demos into {data_dir}"
        )
    return time.perf_counter() - t0


def _fake_batch(policy: Policy, batch_size: int) -> dict[str, torch.Tensor]:
    """Random data with the policy's input shapes (timing does not depend on the values)."""
    n, h = policy.config.n_obs_steps, policy.config.horizon
    batch = {}
    for key in policy.input_keys:
        feat = policy.features[key]
        if feat.is_image:
            batch[key] = torch.randint(0, 256, (batch_size, n, *feat.shape), dtype=torch.uint8)
        else:
            batch[key] = torch.rand(batch_size, n, *feat.shape)
    batch["action"] = torch.rand(batch_size, h, policy.action_dim)
    batch["action_is_pad"] = torch.zeros(batch_size, h, dtype=torch.bool)
    return batch


def probe_steps_per_s(cfg: TrainConfig, dataset: LeRobotDataset, steps: int = 5) -> float:
    """Training steps per second of this policy/batch size, timed on synthetic batches."""
    cls = POLICIES.get(cfg.policy)
    policy = cls(
        build_policy_config(cls, cfg.policy_overrides), dataset.features, dataset.stats
    ).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr)
    batch = _fake_batch(policy, cfg.batch_size)
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:  # the first step pays one-off allocation costs
            t0 = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss, _ = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - t0)


def time_inference(
    policy: Policy, task: TaskConfig, calls: int, warmup: int = 10
) -> dict[str, float]:
    """``predict_chunk`` latency at batch 1 on a real first observation (milliseconds)."""
    env = make_env(task)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    n = policy.config.n_obs_steps
    batch = {k: torch.as_tensor(np.stack([obs[k]] * n))[None] for k in policy.input_keys}
    noise = torch.randn(
        1, policy.config.horizon, policy.action_dim, generator=torch.Generator().manual_seed(0)
    )
    times = []
    policy.eval()
    with torch.no_grad():
        for i in range(warmup + calls):
            t0 = time.perf_counter()
            policy.predict_chunk(batch, noise=noise)
            if i >= warmup:
                times.append(1000 * (time.perf_counter() - t0))
    return {
        "p50": round(float(np.percentile(times, 50)), 3),
        "p99": round(float(np.percentile(times, 99)), 3),
        "mean": round(float(np.mean(times)), 3),
        "per_action_p50": round(float(np.percentile(times, 50)) / policy.config.n_action_steps, 3),
        "calls": calls,
        "batch_size": 1,
    }


def _latest(run: Path) -> str:
    last = run / "checkpoints" / "last"
    if not last.exists():
        raise FileNotFoundError(f"{run} has no checkpoint to evaluate")
    return str(last.resolve())
