"""Reopening an existing dataset for appending: checks, repair of interrupted commits, state.

A writer resumes only onto a dataset whose fps and features match and whose committed part is
sound. Leftovers of an interrupted commit (staging folder, temp files, files at positions after
the last committed ones, an unused trailing task, a ``stats.json`` ahead of ``info.json``) are
removed or rewritten here, before anything new is written.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_learning.datasets import stats as stats_mod
from robot_learning.datasets.atomic import TMP_PREFIX, write_json_atomic
from robot_learning.datasets.layout import (
    BOOKKEEPING_FEATURES,
    EPISODES_DIR,
    STAGING_DIR,
    STATS_PATH,
    DatasetError,
    normalise_spec,
    read_info,
    spec_from_info,
    video_keys,
)
from robot_learning.datasets.metadata import (
    Episodes,
    find_leftovers,
    last_positions,
    position_of,
    read_episodes,
    read_stats_json,
    read_tasks,
)
from robot_learning.features import FeatureSpec

log = logging.getLogger(__name__)


@dataclass
class ResumeState:
    """What a writer needs to know about the committed part of a dataset."""

    info: dict[str, Any]
    spec: FeatureSpec
    tasks: list[str]
    stats: stats_mod.Stats
    positions: dict[str, tuple[int, int] | None]
    tasks_dirty: bool = False
    """tasks.parquet holds rows beyond ``total_tasks`` (rewrite it at the next commit)."""

    @classmethod
    def empty(cls, info: dict[str, Any], spec: FeatureSpec) -> ResumeState:
        """State of a freshly created dataset."""
        positions: dict[str, tuple[int, int] | None] = {"data": None, "meta": None}
        positions.update({f"videos/{k}": None for k in video_keys(info["features"])})
        return cls(info=info, spec=spec, tasks=[], stats={}, positions=positions)

    @property
    def num_episodes(self) -> int:
        """Committed episodes."""
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        """Committed frames."""
        return int(self.info["total_frames"])

    @property
    def chunks_size(self) -> int:
        """Files per chunk folder."""
        return int(self.info["chunks_size"])

    def advance(
        self, info: dict[str, Any], tasks: list[str], stats: stats_mod.Stats, staged: Any
    ) -> None:
        """Record a successful commit of ``staged``."""
        self.info, self.tasks, self.stats, self.tasks_dirty = info, tasks, stats, False
        self.positions["data"] = staged.data_pos
        self.positions["meta"] = staged.meta_pos
        for key, (_, pos) in staged.videos.items():
            self.positions[f"videos/{key}"] = pos


def _fail(root: Path, problems: list[str]) -> DatasetError:
    listed = "\n  - ".join(problems)
    return DatasetError(f"cannot append to {root}, it has problems (run validate):\n  - {listed}")


def load_for_resume(
    root: Path, features: FeatureSpec, fps: int, robot_type: str | None
) -> ResumeState:
    """Check that ``root`` can take more episodes of ``features`` at ``fps``; repair leftovers."""
    info = read_info(root)
    if int(info["fps"]) != int(fps):
        raise DatasetError(f"{root}: fps {fps} does not match the dataset's fps {info['fps']}")
    stored = spec_from_info(info["features"])
    stored.check_matches(normalise_spec(features), what=f"features given to resume {root}")
    if robot_type is not None and info.get("robot_type") not in (None, robot_type):
        raise DatasetError(
            f"{root}: robot_type {robot_type!r} != the dataset's {info['robot_type']!r}"
        )
    episodes = read_episodes(root, info)
    if episodes.problems:
        raise _fail(root, episodes.problems)
    tasks, problems = read_tasks(root)
    if not problems and len(tasks) < info["total_tasks"]:
        problems = [
            f"meta/tasks.parquet has {len(tasks)} tasks, info.json says {info['total_tasks']}"
        ]
    if problems:
        raise _fail(root, problems)
    _remove_leftovers(root, info, episodes)
    return ResumeState(
        info=info,
        spec=stored,
        tasks=tasks[: info["total_tasks"]],
        stats=_committed_stats(root, info, episodes),
        positions=last_positions(info, episodes),
        tasks_dirty=len(tasks) > info["total_tasks"],
    )


def _committed_stats(root: Path, info: dict[str, Any], episodes: Episodes) -> stats_mod.Stats:
    """stats.json if it matches the committed frames, else re-aggregated (and rewritten)."""
    stats, problems = read_stats_json(root)
    all_features = FeatureSpec(
        {**spec_from_info(info["features"]).features, **BOOKKEEPING_FEATURES.features}
    )
    if stats is not None and not problems:
        if info["total_frames"] == 0 and not stats:
            return stats
        if stats_mod.count_of(stats) == info["total_frames"] and not stats_mod.check_stats(
            stats, all_features
        ):
            return stats
    fresh = stats_mod.aggregate(episodes.stats()) if info["total_frames"] else {}
    log.warning("%s: rewriting %s from the committed per-episode statistics", root, STATS_PATH)
    write_json_atomic(root / STATS_PATH, stats_mod.to_json(fresh))
    return fresh


def _remove_leftovers(root: Path, info: dict[str, Any], episodes: Episodes) -> None:
    """Delete what an interrupted commit left; keep (and warn about) anything else unexpected."""
    last = last_positions(info, episodes)
    for path in find_leftovers(root, info, episodes):
        rel = path.relative_to(root)
        parts = rel.parts
        if parts[0] == STAGING_DIR or path.name.startswith(TMP_PREFIX):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            log.info("removed leftover %s", rel)
            continue
        if rel.as_posix().startswith(EPISODES_DIR + "/"):
            category = "meta"
        elif parts[0] == "data":
            category = "data"
        else:
            category = f"videos/{parts[1]}"
        bound = last.get(category)
        if bound is None or position_of(path) > bound:
            path.unlink()
            log.info("removed leftover %s of an interrupted commit", rel)
        else:
            log.warning("keeping unreferenced file %s (it precedes committed files)", rel)
