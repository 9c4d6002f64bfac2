"""Feature specs: the one description of observations and actions shared by every component.

A :class:`FeatureSpec` maps LeRobot key names (``observation.state``,
``observation.environment_state``, ``observation.images.<camera>``, ``action``, ...) to a
:class:`Feature` (dtype, shape, element names, physical bounds, and for actions the control mode).
The same object describes a task, a robot, a dataset's ``meta/info.json`` features, a policy's
inputs/outputs, an exported bundle and a ROS topic mapping. Comparisons fail loudly and name
every key that differs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: dtypes a feature may declare. ``video`` and ``image`` are uint8 HWC frames on the wire.
VALID_DTYPES = ("float32", "float64", "int64", "int32", "bool", "uint8", "video", "image", "string")
IMAGE_DTYPES = ("video", "image")
#: control modes an action feature may declare.
CONTROL_MODES = (
    "ee_delta_pos",  # end-effector Cartesian delta (+ gripper), normalised to [-1, 1]
    "ee_delta_pose",  # end-effector delta position + rotation (+ gripper)
    "joint_pos",  # absolute joint positions
    "joint_delta",  # joint position deltas
    "joint_torque",  # joint torques (external suites such as Hopper)
    "planar_pos",  # absolute planar target position (Push-T agent)
)

OBS_PREFIX = "observation."
IMAGE_PREFIX = "observation.images."
ACTION = "action"


class FeatureMismatchError(ValueError):
    """Two feature specs (or a spec and a sample) disagree; the message names every key."""


@dataclass(frozen=True)
class Feature:
    """One named array: dtype, shape, optional element names, bounds and control mode."""

    dtype: str
    """Element type; ``video``/``image`` mean uint8 HWC frames."""
    shape: tuple[int, ...]
    """Array shape of one frame (no batch or time dimension); images are (H, W, C)."""
    names: tuple[str, ...] | None = None
    """Optional per-element names (for 1-D features) or axis names (for images)."""
    low: tuple[float, ...] | None = None
    """Lower bounds per element: required for continuous actions; for observations the physical
    range (joint limits, workspace, object ranges) outside of which a value is rejected."""
    high: tuple[float, ...] | None = None
    """Optional upper bounds per element."""
    control_mode: str | None = None
    """For actions: how the robot interprets them, one of :data:`CONTROL_MODES`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.dtype not in VALID_DTYPES:
            raise ValueError(f"Feature dtype {self.dtype!r} is not one of {VALID_DTYPES}")
        if self.names is not None:
            object.__setattr__(self, "names", tuple(self.names))
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if value is None:
                continue
            value = tuple(float(v) for v in np.broadcast_to(np.asarray(value), self.shape).ravel())
            object.__setattr__(self, bound, value)
        if (self.low is None) != (self.high is None):
            raise ValueError("Feature bounds need both 'low' and 'high', or neither")
        if self.low is not None and any(
            lo > hi for lo, hi in zip(self.low, self.high, strict=True)
        ):
            raise ValueError(f"Feature bounds have low > high: low={self.low} high={self.high}")
        if self.control_mode is not None and self.control_mode not in CONTROL_MODES:
            raise ValueError(
                f"Feature control_mode {self.control_mode!r} is not one of {CONTROL_MODES}"
            )
        if self.is_image and (len(self.shape) != 3 or self.shape[2] not in (1, 3)):
            raise ValueError(
                f"Image features must have shape (H, W, C) with C in (1, 3), got {self.shape}"
            )

    @property
    def is_image(self) -> bool:
        """True for camera frames (``video`` or ``image`` dtype)."""
        return self.dtype in IMAGE_DTYPES

    @property
    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype a sample of this feature has in memory."""
        if self.is_image:
            return np.dtype(np.uint8)
        if self.dtype == "string":
            return np.dtype(object)
        return np.dtype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, a superset of LeRobot's ``meta/info.json`` feature entry."""
        out: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape)}
        out["names"] = list(self.names) if self.names is not None else None
        if self.low is not None:
            out["low"] = list(self.low)
            out["high"] = list(self.high)
        if self.control_mode is not None:
            out["control_mode"] = self.control_mode
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feature:
        """Inverse of :meth:`to_dict`; tolerates LeRobot's dict-valued ``names`` and ``info``."""
        names = data.get("names")
        if isinstance(names, Mapping):  # LeRobot sometimes stores {"motors": [...]}
            names = next(iter(names.values()), None)
        return cls(
            dtype=data["dtype"],
            shape=tuple(data["shape"]),
            names=tuple(names) if names is not None else None,
            low=data.get("low"),
            high=data.get("high"),
            control_mode=data.get("control_mode"),
        )

    def check_sample(self, key: str, value: Any) -> None:
        """Raise :class:`FeatureMismatchError` if ``value`` is not one frame of this feature."""
        arr = np.asarray(value)
        if tuple(arr.shape) != self.shape:
            raise FeatureMismatchError(
                f"{key!r}: expected shape {self.shape}, got {tuple(arr.shape)}"
            )
        if self.is_image and arr.dtype != np.uint8:
            raise FeatureMismatchError(f"{key!r}: image frames must be uint8, got {arr.dtype}")


