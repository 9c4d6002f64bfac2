"""Evaluate a policy on a task: N environments stepped in lockstep, batched chunk inference.

The rollout talks to an :class:`ActionSource` (numpy in, numpy out), so the same code evaluates
a torch :class:`~robot_learning.policy.Policy` (through :class:`TorchPolicySource`) and, later,
an exported bundle runtime with no torch at all. Each environment keeps what
``Policy.select_action`` keeps for one robot: the last ``n_obs_steps`` observations (padded with
the first frame at an episode start) and a queue of actions; whenever some queues are empty,
one batched ``predict_chunk`` call refills all of them with
``chunk[n_obs_steps-1 : n_obs_steps-1+n_action_steps]`` (receding horizon).

Seeds: evaluation episode ``i`` resets with ``seed + i`` where ``seed`` defaults to
:data:`EVAL_SEED_OFFSET` (100000). Demonstrations are collected from seed 0 upwards
(``collect`` uses ``seed + i`` with ``seed=0``), so evaluation never replays a training
initial state unless a dataset holds more than 100000 episodes.

``eval.json`` stable keys: ``episodes``, ``success_rate``, ``success_ci95`` (Wilson score
interval), ``mean_max_reward`` (per episode the maximum per-step env reward, e.g. Push-T's
coverage reward; then the mean), ``mean_return`` (the undiscounted return, the RL benchmarks'
measure, e.g. Hopper), ``mean_episode_length``, ``runtime``; the rest (per-episode
results, seeds, flag rates, timings, the policy's config) is informational.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robot_learning.compat import guard_triton
from robot_learning.env_threads import EnvThreads, check_threadable, step_envs
from robot_learning.envs import TaskConfig, episode_instruction, make_envs
from robot_learning.features import FeatureMismatchError, FeatureSpec
from robot_learning.language import TASK_KEY
from robot_learning.ray_rollouts import check_worker_settings
from robot_learning.task_compat import (  # the checks moved there; imported from here too
    ControlRateMismatchError,  # noqa: F401
    check_control_rate,
    check_task_features,
    checkpoint_control_rate,  # noqa: F401
    task_completed_features,  # noqa: F401
    task_overrides_for,  # noqa: F401
    task_rate_hz,
)

log = logging.getLogger(__name__)
guard_triton()  # before any env is built: see robot_learning.compat

#: first evaluation seed; collection/training seeds start at 0 (see the module docstring)
EVAL_SEED_OFFSET = 100_000


class ActionSource(Protocol):
    """What the rollout needs from a policy: chunk-level batched inference in numpy."""

    name: str
    """Policy name (for eval.json)."""
    runtime: str
    """``torch``, ``onnxruntime``, ... (for eval.json)."""
    features: FeatureSpec
    """Input features plus ``action`` (checked against the task's env spec)."""
    input_keys: list[str]
    n_obs_steps: int
    n_action_steps: int

    def predict_chunk(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Observations ``[B, n_obs_steps, *shape]`` -> raw actions ``[B, horizon, A]``."""
        ...

    def reseed(self, seed: int) -> None:
        """Restart the source of sampler noise (evaluations are reproducible per seed)."""
        ...

    def refine(self, obs: dict[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        """The action to execute given the current frame and the chunk's action (residual policies)."""
        ...


class TorchPolicySource:
    """A torch :class:`~robot_learning.policy.Policy` as an :class:`ActionSource`.

    Sampler noise comes from a private generator seeded with ``seed``, so an evaluation is
    reproducible and leaves the global torch RNG (the training RNG) untouched.
    """

    runtime = "torch"

    def __init__(
        self, policy: Any, seed: int = EVAL_SEED_OFFSET, control_rate_hz: float | None = None
    ) -> None:
        """``control_rate_hz``: the rate the policy was trained at (see :func:`checkpoint_control_rate`);
        None skips the rate check of :func:`evaluate`."""
        import torch  # the rollout itself does not need torch

        self._torch = torch
        self.policy = policy.eval()
        self.name = policy.name
        self.features = policy.features
        self.input_keys = list(policy.input_keys)
        self.n_obs_steps = policy.config.n_obs_steps
        self.n_action_steps = policy.config.n_action_steps
        self.horizon = policy.config.horizon
        self.uses_language = bool(getattr(policy, "uses_language", False))
        self.action_shape = tuple(policy.features.action.shape)
        self.generator = torch.Generator().manual_seed(seed)
        self.control_rate_hz = control_rate_hz

    def reseed(self, seed: int) -> None:
        """Restart the sampler-noise generator from ``seed``."""
        self.generator.manual_seed(seed)

    def refine(self, obs: dict[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        """The chunk's action unchanged (zoo policies have no per-step stage)."""
        return action

    def predict_chunk(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Batched inference on the policy's device; noise drawn from the private generator."""
        torch = self._torch
        device = self.policy.device
        tensors: dict[str, Any] = {}
        for k, v in batch.items():
            if k == TASK_KEY:  # instructions stay strings; the policy tokenizes them
                tensors[k] = [str(t) for t in v]
                continue
            v = np.asarray(v)
            tensors[k] = torch.from_numpy(v if v.dtype == np.uint8 else v.astype(np.float32)).to(
                device
            )
        size = len(next(v for k, v in batch.items() if k != TASK_KEY))
        noise = torch.randn((size, self.horizon, *self.action_shape), generator=self.generator)
        with torch.no_grad():
            chunk = self.policy.predict_chunk(tensors, noise=noise.to(device))
        return chunk.detach().cpu().numpy()


@dataclass
class EvalConfig:
    """Settings of one evaluation (``configs/eval.yaml``)."""

    task: TaskConfig
    """The task to evaluate on (its feature spec must match the policy's)."""
    episodes: int = 50
    """Episodes to roll out."""
    num_envs: int = 10
    """Environments stepped in lockstep (one batched inference call serves all of them)."""
    seed: int = EVAL_SEED_OFFSET
    """Episode ``i`` resets with ``seed + i`` (kept apart from collection seeds, which start at 0)."""
    video_episodes: int = 0
    """Record the first K episodes as mp4 (``env.render()``); needs an output folder."""
    env_threads: int = 1
    """Threads stepping the ``num_envs`` environments in parallel (state tasks, no videos; see
    :mod:`robot_learning.env_threads`); results are the same for any value."""
    num_workers: int | None = None
    """Spread the episodes over this many Ray rollout workers, each with its own copy of the
    policy (:mod:`robot_learning.ray_rollouts`; the eval command dispatches). None: this process."""
    cluster: str | None = None
    """With ``num_workers``: ``local`` (default: start Ray on this machine), ``auto`` (the Ray
    cluster started here with ``ray start``) or a cluster address ``HOST:PORT``."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes={self.episodes} must be >= 1")
        if self.num_envs < 1:
            raise ValueError(f"num_envs={self.num_envs} must be >= 1")
        if self.video_episodes < 0:
            raise ValueError(f"video_episodes={self.video_episodes} must be >= 0")
        self.num_envs = min(self.num_envs, self.episodes)
        check_worker_settings(self.num_workers, self.cluster, videos=self.video_episodes)
        check_threadable(self.env_threads, self.task.obs, self.video_episodes, "eval ")


@dataclass
class EvalResult:
    """Per-episode outcomes; :meth:`to_json` is the eval.json payload."""

    seeds: list[int] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    max_rewards: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    flags: list[dict[str, bool]] = field(default_factory=list)
    seconds: float = 0.0
    inference_calls: int = 0
    inference_seconds: float = 0.0
    videos: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        """Fraction of successful episodes."""
        return float(np.mean(self.successes)) if self.successes else 0.0

    def to_json(
        self, source: ActionSource, cfg: EvalConfig, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The eval.json payload (stable keys first)."""
        n = len(self.successes)
        env_steps = int(sum(self.lengths))
        flag_names = sorted({k for f in self.flags for k in f})
        return {
            "episodes": n,
            "success_rate": self.success_rate,
            "success_ci95": list(wilson_interval(int(sum(self.successes)), n)),
            "mean_max_reward": float(np.mean(self.max_rewards)) if n else 0.0,
            "mean_return": float(np.mean(self.returns)) if n else 0.0,
            "mean_episode_length": float(np.mean(self.lengths)) if n else 0.0,
            "runtime": source.runtime,
            "policy": source.name,
            "task": asdict(cfg.task),
            "seeds": self.seeds,
            "successes": self.successes,
            "max_rewards": self.max_rewards,
            "returns": self.returns,
            "episode_lengths": self.lengths,
            "flag_rates": {
                k: float(np.mean([f.get(k, False) for f in self.flags])) for k in flag_names
            },
            "num_envs": cfg.num_envs,
            "n_obs_steps": source.n_obs_steps,
            "n_action_steps": source.n_action_steps,
            "seconds": round(self.seconds, 3),
            "env_steps_per_s": round(env_steps / self.seconds, 2) if self.seconds else 0.0,
            "inference_calls": self.inference_calls,
            "inference_ms_per_call": round(
                1000 * self.inference_seconds / max(self.inference_calls, 1), 3
            ),
            "videos": self.videos,
            **(extra or {}),
        }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for z=1.96); (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


class _Slot:
    """One environment's episode in progress: history, action queue, running outcome."""

    def __init__(self, env: Any, n_obs_steps: int) -> None:
        self.env = env
        self.history: deque[dict[str, np.ndarray]] = deque(maxlen=n_obs_steps)
        self.queue: deque[np.ndarray] = deque()
        self.episode = -1
        self.video = None

    def start(self, episode: int, seed: int, video: Any) -> None:
        obs, info = self.env.reset(seed=seed)
        self.episode, self.seed, self.video = episode, seed, video
        self.history.clear()
        self.history.extend([obs] * self.history.maxlen)  # pad with the first frame
        self.queue.clear()
        self.success = bool(info.get("is_success", False))
        self.flags = {k: bool(v) for k, v in info.items() if k.startswith("flag/")}
        self.max_reward, self.ret, self.length = -math.inf, 0.0, 0
        if video is not None:
            video.add(self.env.render())

    def record(self, obs, reward, terminated, truncated, info) -> bool:
        """Take in the result of one step; returns True when the episode ended."""
        self.history.append(obs)
        self.length += 1
        self.max_reward = max(self.max_reward, float(reward))
        self.ret += float(reward)
        self.success = self.success or bool(info.get("is_success", False))
        for k, v in info.items():
            if k.startswith("flag/"):
                self.flags[k] = self.flags.get(k, False) or bool(v)
        if self.video is not None:
            self.video.add(self.env.render())
        return bool(terminated or truncated)


def evaluate(
    source: ActionSource,
    cfg: EvalConfig,
    video_dir: str | Path | None = None,
    progress: bool = False,
    envs: list | None = None,
) -> EvalResult:
    """Roll out ``cfg.episodes`` episodes of ``source`` on ``cfg.task``; see the module docstring.

    ``envs`` replaces the task's simulators (e.g. a robot as an env,
    :class:`hardware.robot_env.RobotEnv`; they are closed at the end). Refuses
    (:class:`ControlRateMismatchError`, naming both rates) a source whose ``control_rate_hz``
    (a bundle's, or a checkpoint's via :func:`checkpoint_control_rate`) differs from the task's
    ``env.fps``.
    """
    if cfg.video_episodes and video_dir is None:
        raise ValueError("video_episodes > 0 needs a video_dir (the evaluation output folder)")
    if envs is None:
        envs = make_envs(cfg.task, cfg.num_envs)
    elif len(envs) != cfg.num_envs:
        raise ValueError(f"num_envs={cfg.num_envs} but {len(envs)} environments were given")
    try:
        check_task_features(
            source.features,
            source.input_keys,
            envs[0].features,
            what=f"task {cfg.task.name!r} ({cfg.task.backend}, obs={cfg.task.obs}) env spec vs policy {source.name!r}",
        )
        check_control_rate(
            getattr(source, "control_rate_hz", None),
            task_rate_hz(envs[0]),
            policy=f"policy {source.name!r} ({source.runtime})",
            task=f"task {cfg.task.name!r} ({cfg.task.backend}, env.fps)",
        )
        return _rollout(
            source, cfg, envs, Path(video_dir) if video_dir is not None else None, progress
        )
    finally:
        for env in envs:
            env.close()


def _rollout(
    source: ActionSource, cfg: EvalConfig, envs: list, video_dir: Path | None, progress: bool
) -> EvalResult:
    from robot_learning.datasets.video import VideoEncoder

    result = EvalResult()
    start_idx = source.n_obs_steps - 1  # chunk index of the current step
    slots = [_Slot(env, source.n_obs_steps) for env in envs]
    fps = int(getattr(envs[0], "fps", 10))
    outcomes: dict[int, tuple] = {}
    next_episode = 0
    t0 = time.perf_counter()

    def start_next(slot: _Slot) -> bool:
        nonlocal next_episode
        if next_episode >= cfg.episodes:
            slot.episode = -1
            return False
        video = None
        if next_episode < cfg.video_episodes:
            assert video_dir is not None
            video_dir.mkdir(parents=True, exist_ok=True)
            frame = slot.env.render()
            if frame is None:
                raise ValueError(f"task {cfg.task.name!r} cannot render frames for videos")
            path = video_dir / f"episode_{next_episode:03d}.mp4"
            video = VideoEncoder(path, fps, np.asarray(frame).shape)
            result.videos.append(str(path))
        slot.start(next_episode, cfg.seed + next_episode, video)
        next_episode += 1
        return True

    columns = [
        TextColumn("[bold]eval[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[rate]}"),
        TimeElapsedColumn(),
    ]
    threads = EnvThreads(cfg.env_threads)
    try:
        with Progress(*columns, disable=not progress) as bar:
            bar_id = bar.add_task(f"{source.name} on {cfg.task.name}", total=cfg.episodes, rate="-")
            active = [s for s in slots if start_next(s)]
            while active:
                empty = [s for s in active if not s.queue]
                if empty:
                    batch = {
                        k: np.stack([np.stack([h[k] for h in s.history]) for s in empty])
                        for k in source.input_keys
                    }
                    if getattr(source, "uses_language", False):
                        batch[TASK_KEY] = np.array([episode_instruction(s.env) for s in empty])
                    t_inf = time.perf_counter()
                    chunks = np.asarray(source.predict_chunk(batch))  # [B, horizon, A]
                    result.inference_seconds += time.perf_counter() - t_inf
                    result.inference_calls += 1
                    _check_chunks(chunks, len(empty), start_idx + source.n_action_steps)
                    for s, chunk in zip(empty, chunks, strict=True):
                        s.queue.extend(
                            chunk[start_idx : start_idx + source.n_action_steps].astype(np.float32)
                        )
                actions = [source.refine(s.history[-1], s.queue.popleft()) for s in active]
                ended = [
                    s.record(*result)
                    for s, result in zip(
                        active, step_envs(threads, [s.env for s in active], actions), strict=True
                    )
                ]
                for s, done in zip(list(active), ended, strict=True):
                    if not done:
                        continue
                    if s.video is not None:
                        s.video.close()
                        s.video = None
                    outcomes[s.episode] = (
                        s.seed,
                        s.success,
                        s.max_reward,
                        s.ret,
                        s.length,
                        dict(s.flags),
                    )
                    rate = np.mean([o[1] for o in outcomes.values()])
                    bar.update(bar_id, completed=len(outcomes), rate=f"{rate:.0%}")
                    if not start_next(s):
                        active.remove(s)
    except BaseException:
        for slot in slots:  # never leave half-written mp4 files behind
            if slot.video is not None:
                slot.video.abort()
                result.videos.remove(str(slot.video.path))
        raise
    finally:
        threads.close()
    result.seconds = time.perf_counter() - t0
    for episode in sorted(outcomes):
        seed, success, max_reward, ret, length, flags = outcomes[episode]
        result.seeds.append(seed)
        result.successes.append(success)
        result.max_rewards.append(max_reward)
        result.returns.append(ret)
        result.lengths.append(length)
        result.flags.append(flags)
    log.info(
        "eval %s on %s: success %.3f over %d episodes in %.1fs",
        source.name,
        cfg.task.name,
        result.success_rate,
        len(outcomes),
        result.seconds,
    )
    return result


def _check_chunks(chunks: np.ndarray, batch: int, needed: int) -> None:
    if chunks.ndim != 3 or chunks.shape[0] != batch or chunks.shape[1] < needed:
        raise FeatureMismatchError(
            f"predict_chunk returned shape {chunks.shape}; expected [{batch}, >= {needed} "
            "(n_obs_steps - 1 + n_action_steps), action_dim]"
        )
    if not np.all(np.isfinite(chunks)):
        raise ValueError("predict_chunk returned NaN/Inf actions")
