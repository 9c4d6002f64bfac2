"""Imitation training of a zoo policy on a LeRobotDataset (``robot-learning train``).

Reads top to bottom: config -> setup (dataset, policy, windows, optimizer, EMA, resume) ->
loop (batch, loss, backward, clip, LR, step, EMA, log, evaluate, checkpoint) -> final save.

Reproducibility: with the same config and seed a run produces the same loss curve on CPU. The
policy is initialised after seeding every global RNG; batches are a pure function of
``(seed, step)`` (:class:`~robot_learning.training.windows.StepBatchSampler`); the learning rate
is a pure function of the step; periodic evaluation draws from its own generators. A checkpoint
stores the optimizer, EMA and RNG states, so ``resume=true`` continues a killed run exactly as
the uninterrupted run would have (same per-step losses, same final weights).

Outputs in ``out/``: ``train_config.json`` (resolved config), ``checkpoints/step_XXXXXX/`` and
``checkpoints/last`` (see :mod:`.checkpoint`), ``tb/`` (TensorBoard), ``evals/step_XXXXXX.json``
(periodic evaluation), ``final/`` (the trained policy, EMA weights when EMA is on) and
``train.json`` (summary numbers).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_learning.collect import write_json
from robot_learning.compat import guard_triton
from robot_learning.datasets import LeRobotDataset
from robot_learning.datasets.timing import check_timing
from robot_learning.envs import TaskConfig, make_env
from robot_learning.evaluation import (
    EvalConfig,
    TorchPolicySource,
    check_task_features,
    evaluate,
    task_completed_features,
)
from robot_learning.features import FeatureSpec
from robot_learning.policy import POLICIES, Policy
from robot_learning.training import checkpoint as ckpt
from robot_learning.training.config import TrainConfig, build_policy_config
from robot_learning.training.distributed import (
    Distributed,
    LossModule,
    NullWriter,
    ShardedSampler,
)
from robot_learning.training.init_weights import load_initial_weights
from robot_learning.training.progress import (
    GracefulStop,
    RunEstimate,
    TrainProgress,
    log_scalars,
    summary_writer,
)
from robot_learning.training.windows import (
    StepBatchSampler,
    WindowDataset,
    batch_iterator,
    check_compatible,
    merged_stats,
)

log = logging.getLogger(__name__)
guard_triton()  # before any env is built: see robot_learning.compat

#: config fields that may change when resuming (everything else must match the checkpoint)
RESUMABLE_CHANGES = (
    "steps",
    "resume",
    "max_minutes",
    "eval_every",
    "eval_episodes",
    "eval_num_envs",
    "log_every",
    "save_every",
    "keep_checkpoints",
    "num_workers",
    "task",
    "device",
    "threads",
)
#: values of settings added after a checkpoint was written (a checkpoint without them used these)
RESUME_DEFAULTS = {"intervention_weight": 1.0}


@dataclass
class TrainResult:
    """What a run did; ``losses`` holds the per-step loss of the steps run in this process."""

    start_step: int = 0
    step: int = 0
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = "completed"
    """``completed``, ``time_budget``, ``interrupted`` or ``error``."""
    error: str | None = None
    """What stopped the run early (an exception), or None."""
    final_dir: str | None = None
    evals: dict[int, dict[str, Any]] = field(default_factory=dict)
    post_training: dict[str, Any] = field(default_factory=dict)
    """What ``Policy.finish_training`` reported (e.g. a classifier's held-out metrics)."""

    def final_loss(self, window: int) -> float | None:
        """Mean loss of the last ``window`` steps run in this process: the one "final loss"
        that both the CLI line and ``train.json`` report."""
        last = self.losses[-min(len(self.losses), window) :]
        return float(np.mean(last)) if last else None

    @property
    def steps_per_s(self) -> float:
        """Optimisation steps per second in this process."""
        return (self.step - self.start_step) / self.seconds if self.seconds else 0.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr`` at
    ``steps`` (diffusion_policy's schedule via diffusers' ``get_cosine_schedule_with_warmup``)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch global RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(
    cfg: TrainConfig, progress: bool = True, on_step: Callable[[int, float], None] | None = None
) -> TrainResult:
    """Train ``cfg.policy`` on ``cfg.dataset``; ``on_step(step, loss)`` is called after every step."""
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    dist = Distributed.from_env()  # torchrun / accelerate launch: one process per rank
    try:
        return _train(cfg, progress, on_step, dist)
    finally:
        torch.set_num_threads(threads)
        dist.stop()


def _train(
    cfg: TrainConfig,
    progress: bool,
    on_step: Callable[[int, float], None] | None,
    dist: Distributed,
) -> TrainResult:
    # ---------------------------------------------------------------- setup
    out = Path(cfg.out)
    ckpt_root = out / "checkpoints"
    dist.check_batch(cfg.batch_size)
    device = dist.start(cfg.device)
    resume_from = _resume_point(cfg, ckpt_root)
    datasets = [LeRobotDataset(path) for path in cfg.datasets]
    for part in datasets:
        check_timing(part)
    check_compatible(datasets)
    dataset = datasets[0]  # features and fps of all of them
    policy_cls = POLICIES.get(cfg.policy)
    policy_cfg = build_policy_config(policy_cls, cfg.policy_overrides)
    seed_everything(cfg.seed)
    features, env_features = dataset.features, None
    if (
        cfg.task is not None
    ):  # bounds/control mode a LeRobot-schema dataset lacks come from the task
        features, env_features = _task_features(cfg.task, dataset)
    policy = policy_cls(policy_cfg, features, merged_stats(datasets)).to(device)
    if cfg.init is not None and resume_from is None:
        load_initial_weights(policy, cfg.init)
    if env_features is not None:
        check_task_features(
            features,
            policy.input_keys,
            env_features,
            what=f"task {cfg.task.name!r} ({cfg.task.backend}, obs={cfg.task.obs}) env spec "
            f"vs dataset {dataset.root}",
        )
    all_windows = WindowDataset(
        datasets, policy.input_keys, policy_cfg.n_obs_steps, policy_cfg.horizon
    )
    windows = policy.prepare_training(all_windows)  # e.g. labels + held-out episodes (classifier)
    model = dist.wrap(LossModule(policy))  # DDP averages gradients over the processes
    if dist.enabled:  # same initial weights on every rank; different noise and dropout
        seed_everything(cfg.seed + 7919 * dist.rank)
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    ema = _make_ema(policy, cfg)
    resolved = {
        **cfg.to_dict(),
        "policy_config": asdict(policy_cfg),
        "dataset_episodes": sum(part.num_episodes for part in datasets),
        "dataset_frames": sum(part.num_frames for part in datasets),
        "intervention_frames": int(windows.is_intervention.sum()),
        "training_windows": len(windows),
        "fps": dataset.fps,
        "processes": dist.world_size,  # data-parallel processes (torchrun); batch_size is global
    }
    step = 0
    if resume_from is not None:
        step = _restore(resume_from, cfg, policy, optimizer, ema)
        log.info("resumed from %s at step %d", resume_from, step)
    if dist.is_main:
        write_json(out / "train_config.json", resolved)
    writer = summary_writer(out, step) if dist.is_main else NullWriter()
    result = TrainResult(start_step=step, step=step)
    sampler = StepBatchSampler(
        len(windows),
        cfg.batch_size,
        cfg.seed,
        start_step=step,
        end_step=cfg.steps,
        weights=windows.sample_weights(cfg.intervention_weight),
    )
    if dist.enabled:  # every rank draws the same global batch and keeps its slice
        sampler = ShardedSampler(sampler, dist)
    batches = batch_iterator(windows, sampler, cfg.num_workers)
    t_start = time.monotonic()
    saved_step = step if resume_from is not None else -1

    def save_checkpoint() -> None:
        nonlocal saved_step
        saved_step = step
        if not dist.is_main:
            return
        ckpt.commit_checkpoint(
            ckpt_root,
            step,
            lambda d: _write_checkpoint(d, step, policy, optimizer, ema, resolved),
            keep=cfg.keep_checkpoints,
        )

    # ---------------------------------------------------------------- loop
    bar = TrainProgress(cfg.steps, step, enabled=progress and dist.is_main)
    estimate = RunEstimate(cfg.steps, step, str(device))
    window_losses: list[float] = []
    try:
        with bar, GracefulStop() as stop:
            while step < cfg.steps:
                batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
                policy.train()
                with torch.autocast(device.type, torch.bfloat16, enabled=cfg.precision == "bf16"):
                    loss, metrics = model(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {loss.item()} at step {step}; last checkpoint: {ckpt_root / ckpt.LAST}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = _clip_gradients(policy, cfg.grad_clip)
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
                if ema is not None:
                    ema.update(policy)
                step += 1
                loss_value = float(loss.item())
                result.losses.append(loss_value)
                window_losses.append(loss_value)
                result.step = step
                bar.update(step, loss_value)
                if (message := estimate.check(step)) is not None:
                    bar.note(message)
                    if not progress:
                        log.info("%s", message)
                if on_step is not None:
                    on_step(step, loss_value)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    log_scalars(
                        writer, step, window_losses, metrics, lr, grad_norm, bar.steps_per_s
                    )
                    window_losses = []
                evaluate_now = (
                    step % cfg.eval_every == 0 or step == cfg.steps if cfg.eval_every else False
                )
                if evaluate_now and dist.is_main:
                    result.evals[step] = _periodic_eval(cfg, policy, ema, step, out, writer)
                if step % cfg.save_every == 0 and step < cfg.steps:
                    save_checkpoint()
                if dist.any(stop.requested):
                    result.stopped = "interrupted"
                    log.warning("stopped at step %d; resume with resume=true", step)
                    break
                if cfg.max_minutes is not None and dist.any(
                    time.monotonic() - t_start > 60 * cfg.max_minutes
                ):
                    result.stopped = "time_budget"
                    log.info("time budget of %.1f min reached at step %d", cfg.max_minutes, step)
                    break
    except BaseException as exc:
        # an exception (or a second Ctrl-C) leaves the last committed checkpoint as the resume point
        result.stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.monotonic() - t_start
        if dist.is_main:
            _record_failure(out / "train.json", _summary(cfg, result, policy))
        raise
    finally:
        result.seconds = time.monotonic() - t_start
        writer.flush()
    # ---------------------------------------------------------------- final save
    if step != saved_step:
        save_checkpoint()
    if not dist.is_main:  # rank 0 writes the final policy and the summary
        writer.close()
        dist.barrier()
        result.final_dir = str(out / "final") if result.stopped != "interrupted" else None
        return result
    if result.stopped != "interrupted":
        final = _deployable(policy, ema)
        result.post_training = final.finish_training(all_windows, out)
        ckpt.write_atomic_dir(
            out / "final", lambda d: final.save(d, extra={"train_config": resolved, "step": step})
        )
        result.final_dir = str(out / "final")
    writer.close()
    write_json(out / "train.json", _summary(cfg, result, policy))
    dist.barrier()
    return result


# --------------------------------------------------------------------------- helpers
def _resume_point(cfg: TrainConfig, ckpt_root: Path) -> Path | None:
    """The checkpoint to resume from; refuse to overwrite a previous run without resume=true."""
    latest = ckpt.latest_checkpoint(ckpt_root)
    if latest is not None and not cfg.resume:
        raise FileExistsError(
            f"{cfg.out} already holds checkpoints (latest {latest.name}); pass resume=true to continue "
            "that run or choose another out="
        )
    if cfg.resume and latest is None:
        log.warning("resume=true but %s has no checkpoint; starting from step 0", ckpt_root)
    return latest


def _task_features(task: TaskConfig, dataset: LeRobotDataset) -> tuple[FeatureSpec, FeatureSpec]:
    """(dataset features completed from the task, the task's features); refuses another rate."""
    env = make_env(task)
    try:
        if int(env.fps) != int(dataset.fps):
            raise ValueError(
                f"task {task.name!r} runs at {env.fps} Hz but dataset {dataset.root} was recorded "
                f"at fps={dataset.fps}: a policy trained on it would act at the wrong rate; "
                "record the dataset at the task's rate or evaluate on a task with the same rate"
            )
        what = f"dataset {dataset.root} on task {task.name!r}"
        return task_completed_features(dataset.features, env.features, what), env.features
    finally:
        env.close()


def _make_ema(policy: Policy, cfg: TrainConfig) -> Any:
    if not cfg.use_ema:
        return None
    from robot_learning.ema import EMA

    return EMA(policy, decay=cfg.ema_decay, power=cfg.ema_power)


def _deployable(policy: Policy, ema: Any) -> Policy:
    """The weights to evaluate and ship: a copy holding the EMA average (or the policy itself)."""
    if ema is None:
        return policy
    averaged = copy.deepcopy(policy)
    ema.copy_to(averaged)
    return averaged.eval()


def _clip_gradients(policy: Policy, max_norm: float) -> float:
    params = [p for p in policy.parameters() if p.grad is not None]
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return (
        float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
        if params
        else 0.0
    )


def _write_checkpoint(
    directory: Path,
    step: int,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    ema: Any,
    resolved: dict[str, Any],
) -> None:
    _deployable(policy, ema).save(directory, extra={"train_config": resolved, "step": step})
    state = {
        "step": step,
        "model": policy.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "rng": ckpt.rng_state(),
        "train_config": resolved,
    }
    ckpt.save_state(directory / ckpt.STATE_FILE, state)


def _restore(
    directory: Path, cfg: TrainConfig, policy: Policy, optimizer: torch.optim.Optimizer, ema: Any
) -> int:
    state = ckpt.load_state(directory / ckpt.STATE_FILE)
    saved = state["train_config"]
    current = cfg.to_dict()
    changed = [
        k
        for k in current
        if k not in RESUMABLE_CHANGES and saved.get(k, RESUME_DEFAULTS.get(k)) != current[k]
    ]
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume {directory}: settings differ from the checkpoint ({detail})"
        )
    policy.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if (ema is None) != (state["ema"] is None):
        raise ValueError(f"cannot resume {directory}: use_ema differs from the checkpoint")
    if ema is not None:
        ema.load_state_dict(state["ema"])
    ckpt.set_rng_state(state["rng"])
    return int(state["step"])


def _periodic_eval(
    cfg: TrainConfig, policy: Policy, ema: Any, step: int, out: Path, writer: Any
) -> dict[str, Any]:
    assert cfg.task is not None
    source = TorchPolicySource(
        _deployable(policy, ema) if ema is not None else copy.deepcopy(policy)
    )
    eval_cfg = EvalConfig(task=cfg.task, episodes=cfg.eval_episodes, num_envs=cfg.eval_num_envs)
    with torch.random.fork_rng(devices=[]):  # evaluation must not shift the training RNG stream
        result = evaluate(source, eval_cfg)
    payload = result.to_json(source, eval_cfg, extra={"step": step})
    write_json(out / "evals" / f"step_{step:06d}.json", payload)
    for key in ("success_rate", "mean_max_reward", "mean_episode_length"):
        writer.add_scalar(f"eval/{key}", payload[key], step)
    log.info(
        "step %d eval success %.3f mean max reward %.3f",
        step,
        payload["success_rate"],
        payload["mean_max_reward"],
    )
    return payload


def _summary(cfg: TrainConfig, result: TrainResult, policy: Policy) -> dict[str, Any]:
    return {
        "policy": cfg.policy,
        "steps": result.step,
        "start_step": result.start_step,
        "stopped": result.stopped,
        "error": result.error,
        "seconds": round(result.seconds, 3),
        "steps_per_s": round(result.steps_per_s, 3),
        "final_loss": result.final_loss(cfg.log_every),
        "final_loss_window": min(len(result.losses), cfg.log_every),
        "parameters": sum(p.numel() for p in policy.parameters()),
        "final": result.final_dir,
        "evals": {
            str(k): {m: v[m] for m in ("success_rate", "success_ci95", "mean_max_reward")}
            for k, v in result.evals.items()
        },
        **({"post_training": result.post_training} if result.post_training else {}),
    }


def _record_failure(path: Path, summary: dict[str, Any]) -> None:
    """Best-effort ``train.json`` for a run that stopped on an error (never hides that error)."""
    try:
        write_json(path, summary)
    except OSError as exc:
        log.error("could not write %s: %s", path, exc.strerror or exc)
