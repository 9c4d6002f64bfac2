"""Collect demonstrations from an expert into a LeRobotDataset v3.0.

Each episode is buffered, then committed atomically by the dataset writer; an interrupted run
(Ctrl-C, crash, SIGKILL) keeps every episode saved before it. ``collect.json`` in the dataset
folder records what happened (stable keys: ``episodes``, ``successes``, ``success_rate``,
``frames``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from robot_learning.datasets import LeRobotDatasetWriter
from robot_learning.envs import TaskConfig, make_env, make_expert
from robot_learning.features import Feature, FeatureSpec

log = logging.getLogger(__name__)

#: per-frame RL fields stored next to observations and actions (LeRobot's names)
TRANSITION_FEATURES = FeatureSpec(
    {
        "next.reward": Feature("float32", (1,)),
        "next.done": Feature("bool", (1,)),
        "next.success": Feature("bool", (1,)),
    }
)


@dataclass
class CollectConfig:
    """Settings of one collection run (``configs/collect.yaml``)."""

    task: TaskConfig
    """The task to collect on."""
    out: str
    """Dataset directory."""
    episodes: int = 20
    """Episodes to save (successful ones when ``only_success``)."""
    expert: str = "scripted"
    """Where actions come from: ``scripted`` (policy/teleop arrive with later issues)."""
    only_success: bool = False
    """Discard failed episodes."""
    max_attempts: int | None = None
    """With ``only_success``: stop after this many episodes (default 3 x episodes)."""
    seed: int = 0
    """Episode ``i`` of this run resets with ``seed + i``."""
    resume: bool = False
    """Append to an existing dataset."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes={self.episodes} must be positive")
        if self.expert != "scripted":
            raise ValueError(
                f"expert={self.expert!r} is not available yet; use expert=scripted "
                "(policy and teleop experts arrive with the policy and teleop features)"
            )
        if self.max_attempts is None:
            self.max_attempts = 3 * self.episodes if self.only_success else self.episodes
        if self.max_attempts < self.episodes:
            raise ValueError(
                f"max_attempts={self.max_attempts} must be >= episodes={self.episodes}"
            )


@dataclass
class CollectResult:
    """Outcome of a run; ``to_json`` gives the stable ``collect.json`` keys."""

    episodes: int = 0
    successes: int = 0
    attempts: int = 0
    attempt_successes: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def success_rate(self) -> float:
        """Success rate of the expert over all attempted episodes (saved or discarded)."""
        return self.attempt_successes / self.attempts if self.attempts else 0.0

    def to_json(self, cfg: CollectConfig) -> dict[str, Any]:
        """The ``collect.json`` payload."""
        return {
            "episodes": self.episodes,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "frames": self.frames,
            "attempts": self.attempts,
            "attempt_successes": self.attempt_successes,
            "seconds": round(self.seconds, 3),
            "frames_per_second": round(self.frames / self.seconds, 2) if self.seconds else 0.0,
            "interrupted": self.interrupted,
            "config": {**asdict(cfg), "task": asdict(cfg.task)},
        }


def run_episode(env, expert, seed: int, on_frame=None) -> tuple[bool, int]:
    """Roll out ``expert`` in ``env`` for one episode; ``on_frame(frame)`` receives each frame.

    Returns (success, number of frames).
    """
    obs, info = env.reset(seed=seed)
    expert.reset(seed=seed)
    success, frames = bool(info.get("is_success", False)), 0
    while True:
        action = np.asarray(expert.act(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        success = success or bool(info.get("is_success", False))
        done = bool(terminated or truncated)
        if on_frame is not None:
            on_frame(
                {
                    **obs,
                    "action": action,
                    "next.reward": np.array([reward], np.float32),
                    "next.done": np.array([done]),
                    "next.success": np.array([bool(info.get("is_success", False))]),
                }
            )
        frames += 1
        obs = next_obs
        if done:
            return success, frames


def collect(cfg: CollectConfig, progress: bool = True) -> CollectResult:
    """Collect ``cfg.episodes`` expert episodes into ``cfg.out``; returns the counts."""
    env = make_env(cfg.task)
    expert = make_expert(env)
    features = env.features.merge(TRANSITION_FEATURES)
    result = CollectResult()
    start = time.perf_counter()
    writer = LeRobotDatasetWriter.create(
        cfg.out, features, fps=env.fps, robot_type=env.unwrapped.robot_type, resume=cfg.resume
    )
    first_seed = cfg.seed + (writer.num_episodes if cfg.resume else 0)
    columns = [
        TextColumn("[bold]collect[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[rate]}"),
        TimeRemainingColumn(),
    ]
    try:
        with writer, Progress(*columns, disable=not progress, transient=False) as bar:
            task_id = bar.add_task(
                f"{cfg.task.name}/{cfg.task.backend}/{cfg.task.obs}", total=cfg.episodes, rate="-"
            )
            while result.episodes < cfg.episodes and result.attempts < cfg.max_attempts:
                seed = first_seed + result.attempts
                success, n = run_episode(
                    env,
                    expert,
                    seed,
                    on_frame=lambda f: writer.add_frame(f, task=env.task_description),
                )
                result.attempts += 1
                result.attempt_successes += int(success)
                if cfg.only_success and not success:
                    writer.discard_episode()
                    log.info("episode with seed %d failed; discarded (only_success=true)", seed)
                else:
                    writer.save_episode()
                    result.episodes += 1
                    result.successes += int(success)
                    result.frames += n
                bar.update(task_id, completed=result.episodes, rate=f"{result.success_rate:.0%}")
    except KeyboardInterrupt:
        result.interrupted = True
        log.warning("interrupted: kept %d committed episodes in %s", result.episodes, cfg.out)
    finally:
        env.close()
        result.seconds = time.perf_counter() - start
        write_json(Path(cfg.out) / "collect.json", result.to_json(cfg))
    if result.episodes < cfg.episodes and not result.interrupted:
        log.warning(
            "only %d of %d requested episodes saved after %d attempts",
            result.episodes,
            cfg.episodes,
            result.attempts,
        )
    return result


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
