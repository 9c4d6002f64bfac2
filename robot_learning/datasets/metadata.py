"""Reading the ``meta/`` folder: tasks, the episodes table, statistics, and leftover files.

Loaders return the problems they find instead of raising, so :mod:`.validate` can report every
problem while :class:`~robot_learning.datasets.reader.LeRobotDataset` raises on the first ones.
Only episodes below ``info["total_episodes"]`` are committed; rows beyond it (and any file that
no committed episode references) come from an interrupted commit and are reported as notes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robot_learning.datasets import stats as stats_mod
from robot_learning.datasets.atomic import TMP_PREFIX, write_with_atomic
from robot_learning.datasets.layout import (
    EPISODES_DIR,
    STAGING_DIR,
    STATS_PATH,
    TASKS_PATH,
    data_relpath,
    list_chunk_files,
    video_keys,
    video_relpath,
)
from robot_learning.fileio import naming_path

EPISODE_COLUMNS = (
    "episode_index",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
)


def video_columns(key: str) -> tuple[str, str, str, str]:
    """Episodes-metadata columns locating one camera's frames of an episode."""
    return tuple(
        f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
    )


@dataclass
class EpisodeRecord:
    """Where one committed episode lives."""

    index: int
    length: int
    tasks: list[str]
    data_pos: tuple[int, int]
    from_index: int
    to_index: int
    videos: dict[str, tuple[int, int, float, float]]
    meta_path: Path
    meta_row: int


@dataclass
class Episodes:
    """The committed episodes (sorted by index) plus what loading them found."""

    records: list[EpisodeRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stats(self) -> list[stats_mod.Stats]:
        """Per-episode statistics from the ``stats/...`` columns, in episode order."""
        tables: dict[Path, pa.Table] = {}
        out = []
        for rec in self.records:
            if rec.meta_path not in tables:
                table = pq.read_table(rec.meta_path)
                tables[rec.meta_path] = table.select(
                    [c for c in table.column_names if c.startswith("stats/")]
                )
            row = tables[rec.meta_path].slice(rec.meta_row, 1).to_pylist()[0]
            out.append(stats_mod.from_episode_row(row))
        return out


def read_tasks(root: Path) -> tuple[list[str], list[str]]:
    """Tasks ordered by ``task_index``, and problems (missing/unreadable/non-contiguous)."""
    path = Path(root) / TASKS_PATH
    if not path.is_file():
        return [], [f"{path}: missing"]
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        return [], [f"{path}: unreadable parquet ({exc})"]
    text_col = next((c for c in ("__index_level_0__", "task") if c in table.column_names), None)
    if "task_index" not in table.column_names or text_col is None:
        return [], [
            f"{path}: needs columns 'task_index' and the task text, has {table.column_names}"
        ]
    indices = table["task_index"].to_pylist()
    texts = table[text_col].to_pylist()
    if sorted(indices) != list(range(len(indices))):
        return [], [f"{path}: task_index values are not 0..{len(indices) - 1}"]
    tasks = [""] * len(indices)
    for i, text in zip(indices, texts, strict=True):
        tasks[i] = text
    return tasks, []


def write_tasks(root: Path, tasks: list[str]) -> None:
    """Atomically write ``meta/tasks.parquet`` as pandas writes LeRobot's DataFrame
    (task strings as the unnamed index, column ``task_index``)."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    schema = pa.schema(
        [("task_index", pa.int64()), ("__index_level_0__", pa.string())],
        metadata={b"pandas": json.dumps(pandas_meta).encode()},
    )
    table = pa.Table.from_arrays(
        [pa.array(range(len(tasks)), pa.int64()), pa.array(tasks, pa.string())], schema=schema
    )
    path = Path(root) / TASKS_PATH
    with naming_path(path):
        write_with_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _record(row: dict[str, Any], keys: list[str], path: Path, i: int) -> EpisodeRecord:
    videos = {}
    for key in keys:
        chunk, file, start, end = (row[c] for c in video_columns(key))
        videos[key] = (int(chunk), int(file), float(start), float(end))
    return EpisodeRecord(
        index=int(row["episode_index"]),
        length=int(row["length"]),
        tasks=list(row.get("tasks") or []),
        data_pos=(int(row["data/chunk_index"]), int(row["data/file_index"])),
        from_index=int(row["dataset_from_index"]),
        to_index=int(row["dataset_to_index"]),
        videos=videos,
        meta_path=path,
        meta_row=i,
    )


def read_episodes(root: Path, info: dict[str, Any]) -> Episodes:
    """Load every ``meta/episodes`` file and check the committed episodes' bookkeeping."""
    root = Path(root)
    total, keys = info["total_episodes"], video_keys(info["features"])
    required = list(EPISODE_COLUMNS) + [c for k in keys for c in video_columns(k)]
    result = Episodes()
    found: dict[int, EpisodeRecord] = {}
    uncommitted = []
    for _, path in sorted(list_chunk_files(root / EPISODES_DIR).items()):
        if path.suffix != ".parquet":
            continue
        rel = path.relative_to(root)
        try:
            schema = pq.read_schema(path)
            columns = [c for c in schema.names if not c.startswith("stats/")]
            rows = pq.read_table(path, columns=columns).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            result.problems.append(f"{rel}: unreadable parquet ({exc})")
            continue
        missing = [c for c in required if c not in columns]
        if missing:
            result.problems.append(f"{rel}: missing columns {missing}")
            continue
        for i, row in enumerate(rows):
            if any(row[c] is None for c in required):
                result.problems.append(f"{rel}: row {i} has null bookkeeping values")
                continue
            rec = _record(row, keys, path, i)
            if rec.index >= total:
                uncommitted.append(rec.index)
            elif rec.index in found:
                result.problems.append(
                    f"{rel}: episode {rec.index} is listed twice (also in {found[rec.index].meta_path.relative_to(root)})"
                )
            else:
                found[rec.index] = rec
    if uncommitted:
        result.notes.append(
            f"{EPISODES_DIR}: ignoring uncommitted episodes {sorted(uncommitted)} (interrupted commit)"
        )
    missing_eps = [i for i in range(total) if i not in found]
    if missing_eps:
        shown = missing_eps if len(missing_eps) <= 10 else [*missing_eps[:10], "..."]
        result.problems.append(
            f"{EPISODES_DIR}: no metadata for committed episodes {shown} (info.json says {total})"
        )
    result.records = [found[i] for i in sorted(found)]
    _check_continuity(result, info)
    return result


def _check_continuity(result: Episodes, info: dict[str, Any]) -> None:
    expected_from = 0
    for rec in result.records:
        where = f"{EPISODES_DIR} (episode {rec.index})"
        if rec.length <= 0:
            result.problems.append(f"{where}: length {rec.length} must be positive")
        if rec.to_index - rec.from_index != rec.length:
            result.problems.append(
                f"{where}: dataset_to_index - dataset_from_index = {rec.to_index - rec.from_index} != length {rec.length}"
            )
        if rec.from_index != expected_from:
            result.problems.append(
                f"{where}: index discontinuity, dataset_from_index {rec.from_index} != {expected_from}"
            )
        expected_from = rec.to_index
        for key, (_, _, start, end) in rec.videos.items():
            if end <= start:
                result.problems.append(
                    f"{where}: videos/{key} to_timestamp {end} <= from_timestamp {start}"
                )
    total_len = sum(r.length for r in result.records)
    if not result.problems and total_len != info["total_frames"]:
        result.problems.append(
            f"meta/info.json: total_frames {info['total_frames']} != sum of episode lengths {total_len}"
        )


def read_stats_json(root: Path) -> tuple[stats_mod.Stats | None, list[str]]:
    """Parse ``meta/stats.json``; returns (stats or None, problems)."""
    path = Path(root) / STATS_PATH
    if not path.is_file():
        return None, [f"{path}: missing"]
    try:
        return stats_mod.from_json(json.loads(path.read_text())), []
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError) as exc:
        return None, [f"{path}: invalid ({exc})"]


