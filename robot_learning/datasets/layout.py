"""LeRobotDataset v3.0 on-disk layout: paths, constants, ``meta/info.json`` and feature entries.

A v3.0 dataset folder::

    meta/info.json                              the schema and totals (our single commit point)
    meta/stats.json                             aggregated per-feature statistics
    meta/tasks.parquet                          task string (pandas index) -> task_index
    meta/episodes/chunk-XXX/file-XXX.parquet    one row per episode: lengths, file pointers, stats
    data/chunk-XXX/file-XXX.parquet             one row per frame (non-video features + bookkeeping)
    videos/<key>/chunk-XXX/file-XXX.mp4         camera streams

File ``(chunk, file)`` positions advance as LeRobot's do: ``file`` counts up to ``chunks_size - 1``
then ``chunk`` increments. Hidden names (``.staging/``, ``.lock``, ``.tmp-*``) are ours and are
never part of the dataset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robot_learning.features import Feature, FeatureSpec

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000  # max files per chunk directory (LeRobot default)
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 500

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
STAGING_DIR = ".staging"
LOCK_FILE = ".lock"

#: columns LeRobot adds to every frame; the writer fills them, users never pass them.
BOOKKEEPING_FEATURES = FeatureSpec(
    {
        "timestamp": Feature("float32", (1,)),
        "frame_index": Feature("int64", (1,)),
        "episode_index": Feature("int64", (1,)),
        "index": Feature("int64", (1,)),
        "task_index": Feature("int64", (1,)),
    }
)
#: LeRobot's axis names for camera features (its policy factory reads ``names[2]``).
IMAGE_AXIS_NAMES = ["height", "width", "channels"]
# Marks image ``names`` we filled in, so reading gives back the caller's ``names=None``.
_DEFAULT_NAMES_MARK = "names_default"

REQUIRED_INFO_KEYS = (
    "codebase_version",
    "fps",
    "total_episodes",
    "total_frames",
    "total_tasks",
    "chunks_size",
    "data_path",
    "features",
)
_CHUNK_FILE_RE = re.compile(r"^chunk-(\d+)/file-(\d+)\.(parquet|mp4)$")


class DatasetError(RuntimeError):
    """A dataset folder is missing, malformed or inconsistent; the message names the file."""


def next_position(position: tuple[int, int] | None, chunks_size: int) -> tuple[int, int]:
    """The ``(chunk, file)`` after ``position`` (``(0, 0)`` for the first file)."""
    if position is None:
        return 0, 0
    chunk, file = position
    return (chunk + 1, 0) if file >= chunks_size - 1 else (chunk, file + 1)


def data_relpath(info: Mapping[str, Any], chunk: int, file: int) -> str:
    """Relative path of a data parquet file."""
    return info.get("data_path", DATA_PATH).format(chunk_index=chunk, file_index=file)


def video_relpath(info: Mapping[str, Any], key: str, chunk: int, file: int) -> str:
    """Relative path of a camera's mp4 file."""
    template = info.get("video_path") or VIDEO_PATH
    return template.format(video_key=key, chunk_index=chunk, file_index=file)


def episodes_relpath(chunk: int, file: int) -> str:
    """Relative path of an episodes-metadata parquet file."""
    return EPISODES_PATH.format(chunk_index=chunk, file_index=file)


def list_chunk_files(directory: Path) -> dict[tuple[int, int], Path]:
    """Every ``chunk-XXX/file-XXX.{parquet,mp4}`` below ``directory`` keyed by position."""
    found: dict[tuple[int, int], Path] = {}
    if not directory.is_dir():
        return found
    for path in directory.glob("chunk-*/file-*"):
        match = _CHUNK_FILE_RE.match(path.relative_to(directory).as_posix())
        if match and path.is_file():
            found[(int(match[1]), int(match[2]))] = path
    return found


