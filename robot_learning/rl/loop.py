"""The off-policy training loop shared by every algorithm (``robot-learning finetune``).

Reads top to bottom: setup (seeding, environments wrapped by the algorithm's hook, algorithm,
buffers, resume) -> loop (act: random during warm-up unless the algorithm opts out, else its
exploring policy -> step all environments into the buffer -> ``utd_ratio`` updates per
environment step on symmetric demo/online batches -> log, evaluate, checkpoint; stop early on
``max_minutes`` or SIGINT/SIGTERM) -> final evaluation, checkpoint, curve and ``finetune.json``.

Reproducibility: with the same config and seed a CPU run is a pure function of its seeds. All
randomness comes from the seeded torch global RNG (initialisation, exploration), a stream per
gradient update seeded by ``(seed, update)`` (the losses' sampling), one
``numpy.random.Generator`` (warm-up actions, batch indices) and the environments' seeded resets;
evaluation draws none of it. A checkpoint stores all of them, the buffers and the running
episodes (see :mod:`.collector`), so ``resume=true`` continues exactly as the uninterrupted run.
Under ``torchrun`` each process takes a slice of every batch and the gradients are averaged
(:mod:`.distributed`); rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_learning.collect import write_json
from robot_learning.env_threads import EnvThreads
from robot_learning.envs import make_env, make_envs
from robot_learning.evaluation import EVAL_SEED_OFFSET
from robot_learning.rl import learner_state
from robot_learning.rl.algos import ALGOS, Algorithm, Batch
from robot_learning.rl.collector import Collector, run_episodes
from robot_learning.rl.config import RESUMABLE_CHANGES, FinetuneConfig
from robot_learning.rl.curves import LearningCurves
from robot_learning.rl.demos import check_demo_reward, load_demos
from robot_learning.rl.distributed import average_gradients, shard_batch, update_stream
from robot_learning.rl.networks import action_feature
from robot_learning.rl.observations import LearnerObservations
from robot_learning.rl.replay import ReplayBuffer
from robot_learning.rl.sampling import SymmetricSampler
from robot_learning.training.distributed import Distributed, NullWriter
from robot_learning.training.loop import seed_everything
from robot_learning.training.progress import GracefulStop, TrainProgress

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    """What a run did (this process and the whole run)."""

    start_step: int = 0
    env_steps: int = 0
    updates: int = 0
    seconds: float = 0.0
    stopped: str = "completed"
    """``completed``, ``time_budget`` (``max_minutes``), ``interrupted`` (SIGINT/SIGTERM; checkpoint
    saved) or, in ``finetune.json`` only, ``error`` (an exception; the last checkpoint stands)."""
    evals: list[dict[str, Any]] = field(default_factory=list)
    """Every evaluation of the run: ``env_steps``, ``return``, ``success_rate``, ``length``."""


def algo_config(cfg: FinetuneConfig) -> Any:
    """The registered algorithm's ``Config`` built from ``cfg.algo_overrides``.

    Unknown fields, values of the wrong type, learning rates <= 0 and hidden widths < 1 are a
    ``ConfigError`` naming the ``algo.<field>``.
    """
    from robot_learning.config import ConfigError, build

    cls = ALGOS.get(cfg.algo)
    algo_cfg = build(
        cls.Config, dict(cfg.algo_overrides), where=f"algo {cfg.algo!r}", prefix="algo."
    )
    bad = [
        f"algo.{f.name}={getattr(algo_cfg, f.name)}"
        for f in fields(algo_cfg)
        if f.name.endswith("_lr") and getattr(algo_cfg, f.name) <= 0
    ]
    if bad:
        raise ConfigError(f"{', '.join(bad)}: learning rates must be > 0")
    hidden = getattr(algo_cfg, "hidden", ())
    if any(h < 1 for h in hidden):
        raise ConfigError(f"algo.hidden={list(hidden)}: every hidden width must be >= 1")
    return algo_cfg


def run_algo_config(cfg: FinetuneConfig, run_dir: str | Path, fresh: bool = False) -> Any:
    """:func:`algo_config` passed through the algorithm's ``prepare_run`` hook for the run folder
    ``run_dir`` (residual: its copy of the base policy; ``fresh`` for a new run)."""
    algo_cfg = algo_config(cfg)
    prepare = getattr(ALGOS.get(cfg.algo), "prepare_run", None)
    return algo_cfg if prepare is None else prepare(algo_cfg, Path(run_dir), fresh)


def make_learner_env(cfg: FinetuneConfig, algo_cfg: Any) -> Any:
    """The task's environment in this process (also with ``num_workers``: evaluation and export
    stay local), wrapped by the algorithm's ``wrap_env`` hook when it has one."""
    wrap = getattr(ALGOS.get(cfg.algo), "wrap_env", None)
    env = make_env(cfg.task)
    return env if wrap is None else wrap(env, algo_cfg)