def referenced_files(root: Path, info: dict[str, Any], episodes: Episodes) -> set[Path]:
    """Every file a committed episode points to."""
    refs = {rec.meta_path for rec in episodes.records}
    for rec in episodes.records:
        refs.add(root / data_relpath(info, *rec.data_pos))
        for key, (chunk, file, _, _) in rec.videos.items():
            refs.add(root / video_relpath(info, key, chunk, file))
    return refs


def find_leftovers(root: Path, info: dict[str, Any], episodes: Episodes) -> list[Path]:
    """Files no committed episode references: staging area, temp files, orphan chunk files."""
    root = Path(root)
    refs = referenced_files(root, info, episodes)
    out = []
    if (root / STAGING_DIR).exists():
        out.append(root / STAGING_DIR)
    for top in ("meta", "data", "videos"):
        if (root / top).is_dir():
            out += list((root / top).rglob(f"{TMP_PREFIX}*"))
    dirs = [root / EPISODES_DIR, root / "data"] + [
        root / "videos" / k for k in video_keys(info["features"])
    ]
    for directory in dirs:
        out += [p for p in list_chunk_files(directory).values() if p not in refs]
    return sorted(set(out))


def last_positions(info: dict[str, Any], episodes: Episodes) -> dict[str, tuple[int, int] | None]:
    """The last used ``(chunk, file)`` for data, episodes metadata and each camera."""
    out: dict[str, tuple[int, int] | None] = {"data": None, "meta": None}
    out.update({f"videos/{k}": None for k in video_keys(info["features"])})
    for rec in episodes.records:
        out["data"] = max(out["data"] or rec.data_pos, rec.data_pos)
        meta_pos = position_of(rec.meta_path)
        out["meta"] = max(out["meta"] or meta_pos, meta_pos)
        for key, (chunk, file, _, _) in rec.videos.items():
            name = f"videos/{key}"
            out[name] = max(out[name] or (chunk, file), (chunk, file))
    return out


def position_of(path: Path) -> tuple[int, int]:
    """``(chunk, file)`` of a ``chunk-XXX/file-XXX.ext`` path."""
    return int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1])
