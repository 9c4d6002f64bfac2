"""Per-feature statistics as LeRobot computes and stores them.

Every numeric feature gets ``min``, ``max``, ``mean``, ``std`` (population) shaped like the
feature, and ``count`` shaped ``(1,)``. Camera features get per-channel statistics in ``[0, 1]``
shaped ``(C, 1, 1)``, computed from a subsample of (downscaled) frames with LeRobot's heuristic
(all frames up to 100, then ``n ** 0.75`` frames, at most 10 000); their ``count`` is the number
of sampled frames. Episode statistics are merged with the exact pooled-variance formula, so the
dataset statistics are updated incrementally at each commit without rereading any data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from robot_learning.features import Feature, FeatureSpec

STAT_KEYS = ("min", "max", "mean", "std", "count")
Stats = dict[str, dict[str, np.ndarray]]


def num_samples(
    length: int, min_samples: int = 100, max_samples: int = 10_000, power: float = 0.75
) -> int:
    """How many frames of an episode of ``length`` frames feed the image statistics."""
    if length < min_samples:
        min_samples = length
    return max(min_samples, min(int(length**power), max_samples))


def sample_indices(length: int) -> np.ndarray:
    """Evenly spaced frame indices for image statistics."""
    return np.round(np.linspace(0, length - 1, num_samples(length))).astype(int)


def downsample(frame: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """Stride an ``(H, W, C)`` frame down to about ``target`` pixels when it is >= ``threshold``."""
    height, width = frame.shape[:2]
    if max(height, width) < threshold:
        return frame
    factor = int(width / target) if width > height else int(height / target)
    return frame[::factor, ::factor]


def has_stats(feature: Feature) -> bool:
    """Strings carry no statistics; everything else does."""
    return feature.dtype != "string"


def _array_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over axis 0 of ``[N, ...]``; min/max keep the data dtype, moments are float64."""
    as_float = values.astype(np.float64, copy=False)
    return {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": as_float.mean(axis=0),
        "std": as_float.std(axis=0),
        "count": np.array([len(values)], dtype=np.int64),
    }