def make_learner_envs(cfg: FinetuneConfig, algo_cfg: Any, n: int) -> list[Any]:
    """``n`` environments of the task for the collector: proxies of Ray workers with
    ``cfg.num_workers`` (:mod:`robot_learning.ray_envs`), else views of one batched simulator
    when the task has one (:func:`make_envs`), each wrapped by the algorithm's ``wrap_env`` hook
    when it has one (then independent: a wrapper steps its own environment)."""
    if cfg.num_workers is not None:
        from robot_learning.ray_envs import remote_envs

        return remote_envs(cfg.task, cfg.num_workers, cfg.cluster)
    if getattr(ALGOS.get(cfg.algo), "wrap_env", None) is None:
        return make_envs(cfg.task, n)
    return [make_learner_env(cfg, algo_cfg) for _ in range(n)]


def learner_skips_images(algo: str) -> bool:
    """True when the algorithm reads only state keys of a camera task (its ``state_only`` hook)."""
    return bool(getattr(ALGOS.get(algo), "state_only", False))


def learner_observations(
    cfg: FinetuneConfig, spec: Any, algo_cfg: Any = None
) -> LearnerObservations:
    """What the algorithm reads of ``spec``: state keys, plus the cameras for pixel algorithms
    (unless ``algo.learner_images=false``).

    A camera task with an algorithm that has neither the ``pixels`` nor the ``state_only`` hook
    is an error naming the choices.
    """
    cls = ALGOS.get(cfg.algo)
    skip = learner_skips_images(cfg.algo) or not getattr(algo_cfg, "learner_images", True)
    if spec.image_keys and not skip and not getattr(cls, "pixels", False):
        pixel_algos = sorted(n for n in ALGOS.names() if getattr(ALGOS.get(n), "pixels", False))
        raise ValueError(
            f"algo={cfg.algo} learns from state observations only; task {cfg.task.name!r} has "
            f"cameras {spec.image_keys}. Use obs=state, or algo={'|'.join(pixel_algos)} (pixel RL)"
        )
    return LearnerObservations(spec, skip_images=skip)


def build_algo(
    cfg: FinetuneConfig, observations: LearnerObservations, action: Any, algo_cfg: Any = None
) -> Algorithm:
    """The registered algorithm with its config built from ``cfg.algo_overrides`` (and an image
    encoder when ``observations`` has cameras)."""
    algo_cfg = algo_cfg if algo_cfg is not None else algo_config(cfg)
    cls = ALGOS.get(cfg.algo)
    if not observations.pixels:
        return cls(algo_cfg, observations.state_dim, action)
    encoder = observations.encoder(algo_cfg.encoder)
    return cls(algo_cfg, encoder.out_dim, action, encoder=encoder)