@dataclass(frozen=True)
class FeatureSpec(Mapping[str, Feature]):
    """An ordered, immutable mapping of feature key -> :class:`Feature`."""

    features: Mapping[str, Feature] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", dict(self.features))
        for key, feat in self.features.items():
            if not isinstance(feat, Feature):
                raise TypeError(
                    f"FeatureSpec[{key!r}] must be a Feature, got {type(feat).__name__}"
                )

    # Mapping protocol
    def __getitem__(self, key: str) -> Feature:
        try:
            return self.features[key]
        except KeyError:
            raise KeyError(f"No feature {key!r}; available: {sorted(self.features)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    # Views
    @property
    def observation_keys(self) -> list[str]:
        """Keys starting with ``observation.``."""
        return [k for k in self.features if k.startswith(OBS_PREFIX)]

    @property
    def image_keys(self) -> list[str]:
        """Camera keys (``observation.images.*``)."""
        return [k for k, f in self.features.items() if f.is_image]

    @property
    def action(self) -> Feature:
        """The ``action`` feature; errors clearly if absent."""
        if ACTION not in self.features:
            raise FeatureMismatchError(
                f"Spec has no {ACTION!r} feature; keys: {sorted(self.features)}"
            )
        return self.features[ACTION]

    def select(self, keys: list[str] | tuple[str, ...]) -> FeatureSpec:
        """Sub-spec with exactly ``keys`` (in that order); errors name any missing key."""
        missing = [k for k in keys if k not in self.features]
        if missing:
            raise FeatureMismatchError(
                f"Missing features {missing}; available: {sorted(self.features)}"
            )
        return FeatureSpec({k: self.features[k] for k in keys})

    def merge(self, other: Mapping[str, Feature]) -> FeatureSpec:
        """Union of two specs; a key present in both must be identical."""
        clash = [k for k in other if k in self.features and self.features[k] != other[k]]
        if clash:
            raise FeatureMismatchError(f"Cannot merge specs: features {clash} differ")
        return FeatureSpec({**self.features, **dict(other)})

    # Serialisation
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready dict (LeRobot ``features`` layout plus bounds/control mode)."""
        return {k: f.to_dict() for k, f in self.features.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        return cls({k: Feature.from_dict(v) for k, v in data.items()})

    def to_json(self) -> str:
        """JSON text (feature order preserved)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    # Checks
    def diff(self, other: Mapping[str, Feature], keys: list[str] | None = None) -> list[str]:
        """Human-readable differences between ``self`` and ``other`` (empty when they agree).

        Observation bounds declared on only one side are unknown, not different (datasets and
        bundles recorded before observations carried bounds still match their task); bounds
        declared on both sides must agree. Action bounds are always compared.
        """
        keys_self = [k for k in self.features if keys is None or k in keys]
        keys_other = [k for k in other if keys is None or k in keys]
        problems = []
        missing = [k for k in keys_self if k not in other]
        extra = [k for k in keys_other if k not in self.features]
        if missing:
            problems.append(f"missing {missing}")
        if extra:
            problems.append(f"unexpected {extra}")
        for k in keys_self:
            if k not in other:
                continue
            a, b = self.features[k], other[k]
            if a == b:
                continue
            unknown_bounds = k.startswith(OBS_PREFIX) and (a.low is None or b.low is None)
            fields = [
                f"{name} {getattr(a, name)!r} != {getattr(b, name)!r}"
                for name in ("dtype", "shape", "names", "low", "high", "control_mode")
                if getattr(a, name) != getattr(b, name)
                and not (name == "dtype" and a.is_image and b.is_image)
                and not (name in ("low", "high") and unknown_bounds)
            ]
            if fields:
                problems.append(f"{k!r}: " + ", ".join(fields))
        return problems

    def fill_unknown(self, other: Mapping[str, Feature]) -> tuple[FeatureSpec, list[str]]:
        """Copy ``other``'s bounds and control mode into features of ``self`` that lack them.

        Only where a key is in both with the same dtype, shape and names: a dataset written with
        LeRobot's schema (which has no bounds or control mode) then matches the task it was
        recorded on. Returns the new spec and one line per filled field (empty: nothing filled).
        """
        filled, notes = dict(self.features), []
        for key, mine in self.features.items():
            theirs = other.get(key)
            if theirs is None or (mine.dtype, mine.shape) != (theirs.dtype, theirs.shape):
                continue
            if mine.names is not None and theirs.names is not None and mine.names != theirs.names:
                continue
            changes: dict[str, Any] = {}
            if mine.low is None and theirs.low is not None:
                changes.update(low=theirs.low, high=theirs.high)
            if mine.control_mode is None and theirs.control_mode is not None:
                changes["control_mode"] = theirs.control_mode
            if mine.names is None and theirs.names is not None:
                changes["names"] = theirs.names
            if changes:
                filled[key] = dataclasses.replace(mine, **changes)
                notes.append(f"{key}: {', '.join(sorted(changes))}")
        return FeatureSpec(filled), notes

    def check_matches(
        self, other: Mapping[str, Feature], what: str = "spec", keys: list[str] | None = None
    ) -> None:
        """Raise :class:`FeatureMismatchError` naming every differing key (``video`` == ``image``)."""
        problems = self.diff(other, keys)
        if problems:
            raise FeatureMismatchError(
                f"{what} does not match the expected features: "
                + "; ".join(problems)
                + slot_hint(self, other)
            )

    def check_sample(self, sample: Mapping[str, Any], keys: list[str] | None = None) -> None:
        """Check that ``sample`` holds one well-shaped frame for each key (default: all keys)."""
        keys = list(self.features) if keys is None else keys
        missing = [k for k in keys if k not in sample]
        if missing:
            raise FeatureMismatchError(
                f"Sample is missing features {missing}; got {sorted(sample)}"
            )
        for k in keys:
            self.features[k].check_sample(k, sample[k])


def slot_hint(a: Mapping[str, Feature], b: Mapping[str, Feature]) -> str:
    """Advice when one side lays its environment state out in generic xyz slots."""
    key = "observation.environment_state"
    for spec in (a, b):
        feature = spec.get(key)
        names = feature.names if feature is not None else None
        if names and all(n.startswith("slot") for n in names):
            return (
                f". One side lays {key} out in {len(names) // 3} generic xyz slots (multi-task "
                f"data): pass task.env_state_slots={len(names) // 3} to match it"
            )
    return ""
