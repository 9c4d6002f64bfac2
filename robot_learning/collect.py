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
from robot_learning.envs import TaskConfig, episode_instruction, make_expert, make_task_env
from robot_learning.features import Feature, FeatureSpec
from robot_learning.ray_rollouts import check_worker_settings

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
    """Where actions come from: ``scripted`` (the expert registered for the task) or the name
    of any registered expert (``robot_learning.experts`` plugins add their own)."""
    policy: str | None = None
    """Record the actions of this checkpoint or bundle instead of an expert's (distillation:
    the teacher's episodes for a student; no privileged state needed, so robots work too)."""
    only_success: bool = False
    """Discard failed episodes."""
    max_attempts: int | None = None
    """With ``only_success``: stop after this many episodes (default 3 x episodes)."""
    seed: int = 0
    """Episode ``i`` of this run resets with ``seed + i``."""
    resume: bool = False
    """Append to an existing dataset."""
    extra: dict[str, Any] = field(default_factory=dict)

    robot: dict[str, Any] | None = None
    """Record on this robot (its ``robot.*`` settings) instead of the task's simulator; the
    scripted expert needs the privileged state only a simulator has (``robot=sim``)."""
    num_workers: int | None = None
    """Run the episodes on this many Ray rollout workers (:mod:`robot_learning.ray_rollouts`);
    the dataset is the same as without them. None: in this process."""
    cluster: str | None = None
    """With ``num_workers``: ``local`` (default: start Ray on this machine), ``auto`` (the Ray
    cluster started here with ``ray start``) or a cluster address ``HOST:PORT``."""

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes={self.episodes} must be positive")
        if self.policy is not None and self.expert != "scripted":
            raise ValueError(
                f"collect takes actions from expert={self.expert!r} or from policy={self.policy!r}, "
                "not both: drop one"
            )
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be >= 0 (episode i resets with seed + i)")
        check_worker_settings(self.num_workers, self.cluster, robot=self.robot)
        if (
            self.max_attempts is not None
            and not self.only_success
            and self.max_attempts > self.episodes
        ):
            log.warning(
                "max_attempts=%d has no effect without only_success=true: every episode is saved, "
                "so collection stops after episodes=%d",
                self.max_attempts,
                self.episodes,
            )
        if self.max_attempts is None:
            self.max_attempts = 3 * self.episodes if self.only_success else self.episodes
        if self.max_attempts < self.episodes:
            raise ValueError(
                f"max_attempts={self.max_attempts} must be >= episodes={self.episodes}"
            )


@dataclass
class CollectResult:
    """Outcome of a run; ``to_json`` gives the stable ``collect.json`` keys.

    After ``resume=true`` the counts describe the whole dataset (earlier runs included);
    ``this_run`` holds this run's own counts.
    """

    episodes: int = 0
    successes: int = 0
    attempts: int = 0
    attempt_successes: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    error: str | None = None
    """Why the run stopped early (``KeyboardInterrupt``, a write error, ...), or None."""
    earlier: dict[str, Any] = field(default_factory=dict)
    """Totals of the dataset before this run (empty for a new dataset)."""

    @property
    def success_rate(self) -> float:
        """Success rate of the expert over all attempted episodes (saved or discarded)."""
        return self.attempt_successes / self.attempts if self.attempts else 0.0

    def totals(self) -> dict[str, int]:
        """Counts of the whole dataset: the earlier runs' plus this run's."""
        mine = {k: getattr(self, k) for k in _COUNTS}
        return {k: int(self.earlier.get(k, 0)) + v for k, v in mine.items()}

    def to_json(self, cfg: CollectConfig) -> dict[str, Any]:
        """The ``collect.json`` payload (whole-dataset totals plus this run's own counts)."""
        total = self.totals()
        rate = total["attempt_successes"] / total["attempts"] if total["attempts"] else 0.0
        return {
            "episodes": total["episodes"],
            "successes": total["successes"],
            "success_rate": rate,
            "frames": total["frames"],
            "attempts": total["attempts"],
            "attempt_successes": total["attempt_successes"],
            "this_run": {
                **{k: getattr(self, k) for k in _COUNTS},
                "success_rate": self.success_rate,
                "seconds": round(self.seconds, 3),
                "frames_per_second": round(self.frames / self.seconds, 2) if self.seconds else 0.0,
                "interrupted": self.interrupted,
                "error": self.error,
            },
            "seconds": round(self.seconds, 3),
            "frames_per_second": round(self.frames / self.seconds, 2) if self.seconds else 0.0,
            "interrupted": self.interrupted,
            "error": self.error,
            "config": {**asdict(cfg), "task": asdict(cfg.task)},
        }