def finetune(
    cfg: FinetuneConfig,
    progress: bool = False,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> FinetuneResult:
    """Run (or resume) ``cfg``; see the module docstring.

    ``progress`` shows a progress bar; ``on_eval(env_steps, summary)`` hears every evaluation.
    An algorithm with a ``run_finetune(cfg, progress, on_eval)`` hook runs its own workflow
    instead (``hil_serl``: a learner with actor processes).
    """
    runner = getattr(ALGOS.get(cfg.algo), "run_finetune", None)
    if cfg.num_workers is not None:
        from robot_learning.ray_envs import check_remote_algo

        check_remote_algo(cfg.algo, ALGOS.get(cfg.algo))
    if runner is not None:
        return runner(cfg, progress, on_eval or (lambda steps, summary: None))
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        with ExitStack() as cleanup:
            return _finetune(cfg, progress, on_eval or (lambda steps, summary: None), cleanup)
    finally:
        torch.set_num_threads(threads)


def _finetune(
    cfg: FinetuneConfig,
    progress: bool,
    on_eval: Callable[[int, dict[str, float]], None],
    cleanup: ExitStack,
) -> FinetuneResult:
    # ---------------------------------------------------------------- setup
    dist = Distributed.from_env()  # torchrun: each process a slice of every batch (.distributed)
    dist.check_batch(cfg.batch_size)
    if dist.enabled and cfg.num_workers is not None:
        raise ValueError(
            "num_workers= (Ray environment workers) with several learner processes (torchrun) is "
            "not supported: use one of them"
        )
    out, device = Path(cfg.out), dist.start(cfg.device)
    cleanup.callback(dist.stop)
    ckpt_root = out / "checkpoints"
    saved = learner_state.load_learner(ckpt_root) if cfg.resume else None
    if not cfg.resume and ckpt_root.exists() and any(ckpt_root.iterdir()):
        raise FileExistsError(
            f"{out} already holds a run; pass resume=true to continue it or choose another out="
        )
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    algo_cls, algo_cfg = ALGOS.get(cfg.algo), run_algo_config(cfg, out, fresh=saved is None)
    envs = make_learner_envs(cfg, algo_cfg, cfg.num_envs)
    # closed on errors too: remote environments hold Ray workers (the last close stops them)
    cleanup.callback(lambda: [env.close() for env in envs])
    eval_env = make_learner_env(cfg, algo_cfg)
    cleanup.callback(eval_env.close)
    spec = envs[0].features
    observations, action = learner_observations(cfg, spec, algo_cfg), action_feature(spec)
    algo = build_algo(cfg, observations, action, algo_cfg)
    average_gradients(algo, dist)
    shift_pad = algo_cfg.encoder.shift_pad if observations.pixels else 0
    buffer = ReplayBuffer(
        spec.select([*observations.keys, "action"]), cfg.buffer_size, streams=cfg.num_envs
    )
    demos = None
    if cfg.demos:
        check_demo_reward(cfg.demos, cfg.task.reward)
        labeler = getattr(algo_cls, "demo_labeler", None)
        demos = load_demos(
            cfg.demos, buffer.spec, cfg.demo_done_means, derive=labeler and labeler(algo_cfg)
        )
    uniform_warmup = getattr(algo_cls, "uniform_warmup", True)
    sampler = SymmetricSampler(buffer, demos)
    collector = Collector(envs, buffer, seed=cfg.seed, threads=EnvThreads(cfg.env_threads))
    cleanup.callback(collector.threads.close)
    low, high = collector.low, collector.high
    env_steps = 0
    if saved is not None:
        env_steps = _restore(saved, cfg, algo, buffer, collector, rng)
    else:
        collector.start()
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops what a killed run logged after its last checkpoint
    writer = (
        SummaryWriter(str(out / "tb"), purge_step=env_steps or None)
        if dist.is_main
        else NullWriter()
    )
    curves = LearningCurves(writer)
    if saved is not None:
        curves.load_state_dict(saved.state["curves"])
    if dist.is_main:
        write_json(out / "finetune_config.json", cfg.to_dict())

    def to_obs(obs: dict[str, np.ndarray]) -> Any:
        return observations.tensors(obs, device)

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        return algo.act(to_obs(obs), explore=False).cpu().numpy()

    def evaluate() -> None:
        seeds = [EVAL_SEED_OFFSET + i for i in range(cfg.eval_episodes)]
        summary = curves.evaluation(env_steps, run_episodes(eval_env, policy, seeds))
        log.info(
            "eval at %d env steps: return %.3f success %.0f%%",
            env_steps,
            summary["return"],
            100 * summary["success_rate"],
        )
        on_eval(env_steps, summary)

    def save() -> None:
        if not dist.is_main:  # every process holds the same state; rank 0 writes it
            return
        state = {
            "algo": algo.state_dict(),
            "collector": collector.state_dict(),
            "curves": curves.state_dict(),
            "rng": learner_state.capture_rng(rng),
            "env_steps": env_steps,
        }
        meta = {"config": cfg.to_dict(), "env_steps": env_steps, "updates": algo.updates}
        learner_state.save_learner(
            ckpt_root, env_steps, state, buffer.state_dict(), meta, cfg.keep_checkpoints
        )
        curves.plot(out / "learning_curve.png", f"{cfg.algo} on {cfg.task.name}")

    if saved is None:
        evaluate()  # the initial policy: the curve's first point
    result = FinetuneResult(start_step=env_steps)
    start, metrics = time.perf_counter(), {}
    deadline = None if cfg.max_minutes is None else start + 60 * cfg.max_minutes
    bar = TrainProgress(cfg.env_steps, env_steps, enabled=progress and dist.is_main, label=cfg.algo)
    # ---------------------------------------------------------------- loop
    try:
        with bar, GracefulStop() as stop:
            while env_steps < cfg.env_steps:
                if env_steps < cfg.warmup_steps and uniform_warmup:
                    actions = rng.uniform(low, high, size=(cfg.num_envs, *low.shape)).astype(
                        np.float32
                    )
                else:
                    actions = algo.act(to_obs(collector.obs), explore=True).cpu().numpy()
                previous, env_steps = env_steps, env_steps + cfg.num_envs
                for episode in collector.step(actions):
                    curves.episode(env_steps, episode)
                due = int(max(0, env_steps - cfg.warmup_steps) * cfg.utd_ratio)
                while algo.updates < due:
                    sample = sampler.sample(cfg.batch_size, rng, cfg.n_step, cfg.gamma)
                    batch = Batch.from_numpy(
                        sample,
                        observations.tensors(sample["obs"], device, shift_pad),
                        observations.tensors(sample["next_obs"], device, shift_pad),
                        device,
                    )
                    with update_stream(cfg.seed, algo.updates):
                        metrics = algo.update(shard_batch(batch, dist))
                if metrics and _crossed(previous, env_steps, cfg.log_every):
                    curves.scalars(env_steps, metrics)
                if _crossed(previous, env_steps, cfg.eval_every) and env_steps < cfg.env_steps:
                    evaluate()
                if _crossed(previous, env_steps, cfg.save_every) and env_steps < cfg.env_steps:
                    save()
                if metrics:
                    bar.update(env_steps, metrics["critic_loss"])
                out_of_time = deadline is not None and time.perf_counter() > deadline
                if dist.any(stop.requested or out_of_time):
                    log.warning(
                        "stopping at %d env steps (%s); resume with resume=true",
                        env_steps,
                        "signal" if stop.requested else f"max_minutes={cfg.max_minutes}",
                    )
                    result.stopped = "time_budget" if out_of_time else "interrupted"
                    break
    except BaseException as exc:  # the last committed checkpoint stays the resume point
        if dist.is_main:
            _record_failure(out / "finetune.json", cfg, env_steps, algo.updates, exc)
        raise
    # ---------------------------------------------------------------- end
    if not curves.evals or curves.evals[-1][0] != env_steps:
        evaluate()
    save()
    curves.writer.close()
    result.env_steps, result.updates = env_steps, algo.updates
    result.seconds = time.perf_counter() - start
    result.evals = [{"env_steps": s, "return": r, "success_rate": ok} for s, r, ok in curves.evals]
    summary = {
        "algo": cfg.algo,
        "task": cfg.task.name,
        "env_steps": env_steps,
        "updates": algo.updates,
        "seconds_this_process": round(result.seconds, 3),
        "stopped": result.stopped,
        "env_steps_per_s": round((env_steps - result.start_step) / result.seconds, 2)
        if result.seconds
        else 0.0,
        "initial_eval": result.evals[0],
        "final_eval": result.evals[-1],
        "evals": result.evals,
        "train_episodes": len(curves.train),
        "processes": dist.world_size,
    }
    if dist.is_main:
        write_json(out / "finetune.json", summary)
    return result


def _crossed(previous: int, now: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in ``(previous, now]`` (never for ``every == 0``)."""
    return every > 0 and now // every > previous // every


def _restore(
    saved: learner_state.LearnerCheckpoint,
    cfg: FinetuneConfig,
    algo: Algorithm,
    buffer: ReplayBuffer,
    collector: Collector,
    rng: np.random.Generator,
) -> int:
    """Load a checkpoint into the freshly built learner; returns its environment step count."""
    check_resumable(saved, cfg)
    algo.load_state_dict(saved.state["algo"])
    buffer.load_state_dict(saved.replay)
    collector.load_state_dict(saved.state["collector"])
    learner_state.restore_rng(saved.state["rng"], rng)
    log.info("resumed %s at %d environment steps", saved.path, saved.state["env_steps"])
    return int(saved.state["env_steps"])


def check_resumable(saved: learner_state.LearnerCheckpoint, cfg: FinetuneConfig) -> None:
    """Refuse to resume ``saved`` with settings other than :data:`RESUMABLE_CHANGES` changed."""
    before = saved.meta["config"]
    now = json.loads(json.dumps(cfg.to_dict()))  # same JSON types as the saved copy
    changed = [k for k in now if k not in RESUMABLE_CHANGES and before.get(k) != now[k]]
    if changed:
        detail = ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume {saved.path}: settings differ from the checkpoint ({detail})"
        )


def _record_failure(path: Path, cfg: Any, env_steps: int, updates: int, exc: BaseException) -> None:
    """Best-effort ``finetune.json`` for a run stopped by an exception (never hides that error)."""
    stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
    summary = {
        "algo": cfg.algo,
        "task": cfg.task.name,
        "env_steps": env_steps,
        "updates": updates,
        "stopped": stopped,
        "error": f"{type(exc).__name__}: {exc}",
    }
    try:
        write_json(path, summary)
    except OSError as err:
        log.error("could not write %s: %s", path, err.strerror or err)
