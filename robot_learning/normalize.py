"""Normalisation that ships with the weights (STYLE.md habit 5).

A :class:`Normalizer` is an ``nn.Module`` whose buffers hold the dataset statistics it was
built from, so the same numbers travel in the checkpoint, the exported bundle and the ROS node.
A feature without the statistics its mode needs is an error naming the feature and the missing
statistic (never a silent skip, a known LeRobot defect).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from robot_learning.features import FeatureSpec

#: how a feature is mapped: min_max -> [-1, 1]; mean_std -> zero mean unit variance;
#: image -> uint8 [0, 255] to float [0, 1] (no stats needed); identity -> unchanged.
MODES = ("min_max", "mean_std", "image", "identity")
NEEDS = {"min_max": ("min", "max"), "mean_std": ("mean", "std"), "image": (), "identity": ()}
EPS = 1e-6


class NormalizationError(KeyError):
    """A statistic needed for normalisation is missing or malformed."""

    def __str__(self) -> str:
        return str(self.args[0])


def default_modes(
    spec: FeatureSpec, state: str = "min_max", action: str = "min_max"
) -> dict[str, str]:
    """Mode per feature: images scaled to [0, 1], other observations ``state``, actions ``action``."""
    modes = {}
    for key, feat in spec.items():
        if feat.is_image:
            modes[key] = "image"
        elif key == "action":
            modes[key] = action
        elif key.startswith("observation."):
            modes[key] = state
    return modes


class Normalizer(nn.Module):
    """Per-feature (un)normalisation with statistics stored as buffers.

    Args:
        spec: the features to handle (shapes are checked against the statistics).
        modes: feature key -> one of :data:`MODES`.
        stats: feature key -> {stat name -> array}, e.g. a dataset's ``meta/stats.json``. May be
            None when the buffers are about to be filled by ``load_state_dict``.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        modes: Mapping[str, str],
        stats: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        super().__init__()
        self.modes = dict(modes)
        bad = {k: m for k, m in self.modes.items() if m not in MODES}
        if bad:
            raise ValueError(f"Unknown normalisation modes {bad}; use one of {MODES}")
        unknown = sorted(set(self.modes) - set(spec))
        if unknown:
            raise NormalizationError(
                f"Normalisation modes given for features {unknown} not in the spec"
            )
        problems = []
        for key, mode in self.modes.items():
            shape = spec[key].shape
            for stat in NEEDS[mode]:
                value = None if stats is None else (stats.get(key) or {}).get(stat)
                if stats is not None and value is None:
                    problems.append(f"{key!r} has no {stat!r}")
                    continue
                arr = (
                    np.zeros(shape, np.float32) if value is None else np.asarray(value, np.float32)
                )
                try:
                    arr = np.broadcast_to(arr.reshape(arr.shape), shape).copy()
                except ValueError:
                    problems.append(f"{key!r} {stat!r} has shape {arr.shape}, expected {shape}")
                    continue
                if not np.all(np.isfinite(arr)):
                    problems.append(f"{key!r} {stat!r} contains NaN/Inf")
                    continue
                self.register_buffer(_buf(key, stat), torch.from_numpy(arr))
        if problems:
            raise NormalizationError(
                "Missing or invalid normalisation statistics: "
                + "; ".join(problems)
                + ". Recompute the dataset stats (meta/stats.json) or change the feature's mode."
            )

    def _stat(self, key: str, stat: str) -> torch.Tensor:
        return getattr(self, _buf(key, stat))

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Map raw values of ``key`` (last dims = feature shape) into network space."""
        mode = self._mode(key)
        if mode == "min_max":
            lo, hi = self._stat(key, "min"), self._stat(key, "max")
            return (x - lo) / (hi - lo).clamp_min(EPS) * 2.0 - 1.0
        if mode == "mean_std":
            return (x - self._stat(key, "mean")) / self._stat(key, "std").clamp_min(EPS)
        if mode == "image":
            return x.float() / 255.0 if x.dtype == torch.uint8 else x
        return x

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize` (images: identity on the [0, 1] scale)."""
        mode = self._mode(key)
        if mode == "min_max":
            lo, hi = self._stat(key, "min"), self._stat(key, "max")
            return (x + 1.0) / 2.0 * (hi - lo).clamp_min(EPS) + lo
        if mode == "mean_std":
            return x * self._stat(key, "std").clamp_min(EPS) + self._stat(key, "mean")
        return x

    def _mode(self, key: str) -> str:
        try:
            return self.modes[key]
        except KeyError:
            raise NormalizationError(
                f"Feature {key!r} has no normalisation mode; configured: {sorted(self.modes)}"
            ) from None

    def stats_dict(self) -> dict[str, dict[str, list]]:
        """The statistics as plain lists (for policy.json / bundles)."""
        out: dict[str, dict[str, list]] = {}
        for key, mode in self.modes.items():
            out[key] = {s: self._stat(key, s).tolist() for s in NEEDS[mode]}
        return out


def _buf(key: str, stat: str) -> str:
    # buffer names may not contain dots
    return f"{key.replace('.', '__')}__{stat}"