_COUNTS = ("episodes", "successes", "attempts", "attempt_successes", "frames")


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
    """Collect expert episodes into ``cfg.out`` until it holds ``cfg.episodes``; returns the counts.

    ``cfg.episodes`` is the size of the dataset, as ``steps`` is for ``train``: with
    ``resume=true`` only the missing episodes are collected. Any error (a full disk, a read-only
    folder, Ctrl-C) keeps every committed episode and is recorded in ``collect.json``.
    """
    env = make_task_env(cfg.task, cfg.robot)
    features = env.features.merge(TRANSITION_FEATURES)
    result = CollectResult()
    start = time.perf_counter()
    writer = None
    try:
        if cfg.policy is not None:
            from robot_learning.policy_actions import PolicyActions

            expert = PolicyActions(cfg.policy, env)
        else:
            expert = make_expert(env, None if cfg.expert == "scripted" else cfg.expert)
            env.unwrapped.task_state()  # a robot without privileged state fails before any file
        writer = LeRobotDatasetWriter.create(
            cfg.out, features, fps=env.fps, robot_type=env.unwrapped.robot_type, resume=cfg.resume
        )
        result.earlier = _earlier_totals(Path(cfg.out), writer) if cfg.resume else {}
        wanted = cfg.episodes - writer.num_episodes
        if wanted <= 0:
            log.warning(
                "%s already holds %d episodes (episodes=%d is the dataset's size); nothing to "
                "collect: pass a larger episodes= to add more",
                cfg.out,
                writer.num_episodes,
                cfg.episodes,
            )
        max_attempts = max(0, int(cfg.max_attempts) - int(result.earlier.get("attempts", 0)))
        first_seed = cfg.seed + int(result.earlier.get("attempts", writer.num_episodes))
        _collect_episodes(
            cfg, env, expert, writer, result, wanted, max_attempts, first_seed, progress
        )
    except KeyboardInterrupt:
        result.interrupted, result.error = True, "KeyboardInterrupt"
        log.warning(
            "interrupted: kept %d committed episodes in %s", writer_episodes(writer), cfg.out
        )
    except BaseException as exc:
        result.interrupted, result.error = True, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if writer is not None:
            writer.close()
        env.close()
        result.seconds = time.perf_counter() - start
        if writer is not None:
            _write_summary(Path(cfg.out) / "collect.json", result.to_json(cfg))
    if result.totals()["episodes"] < cfg.episodes and not result.interrupted:
        log.warning(
            "only %d of %d requested episodes saved after %d attempts",
            result.totals()["episodes"],
            cfg.episodes,
            result.attempts,
        )
    return result


def _collect_episodes(cfg, env, expert, writer, result, wanted, max_attempts, first_seed, progress):
    columns = [
        TextColumn("[bold]collect[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[rate]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task_id = bar.add_task(
            f"{cfg.task.name}/{cfg.task.backend}/{cfg.task.obs}", total=max(wanted, 0), rate="-"
        )
        if cfg.num_workers is not None:
            from robot_learning.ray_rollouts import collect_on_workers

            collect_on_workers(cfg, writer, result, wanted, max_attempts, first_seed, bar, task_id)
            return
        while result.episodes < wanted and result.attempts < max_attempts:
            seed = first_seed + result.attempts
            success, n = run_episode(
                env,
                expert,
                seed,
                on_frame=lambda f: writer.add_frame(f, task=episode_instruction(env)),
            )
            commit_episode(cfg, writer, result, seed, success, n)
            bar.update(task_id, completed=result.episodes, rate=f"{result.success_rate:.0%}")


def commit_episode(cfg, writer, result, seed: int, success: bool, frames: int) -> None:
    """Save the episode buffered in ``writer`` (or discard it under ``only_success``) and count it."""
    result.attempts += 1
    result.attempt_successes += int(success)
    if cfg.only_success and not success:
        writer.discard_episode()
        log.info("episode with seed %d failed; discarded (only_success=true)", seed)
    else:
        writer.save_episode()
        result.episodes += 1
        result.successes += int(success)
        result.frames += frames


def writer_episodes(writer) -> int:
    """Committed episodes of ``writer`` (0 when it was never opened)."""
    return writer.num_episodes if writer is not None else 0


def _earlier_totals(root: Path, writer) -> dict[str, int]:
    """The dataset's counts before this run, from its ``collect.json`` and its committed data.

    Episodes and frames always come from the dataset itself. Success and attempt counts come from
    the previous ``collect.json`` when it describes this dataset, else from the ``next.success``
    column (each committed episode counting as one attempt).
    """
    totals = {"episodes": writer.num_episodes, "frames": writer.num_frames}
    previous = _read_json(root / "collect.json")
    if previous.get("episodes") == writer.num_episodes and "attempts" in previous:
        for key in ("successes", "attempts", "attempt_successes"):
            totals[key] = int(previous.get(key, 0))
        return totals
    successes = _successful_episodes(root)
    totals.update(successes=successes, attempts=writer.num_episodes, attempt_successes=successes)
    return totals


def _successful_episodes(root: Path) -> int:
    """Episodes with any true ``next.success`` frame in the committed data (0 without the column)."""
    from robot_learning.datasets import LeRobotDataset

    dataset = LeRobotDataset(root)
    if "next.success" not in dataset.features:
        return 0
    cols = dataset.columns(["episode_index", "next.success"])
    return len(np.unique(cols["episode_index"][np.ravel(cols["next.success"]).astype(bool)]))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_summary(path: Path, payload: dict[str, Any]) -> None:
    """Write ``collect.json``; a failure is logged, never hiding the error that stopped the run."""
    try:
        write_json(path, payload)
    except OSError as exc:
        log.error("could not write %s: %s", path, exc.strerror or exc)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
