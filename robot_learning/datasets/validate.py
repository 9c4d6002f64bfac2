"""Check a LeRobotDataset v3.0 folder and summarise it.

:func:`check_dataset` never raises on a broken dataset: every problem becomes one message naming
the file involved (missing file, bad JSON, unreadable parquet, schema mismatch, frame-count
mismatch between the episodes table / data rows / video frames, index discontinuity, missing
statistics). Leftovers of an interrupted commit are *notes*, not problems: readers ignore them and
a resuming writer deletes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_learning.datasets import stats as stats_mod
from robot_learning.datasets.columns import data_schema, to_numpy, types_compatible
from robot_learning.datasets.layout import (
    BOOKKEEPING_FEATURES,
    STATS_PATH,
    DatasetError,
    data_relpath,
    read_info,
    spec_from_info,
    video_relpath,
)
from robot_learning.datasets.metadata import (
    EpisodeRecord,
    Episodes,
    find_leftovers,
    read_episodes,
    read_stats_json,
    read_tasks,
)
from robot_learning.datasets.video import decode_video, probe_video
from robot_learning.features import FeatureSpec

log = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    """Outcome of :func:`check_dataset`."""

    problems: list[str] = field(default_factory=list)
    """Errors: the dataset is not a valid LeRobotDataset v3.0."""
    notes: list[str] = field(default_factory=list)
    """Harmless findings (e.g. leftovers of an interrupted commit)."""

    @property
    def ok(self) -> bool:
        """True when there are no problems."""
        return not self.problems


def validate_dataset(root: str | Path, deep: bool = False) -> list[str]:
    """Every problem found in the dataset at ``root`` (empty list = valid); never raises.

    Args:
        root: dataset folder.
        deep: also decode every video frame (slower; catches corrupt bitstreams).
    """
    report = check_dataset(root, deep=deep)
    for note in report.notes:
        log.info("%s: %s", root, note)
    return report.problems


def check_dataset(root: str | Path, deep: bool = False) -> ValidationReport:
    """Problems and notes for the dataset at ``root`` (see :func:`validate_dataset`)."""
    root = Path(root)
    report = ValidationReport()
    if not root.is_dir():
        report.problems.append(f"{root}: not a directory")
        return report
    try:
        info = read_info(root)
    except DatasetError as exc:
        report.problems.append(_rel(root, str(exc)))
        report.problems += [_rel(root, p) for p in read_tasks(root)[1] + read_stats_json(root)[1]]
        return report
    all_features = FeatureSpec(
        {**spec_from_info(info["features"]).features, **BOOKKEEPING_FEATURES.features}
    )
    tasks, problems = read_tasks(root)
    report.problems += [_rel(root, p) for p in problems]
    if not problems and len(tasks) < info["total_tasks"]:
        report.problems.append(
            f"meta/tasks.parquet: {len(tasks)} tasks, info.json total_tasks is {info['total_tasks']}"
        )
    elif len(tasks) > info["total_tasks"]:
        report.notes.append(
            f"meta/tasks.parquet: {len(tasks) - info['total_tasks']} uncommitted task(s) (interrupted commit)"
        )
    _check_stats(root, info, all_features, report)
    episodes = read_episodes(root, info)
    report.problems += episodes.problems
    report.notes += episodes.notes
    _check_data(root, info, all_features, episodes.records, len(tasks), report)
    _check_videos(root, info, all_features, episodes.records, deep, report)
    for path in find_leftovers(root, info, episodes):
        report.notes.append(
            f"{path.relative_to(root)}: not part of any committed episode (leftover of an interrupted commit)"
        )
    if info["total_episodes"] and not episodes.records and not episodes.problems:
        report.problems.append("meta/episodes: no episodes metadata files")
    return report


def _rel(root: Path, message: str) -> str:
    return message.replace(f"{root}/", "")


def _check_stats(
    root: Path, info: dict[str, Any], features: FeatureSpec, report: ValidationReport
) -> None:
    stats, problems = read_stats_json(root)
    report.problems += [_rel(root, p) for p in problems]
    if stats is None or info["total_frames"] == 0:
        return
    report.problems += [f"{STATS_PATH}: {p}" for p in stats_mod.check_stats(stats, features)]
    count = stats_mod.count_of(stats)
    if count is not None and count > info["total_frames"]:
        report.notes.append(
            f"{STATS_PATH}: covers {count} frames, {info['total_frames']} committed (interrupted commit; readers re-aggregate)"
        )
    elif count is not None and count < info["total_frames"]:
        report.problems.append(
            f"{STATS_PATH}: covers {count} frames but the dataset has {info['total_frames']}"
        )


def _check_schema(rel: str, schema: pa.Schema, features: FeatureSpec) -> list[str]:
    expected = data_schema(features)
    problems = []
    missing = [f.name for f in expected if f.name not in schema.names]
    extra = [n for n in schema.names if n not in expected.names and n != "__index_level_0__"]
    if missing:
        problems.append(f"{rel}: missing columns {missing} declared in info.json features")
    if extra:
        problems.append(f"{rel}: columns {extra} are not in info.json features")
    for exp in expected:
        if exp.name in schema.names and not types_compatible(schema.field(exp.name).type, exp.type):
            problems.append(
                f"{rel}: column {exp.name!r} has type {schema.field(exp.name).type}, info.json "
                f"declares {features[exp.name].dtype} {features[exp.name].shape} ({exp.type})"
            )
    return problems


def _check_data(
    root: Path,
    info: dict[str, Any],
    features: FeatureSpec,
    records: list[EpisodeRecord],
    num_tasks: int,
    report: ValidationReport,
) -> None:
    by_file: dict[tuple[int, int], list[EpisodeRecord]] = {}
    for rec in records:
        by_file.setdefault(rec.data_pos, []).append(rec)
    fps = info["fps"]
    for pos, recs in sorted(by_file.items()):
        rel = data_relpath(info, *pos)
        path = root / rel
        if not path.is_file():
            report.problems.append(f"{rel}: missing (episodes {[r.index for r in recs]})")
            continue
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            report.problems.append(f"{rel}: unreadable parquet ({exc})")
            continue
        schema_problems = _check_schema(rel, table.schema, features)
        report.problems += schema_problems
        if schema_problems or "index" not in table.column_names:
            continue
        cols = {k: to_numpy(table[k], features[k], squeeze=True) for k in BOOKKEEPING_FEATURES}
        for rec in recs:
            mask = (cols["index"] >= rec.from_index) & (cols["index"] < rec.to_index)
            rows = int(mask.sum())
            where = f"{rel} (episode {rec.index})"
            if rows != rec.length:
                report.problems.append(
                    f"{where}: frame count mismatch, {rows} data rows but episode length {rec.length}"
                )
                continue
            ep = {k: v[mask] for k, v in cols.items()}
            _check_episode_columns(where, rec, ep, fps, num_tasks, report)
        covered = sum(r.length for r in recs)
        if covered != table.num_rows:
            report.problems.append(
                f"{rel}: {table.num_rows - covered} rows belong to no committed episode"
            )


def _check_episode_columns(
    where: str,
    rec: EpisodeRecord,
    ep: dict[str, np.ndarray],
    fps: int,
    num_tasks: int,
    report: ValidationReport,
) -> None:
    n = rec.length
    if not np.array_equal(ep["index"], np.arange(rec.from_index, rec.to_index)):
        report.problems.append(
            f"{where}: index discontinuity, 'index' is not {rec.from_index}..{rec.to_index - 1}"
        )
    if not np.array_equal(ep["frame_index"], np.arange(n)):
        report.problems.append(f"{where}: frame_index discontinuity, not 0..{n - 1}")
    if not (ep["episode_index"] == rec.index).all():
        report.problems.append(f"{where}: episode_index column is not {rec.index} on every row")
    expected_ts = ep["frame_index"].astype(np.float64) / fps
    tol = np.maximum(1e-4, 2e-7 * expected_ts)
    if not (np.abs(ep["timestamp"].astype(np.float64) - expected_ts) <= tol).all():
        report.problems.append(
            f"{where}: timestamps are not frame_index / fps ({fps}); if only meta/info.json's "
            "fps is wrong, `robot-learning dataset fix-fps DIR` sets it from the timestamps"
        )
    bad = np.unique(ep["task_index"][(ep["task_index"] < 0) | (ep["task_index"] >= num_tasks)])
    if bad.size:
        report.problems.append(
            f"{where}: task_index values {bad.tolist()} not in meta/tasks.parquet"
        )


def _check_videos(
    root: Path,
    info: dict[str, Any],
    features: FeatureSpec,
    records: list[EpisodeRecord],
    deep: bool,
    report: ValidationReport,
) -> None:
    probes: dict[Path, Any] = {}
    for rec in records:
        for key, (chunk, file, start, end) in rec.videos.items():
            rel = video_relpath(info, key, chunk, file)
            path = root / rel
            if path not in probes:
                probes[path] = _probe(rel, path, features[key].shape, report)
            probe = probes[path]
            if probe is None:
                continue
            frames = probe.frames_between(start, end)
            if frames != rec.length:
                report.problems.append(
                    f"{rel} (episode {rec.index}): frame count mismatch, {frames} video frames in "
                    f"[{start:.3f}, {end:.3f}) s but episode length {rec.length}"
                )
            elif deep:
                try:
                    decoded = decode_video(path, info["fps"], start, end, features[key].shape[2])
                    if len(decoded) != rec.length:
                        report.problems.append(
                            f"{rel} (episode {rec.index}): decoded {len(decoded)} frames, expected {rec.length}"
                        )
                except (OSError, ValueError) as exc:
                    report.problems.append(f"{rel} (episode {rec.index}): cannot decode ({exc})")


def _probe(rel: str, path: Path, shape: tuple[int, ...], report: ValidationReport) -> Any:
    if not path.is_file():
        report.problems.append(f"{rel}: missing")
        return None
    try:
        probe = probe_video(path)
    except (OSError, ValueError, IndexError) as exc:
        report.problems.append(f"{rel}: unreadable video ({exc})")
        return None
    if (probe.height, probe.width) != tuple(shape[:2]):
        report.problems.append(
            f"{rel}: resolution {probe.height}x{probe.width}, info.json declares {shape[0]}x{shape[1]}"
        )
    return probe


def _human(num: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num < 1024 or unit == "GB":
            return f"{num:.1f} {unit}" if unit != "B" else f"{int(num)} B"
        num /= 1024
    return f"{num:.1f} GB"


def dataset_info(root: str | Path) -> dict[str, Any]:
    """A JSON-ready summary: episodes, frames, fps, features (``key: "dtype shape"``), tasks,
    cameras, episode lengths, size on disk, codebase_version. Raises :class:`DatasetError` if
    ``meta/info.json`` is unusable."""
    root = Path(root)
    info = read_info(root)
    tasks, _ = read_tasks(root)
    episodes: Episodes = read_episodes(root, info)
    lengths = [r.length for r in episodes.records]
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    spec = spec_from_info(info["features"])
    return {
        "root": str(root),
        "codebase_version": info["codebase_version"],
        "robot_type": info.get("robot_type"),
        "fps": info["fps"],
        "episodes": info["total_episodes"],
        "frames": info["total_frames"],
        "tasks": tasks[: info["total_tasks"]],
        "features": {k: f"{f.dtype} {tuple(f.shape)}" for k, f in spec.items()},
        "cameras": spec.image_keys,
        "episode_length": (
            {"min": min(lengths), "mean": round(float(np.mean(lengths)), 2), "max": max(lengths)}
            if lengths
            else None
        ),
        "size_bytes": size,
        "size": _human(size),
    }
