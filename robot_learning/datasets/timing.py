"""Does a dataset's ``fps`` agree with its timestamps? And the repair when it does not.

LeRobot stores both ``meta/info.json``'s ``fps`` and a per-frame ``timestamp`` (frame ``i`` of an
episode at ``i / fps``). A policy trained on a dataset inherits its ``fps`` as its control rate,
so a wrong ``fps`` silently trains, exports and deploys at the wrong rate.
:func:`check_timing` refuses such a dataset; :func:`repair_fps` rewrites ``fps`` from the
timestamps when they are regular.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_learning.datasets.atomic import write_json_atomic
from robot_learning.datasets.layout import INFO_PATH, DatasetError

#: timestamps may differ from ``frame_index / fps`` by this much (seconds, plus float32 rounding)
TOLERANCE_S = 1e-4


def _excess(ts: np.ndarray, expected: np.ndarray) -> float:
    """Largest error beyond the tolerance the validator also uses (0 when all agree)."""
    tol = np.maximum(TOLERANCE_S, 2e-7 * expected)
    return float(np.max(np.maximum(np.abs(ts - expected) - tol, 0.0)))


@dataclass(frozen=True)
class Timing:
    """What the timestamps say about a dataset's rate."""

    declared_fps: int
    """``fps`` in ``meta/info.json``."""
    implied_fps: float | None
    """The rate the timestamps were written at (None when no episode has two frames)."""
    regular: bool
    """Every episode's timestamps are ``frame_index / implied_fps``."""
    worst_error_s: float
    """Largest ``|timestamp - frame_index / declared_fps|`` beyond the rounding tolerance."""

    @property
    def consistent(self) -> bool:
        """Timestamps agree with the declared ``fps``."""
        return self.worst_error_s == 0.0


def dataset_timing(dataset) -> Timing:
    """Compare a :class:`~robot_learning.datasets.LeRobotDataset`'s timestamps with its ``fps``."""
    cols = dataset.columns(["timestamp", "frame_index"])
    ts = cols["timestamp"].astype(np.float64)
    idx = cols["frame_index"].astype(np.float64)
    fps = int(dataset.fps)
    if ts.size == 0:
        return Timing(fps, None, True, 0.0)
    worst = _excess(ts, idx / fps)
    later = idx > 0
    implied = None
    regular = True
    if later.any():
        rates = idx[later] / np.maximum(ts[later], 1e-12)
        implied = float(np.median(rates))
        regular = _excess(ts, idx / implied) == 0.0
    return Timing(fps, implied, regular, worst)


def check_timing(dataset) -> None:
    """Raise :class:`DatasetError` when the dataset's timestamps disagree with its ``fps``."""
    timing = dataset_timing(dataset)
    if timing.consistent:
        return
    root = dataset.root
    if timing.implied_fps is not None and timing.regular:
        fix = (
            f"Its timestamps are regular at {timing.implied_fps:.3f} Hz; if that is the rate it "
            f"was recorded at, run `robot-learning dataset fix-fps {root}` to set fps from the "
            "timestamps"
        )
    else:
        fix = "Its timestamps are irregular, so the rate cannot be repaired; re-record it"
    raise DatasetError(
        f"{root}: meta/info.json says fps={timing.declared_fps} but the timestamps disagree "
        f"(off by up to {timing.worst_error_s:.3f} s); training on it would run the policy at the "
        f"wrong control rate. {fix}"
    )


def repair_fps(root: str | Path) -> tuple[int, int]:
    """Set ``meta/info.json``'s ``fps`` to the rate the timestamps imply; returns (old, new).

    Raises :class:`DatasetError` when the timestamps are irregular or imply a non-integer rate.
    """
    from robot_learning.datasets.reader import LeRobotDataset

    dataset = LeRobotDataset(root)
    timing = dataset_timing(dataset)
    if timing.consistent:
        return timing.declared_fps, timing.declared_fps
    if timing.implied_fps is None or not timing.regular:
        raise DatasetError(f"{root}: timestamps are irregular; cannot infer fps, re-record it")
    new = round(timing.implied_fps)
    if abs(new - timing.implied_fps) > 1e-3 * new:
        raise DatasetError(
            f"{root}: timestamps imply {timing.implied_fps:.4f} Hz, not an integer rate; "
            "LeRobot's fps is an integer, so this cannot be repaired"
        )
    info = dict(dataset.info)
    info["fps"] = new
    for feature in info.get("features", {}).values():
        if isinstance(feature.get("info"), dict) and "video.fps" in feature["info"]:
            feature["info"]["video.fps"] = new
    write_json_atomic(Path(root) / INFO_PATH, info)
    return timing.declared_fps, new