def video_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Keys of ``video`` features in an info.json ``features`` dict."""
    return [k for k, ft in features.items() if ft.get("dtype") == "video"]


def feature_entry(feature: Feature, fps: int) -> dict[str, Any]:
    """The ``meta/info.json`` entry of one user feature (LeRobot layout plus bounds)."""
    entry = feature.to_dict()
    if feature.is_image and feature.names is None:
        entry["names"] = list(IMAGE_AXIS_NAMES)
        entry[_DEFAULT_NAMES_MARK] = True
    if feature.dtype != "video":
        entry["fps"] = fps  # LeRobot's v3.0 converter records fps on non-video features
    return entry


def features_to_info(spec: FeatureSpec, fps: int) -> dict[str, dict[str, Any]]:
    """info.json ``features``: the user features followed by LeRobot's bookkeeping columns."""
    overlap = [k for k in spec if k in BOOKKEEPING_FEATURES]
    if overlap:
        raise DatasetError(f"features {overlap} are reserved LeRobot bookkeeping columns")
    bad = [k for k in spec if "/" in k]
    if bad:
        raise DatasetError(f"feature names must not contain '/': {bad}")
    out = {k: feature_entry(f, fps) for k, f in spec.items()}
    for key, feat in BOOKKEEPING_FEATURES.items():
        out[key] = {**feat.to_dict(), "fps": fps}
    return out


def spec_from_info(features: Mapping[str, Mapping[str, Any]]) -> FeatureSpec:
    """The user :class:`FeatureSpec` stored in an info.json ``features`` dict."""
    out = {}
    for key, entry in features.items():
        if key in BOOKKEEPING_FEATURES:
            continue
        feat = Feature.from_dict(entry)
        if entry.get(_DEFAULT_NAMES_MARK):
            feat = Feature(feat.dtype, feat.shape, None, feat.low, feat.high, feat.control_mode)
        out[key] = feat
    return FeatureSpec(out)


def normalise_spec(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` as it reads back from disk (so resume compares like with like)."""
    return spec_from_info(features_to_info(spec, fps=1))


def new_info(spec: FeatureSpec, fps: int, robot_type: str | None) -> dict[str, Any]:
    """info.json of an empty dataset."""
    if int(fps) != fps or fps <= 0:
        raise DatasetError(f"fps must be a positive integer, got {fps!r}")
    has_video = any(f.dtype == "video" for f in spec.values())
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": DEFAULT_CHUNK_SIZE,
        "data_files_size_in_mb": DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "fps": int(fps),
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": features_to_info(spec, int(fps)),
    }


def read_info(root: Path) -> dict[str, Any]:
    """Load and structurally check ``meta/info.json``; :class:`DatasetError` names the problem."""
    path = Path(root) / INFO_PATH
    if not path.is_file():
        raise DatasetError(f"{path}: missing (not a LeRobot dataset, or never committed)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(info).__name__}")
    missing = [k for k in REQUIRED_INFO_KEYS if k not in info]
    if missing:
        raise DatasetError(f"{path}: missing keys {missing}")
    if not isinstance(info["features"], dict) or not info["features"]:
        raise DatasetError(f"{path}: 'features' must be a non-empty object")
    for key in ("fps", "total_episodes", "total_frames", "total_tasks", "chunks_size"):
        if not isinstance(info[key], int) or isinstance(info[key], bool) or info[key] < 0:
            raise DatasetError(f"{path}: {key!r} must be a non-negative integer, got {info[key]!r}")
    if info["fps"] == 0 or info["chunks_size"] == 0:
        raise DatasetError(f"{path}: 'fps' and 'chunks_size' must be positive")
    version = str(info["codebase_version"])
    if not version.startswith("v3."):
        raise DatasetError(
            f"{path}: codebase_version {version!r} is not v3.x (convert older datasets with "
            "LeRobot's convert_dataset_v21_to_v30 first)"
        )
    missing_bk = [k for k in BOOKKEEPING_FEATURES if k not in info["features"]]
    if missing_bk:
        raise DatasetError(f"{path}: features lack LeRobot bookkeeping columns {missing_bk}")
    try:
        spec_from_info(info["features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: malformed feature entry ({exc})") from None
    if video_keys(info["features"]) and not info.get("video_path"):
        raise DatasetError(f"{path}: has video features but no 'video_path'")
    return info