def image_stats(samples: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of ``[N, H, W, C]`` uint8 frames, in ``[0, 1]``, shaped ``(C, 1, 1)``."""
    num, _, _, channels = samples.shape
    levels = np.arange(256, dtype=np.float64)
    per_channel = []
    for c in range(channels):
        # a 256-bin histogram gives exact moments of uint8 data ~100x faster than float reductions
        hist = np.bincount(samples[..., c].ravel(), minlength=256).astype(np.float64)
        total = hist.sum()
        mean = hist @ levels / total
        var = max(hist @ (levels - mean) ** 2 / total, 0.0)
        present = np.flatnonzero(hist)
        per_channel.append((present[0], present[-1], mean, np.sqrt(var)))
    arr = np.array(per_channel, dtype=np.float64) / 255.0
    out = {
        k: arr[:, i].reshape(channels, 1, 1) for i, k in enumerate(("min", "max", "mean", "std"))
    }
    out["count"] = np.array([num], dtype=np.int64)
    return out


def episode_stats(
    columns: Mapping[str, np.ndarray],
    image_samples: Mapping[str, np.ndarray],
    features: FeatureSpec,
) -> Stats:
    """Statistics of one episode.

    Args:
        columns: ``[T, *shape]`` (or ``[T]``) arrays of every non-image feature.
        image_samples: ``[N, h, w, C]`` uint8 sampled (downscaled) frames per camera.
        features: all features, user and bookkeeping.
    """
    out: Stats = {}
    for key, feat in features.items():
        if not has_stats(feat):
            continue
        if feat.is_image:
            out[key] = image_stats(image_samples[key])
        else:
            values = np.asarray(columns[key])
            out[key] = _array_stats(values.reshape(len(values), *feat.shape))
    return out


def aggregate(stats_list: Iterable[Mapping[str, Mapping[str, np.ndarray]]]) -> Stats:
    """Merge statistics of disjoint parts (exact for mean/std, min/max, counts)."""
    parts = [s for s in stats_list if s]
    keys = list(dict.fromkeys(k for s in parts for k in s))
    out: Stats = {}
    for key in keys:
        items = [s[key] for s in parts if key in s]
        counts = np.array([float(np.asarray(it["count"]).reshape(-1)[0]) for it in items])
        total = counts.sum()
        means = np.stack([np.asarray(it["mean"], dtype=np.float64) for it in items])
        var = np.stack([np.asarray(it["std"], dtype=np.float64) ** 2 for it in items])
        weights = (counts / total).reshape(-1, *([1] * (means.ndim - 1)))
        mean = (weights * means).sum(axis=0)
        variance = (weights * (var + (means - mean) ** 2)).sum(axis=0)
        out[key] = {
            "min": np.min(np.stack([np.asarray(it["min"]) for it in items]), axis=0),
            "max": np.max(np.stack([np.asarray(it["max"]) for it in items]), axis=0),
            "mean": mean,
            "std": np.sqrt(np.maximum(variance, 0.0)),
            "count": np.array([int(total)], dtype=np.int64),
        }
    return out


def to_json(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """JSON form of ``meta/stats.json`` (nested lists)."""
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}


def from_json(obj: Mapping[str, Any]) -> Stats:
    """Parse ``meta/stats.json``: float64 arrays, ``count`` as int64."""
    out: Stats = {}
    for key, st in obj.items():
        if not isinstance(st, Mapping):
            raise ValueError(f"stats for {key!r} must be an object, got {type(st).__name__}")
        out[key] = {
            s: np.asarray(v, dtype=np.int64 if s == "count" else np.float64) for s, v in st.items()
        }
    return out


def to_episode_columns(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """``stats/<feature>/<stat>`` values of one episodes-metadata row (LeRobot's flattening)."""
    return {
        f"stats/{k}/{s}": np.asarray(v).tolist() for k, st in stats.items() for s, v in st.items()
    }


def from_episode_row(row: Mapping[str, Any]) -> Stats:
    """Inverse of :func:`to_episode_columns` (other columns are ignored)."""
    nested: dict[str, dict[str, Any]] = {}
    for name, value in row.items():
        if not name.startswith("stats/") or value is None:
            continue
        key, _, stat = name[len("stats/") :].rpartition("/")
        nested.setdefault(key, {})[stat] = value
    return from_json(nested)


def expected_shape(feature: Feature) -> tuple[int, ...]:
    """Shape of a feature's min/max/mean/std arrays."""
    if feature.is_image:
        return (feature.shape[2], 1, 1)
    return feature.shape if feature.shape else (1,)


def check_stats(stats: Mapping[str, Mapping[str, np.ndarray]], features: FeatureSpec) -> list[str]:
    """Problems with ``stats`` for ``features``: missing features/keys, bad shapes, NaNs."""
    problems = []
    missing = [k for k, f in features.items() if has_stats(f) and k not in stats]
    if missing:
        problems.append(f"missing statistics for features {missing}")
    for key, feat in features.items():
        if key not in stats or not has_stats(feat):
            continue
        st = stats[key]
        absent = [s for s in STAT_KEYS if s not in st]
        if absent:
            problems.append(f"{key!r} lacks {absent}")
            continue
        shape = expected_shape(feat)
        for s in ("min", "max", "mean", "std"):
            value = np.asarray(st[s])
            if value.shape != shape:
                problems.append(f"{key!r} {s} has shape {value.shape}, expected {shape}")
            elif not np.all(np.isfinite(value)):
                problems.append(f"{key!r} {s} is not finite")
        if np.asarray(st["count"]).shape != (1,):
            problems.append(f"{key!r} count must have shape (1,)")
    return problems


def count_of(stats: Mapping[str, Mapping[str, np.ndarray]]) -> int | None:
    """Frames aggregated into ``stats`` (from the ``index`` feature), or None if unknown."""
    for key in ("index", "frame_index", "timestamp"):
        if key in stats and "count" in stats[key]:
            return int(np.asarray(stats[key]["count"]).reshape(-1)[0])
    return None
