"""Observation bounds: the range outside of which an observation is rejected before a policy sees it.

Every built-in task declares physical bounds on its observation features (joint limits,
workspace, object ranges; see ``sim/``). Features that declare none (external suites with
unbounded spaces, datasets and bundles recorded before observations carried bounds) fall back to
the dataset's statistics widened by a margin: ``[min - pad, max + pad]`` with ``pad = max(margin
* (max - min), min_pad)`` (``mean -/+ STD_SPAN * std`` stands in for min/max when only mean/std
were kept). A feature with neither declared bounds nor statistics is not range-checked.

:func:`observation_bounds` picks the bounds of one feature, :func:`bounds_violation` explains why
a value falls outside them (naming the key, element, value and bound), and the bundle runtime
(:class:`~robot_learning.runtime.BundlePolicy`) and the ROS 2 policy node
(:func:`ros_nodes.control.check_observation`) both use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_learning.features import Feature

#: statistics fallback: bounds = observed range widened by this fraction of it on each side
DEFAULT_MARGIN = 0.5
#: ... and by at least this much (absolute, feature units), so constant features get a range
MIN_PAD = 0.05
#: with only mean/std statistics, ``mean -/+ STD_SPAN * std`` stands in for the observed range
STD_SPAN = 4.0


@dataclass(frozen=True)
class Bounds:
    """Per-element inclusive bounds of one feature (flattened) and where they come from."""

    low: np.ndarray
    high: np.ndarray
    source: str
    """``declared`` (the feature's own bounds) or a description of the statistics fallback."""

    def contains(self, value: np.ndarray) -> bool:
        """True when every element of ``value`` (any leading batch/time dims) is inside."""
        flat = np.asarray(value, np.float64).reshape(-1, self.low.size)
        return bool(np.all((flat >= self.low) & (flat <= self.high)))

    def middle(self) -> np.ndarray:
        """The centre of the box (flattened)."""
        return (self.low + self.high) / 2


def declared_bounds(feature: Feature) -> Bounds | None:
    """The feature's own finite bounds, or None if it declares none (or any is infinite)."""
    if feature.low is None or feature.high is None:
        return None
    low, high = np.asarray(feature.low, np.float64), np.asarray(feature.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return None
    return Bounds(low, high, "declared")


def stats_bounds(
    stats: Mapping[str, Any] | None,
    size: int,
    margin: float = DEFAULT_MARGIN,
    min_pad: float = MIN_PAD,
) -> Bounds | None:
    """Bounds from dataset statistics (``min``/``max``, else ``mean``/``std``) widened by a margin.

    Returns None when ``stats`` holds neither pair or their size is not ``size``.
    """
    if not stats:
        return None
    if "min" in stats and "max" in stats:
        lo = np.asarray(stats["min"], np.float64).ravel()
        hi = np.asarray(stats["max"], np.float64).ravel()
        what = "min/max"
    elif "mean" in stats and "std" in stats:
        mean = np.asarray(stats["mean"], np.float64).ravel()
        std = np.abs(np.asarray(stats["std"], np.float64).ravel())
        lo, hi = mean - STD_SPAN * std, mean + STD_SPAN * std
        what = f"mean -/+ {STD_SPAN:g} std"
    else:
        return None
    if lo.size != size or hi.size != size or not np.all(np.isfinite(lo) & np.isfinite(hi)):
        return None
    pad = np.maximum(margin * np.abs(hi - lo), min_pad)
    source = (
        f"dataset statistics ({what} widened by {margin:.0%} of the range, at least {min_pad:g})"
    )
    return Bounds(np.minimum(lo, hi) - pad, np.maximum(lo, hi) + pad, source)


def observation_bounds(
    feature: Feature,
    stats: Mapping[str, Any] | None = None,
    margin: float = DEFAULT_MARGIN,
    min_pad: float = MIN_PAD,
) -> Bounds | None:
    """The bounds an observation of ``feature`` must respect: declared ones, else statistics.

    Images (uint8 by construction) and features with neither declared bounds nor usable
    statistics return None (no range check).
    """
    if feature.is_image:
        return None
    declared = declared_bounds(feature)
    if declared is not None:
        return declared
    return stats_bounds(stats, int(np.prod(feature.shape)), margin, min_pad)


def spec_observation_bounds(
    features: Mapping[str, Feature],
    keys: list[str],
    stats: Mapping[str, Mapping[str, Any]] | None = None,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, Bounds | None]:
    """:func:`observation_bounds` of each key, with ``stats`` (e.g. a bundle's normalisation stats)."""
    stats = stats or {}
    return {k: observation_bounds(features[k], stats.get(k), margin) for k in keys}


def bounds_violation(
    key: str, value: np.ndarray, bounds: Bounds | None, names: tuple[str, ...] | None = None
) -> str | None:
    """Why ``value`` (one frame, or with leading batch/time dims) is outside ``bounds``; None if inside.

    The message names the key, the first offending element (index and name), its value and the
    bound it breaks, how many elements are out, and where the bounds come from.
    """
    if bounds is None:
        return None
    flat = np.asarray(value, np.float64).reshape(-1, bounds.low.size)
    bad = (flat < bounds.low) | (flat > bounds.high)
    if not bad.any():
        return None
    row, col = np.argwhere(bad)[0]
    v, lo, hi = flat[row, col], bounds.low[col], bounds.high[col]
    name = f" ({names[col]})" if names is not None and col < len(names) else ""
    side = f"below the lower bound {lo:g}" if v < lo else f"above the upper bound {hi:g}"
    count = int(bad.sum())
    more = f"; {count - 1} more element value(s) are out of range" if count > 1 else ""
    return (
        f"{key!r} element {int(col)}{name} = {v:g} is {side} (allowed [{lo:g}, {hi:g}], "
        f"{bounds.source}){more}. Check the sensor, its units and the topic/key mapping; a "
        "value outside the physical range never reaches the policy"
    )
