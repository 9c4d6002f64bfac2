"""The commit protocol that makes each saved episode all-or-nothing.

One episode = one data file, one mp4 per camera and one episodes-metadata file, each at a fresh
``(chunk, file)`` position (v3.0 allows several episodes per file; one per commit means no
committed file is ever rewritten, which is what keeps commits atomic and cheap). Steps:

1. everything is written into ``.staging/<id>/`` and fsynced;
2. staged files are renamed to their final names (videos, data, episodes metadata);
3. ``meta/tasks.parquet`` (if a task is new) and ``meta/stats.json`` are replaced atomically;
4. ``meta/info.json`` is replaced atomically: **this rename is the commit point**.

A crash before step 4 leaves files no committed episode references, an episodes-metadata row with
``episode_index >= total_episodes``, possibly an extra unused task and a ``stats.json`` whose
``count`` is ahead of ``total_frames``. Readers ignore all of these (statistics are re-aggregated
from the committed per-episode statistics), the validator reports them as notes, and a writer
opened with ``resume=True`` deletes them. Setting ``ROBOT_LEARNING_DATASET_COMMIT_PAUSE`` sleeps after
commit stages (see :func:`stage`; used by tests to kill a writer mid-commit).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robot_learning.datasets import stats as stats_mod
from robot_learning.datasets.atomic import fsync_path, move_durable, write_json_atomic
from robot_learning.datasets.layout import (
    INFO_PATH,
    STAGING_DIR,
    STATS_PATH,
    data_relpath,
    episodes_relpath,
    video_relpath,
)
from robot_learning.datasets.metadata import write_tasks
from robot_learning.fileio import naming_path

log = logging.getLogger(__name__)
PAUSE_ENV = "ROBOT_LEARNING_DATASET_COMMIT_PAUSE"


def stage(name: str, episode: int) -> None:
    """Mark a commit stage (debug log) and honour the test pause hook.

    ``ROBOT_LEARNING_DATASET_COMMIT_PAUSE`` is ``"<seconds>"`` (pause after every stage) or
    ``"<stage name>:<seconds>"`` (pause only after that stage).
    """
    log.debug("commit episode %d: %s", episode, name)
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        where, _, seconds = pause.rpartition(":")
        if not where or where == name:
            time.sleep(float(seconds))


@dataclass
class StagedEpisode:
    """Files of one episode waiting in the staging folder, and where they go."""

    index: int
    directory: Path
    data_pos: tuple[int, int]
    meta_pos: tuple[int, int]
    videos: dict[str, tuple[Path, tuple[int, int]]] = field(default_factory=dict)

    @property
    def data_file(self) -> Path:
        """Staged data parquet."""
        return self.directory / "data.parquet"

    @property
    def meta_file(self) -> Path:
        """Staged episodes-metadata parquet."""
        return self.directory / "episode.parquet"


def new_staging_dir(root: Path) -> Path:
    """A fresh private folder under ``.staging``."""
    base = Path(root) / STAGING_DIR
    base.mkdir(parents=True, exist_ok=True)
    directory = base / f"{os.getpid()}-{time.time_ns()}"
    directory.mkdir()
    return directory


def write_parquet_durable(table: pa.Table, path: Path) -> None:
    """Write and fsync a parquet file."""
    with naming_path(path):
        pq.write_table(table, path)
    fsync_path(path)


def episode_row(
    staged: StagedEpisode,
    length: int,
    tasks: list[str],
    start: int,
    fps: int,
    ep_stats: stats_mod.Stats,
) -> dict[str, Any]:
    """The episodes-metadata row of a staged episode (LeRobot's column names and order)."""
    row: dict[str, Any] = {
        "episode_index": staged.index,
        "tasks": tasks,
        "length": length,
        "data/chunk_index": staged.data_pos[0],
        "data/file_index": staged.data_pos[1],
        "dataset_from_index": start,
        "dataset_to_index": start + length,
    }
    for key, (_, (chunk, file)) in staged.videos.items():
        row[f"videos/{key}/chunk_index"] = chunk
        row[f"videos/{key}/file_index"] = file
        row[f"videos/{key}/from_timestamp"] = 0.0
        row[f"videos/{key}/to_timestamp"] = length / fps
    row.update(stats_mod.to_episode_columns(ep_stats))
    row["meta/episodes/chunk_index"] = staged.meta_pos[0]
    row["meta/episodes/file_index"] = staged.meta_pos[1]
    return row


def commit(
    root: Path,
    staged: StagedEpisode,
    info: dict[str, Any],
    tasks: list[str] | None,
    stats: stats_mod.Stats,
) -> None:
    """Move a fully staged episode into place and commit ``info`` (see module docstring).

    Args:
        root: dataset folder.
        staged: the episode's staged files (all fsynced).
        info: the new ``meta/info.json`` content (totals already include this episode).
        tasks: the full new task list if it changed, else None.
        stats: the new aggregated statistics.
    """
    root = Path(root)
    ep = staged.index
    stage("staged", ep)
    for key, (path, (chunk, file)) in staged.videos.items():
        move_durable(path, root / video_relpath(info, key, chunk, file))
    stage("videos moved", ep)
    move_durable(staged.data_file, root / data_relpath(info, *staged.data_pos))
    stage("data moved", ep)
    move_durable(staged.meta_file, root / episodes_relpath(*staged.meta_pos))
    stage("episode metadata moved", ep)
    if tasks is not None:
        write_tasks(root, tasks)
        stage("tasks written", ep)
    write_json_atomic(root / STATS_PATH, stats_mod.to_json(stats))
    stage("stats written", ep)
    write_json_atomic(root / INFO_PATH, info)
    stage("committed", ep)
    shutil.rmtree(staged.directory, ignore_errors=True)
