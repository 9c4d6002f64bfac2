"""Operator motion -> an action in the task's control mode.

Devices produce a normalised Cartesian command: ``motion`` in [-1, 1]^3 (x, y, z; a device
without z leaves it 0) and ``gripper`` in [-1, 1] (-1 open, +1 closed). :class:`ActionMapper`
maps it into the action feature's control mode and bounds:

- ``ee_delta_pos`` (arm tasks): ``[dx, dy, dz, gripper]`` scaled into the action bounds.
- ``planar_pos`` (``pusht``): an absolute target that moves from the agent's current position by
  ``speed`` of the board per second, clipped to the bounds.

Helpers shared by the human devices: :func:`apply_deadzone` (a continuous dead zone for analogue
axes), :func:`mapper_for` (an :class:`ActionMapper` whose errors are a ``DeviceError``) and
:func:`initial_gripper` (the gripper command matching the robot's gripper at episode start).
"""

from __future__ import annotations

import numpy as np

from hardware.teleop.base import DeviceError, TeleopContext
from robot_learning.features import ACTION, FeatureSpec

SUPPORTED_MODES = ("ee_delta_pos", "planar_pos")


class ActionMapper:
    """Maps (motion, gripper) to the action feature's control mode; see the module docstring."""

    def __init__(self, features: FeatureSpec, fps: int, speed: float = 0.5) -> None:
        action = features[ACTION]
        if action.control_mode not in SUPPORTED_MODES:
            raise ValueError(
                f"teleop supports the control modes {SUPPORTED_MODES}; this task's action is "
                f"{action.control_mode!r}"
            )
        if action.low is None:
            raise ValueError("the action feature declares no bounds; teleop needs them")
        self.mode = action.control_mode
        self.low = np.asarray(action.low, np.float32)
        self.high = np.asarray(action.high, np.float32)
        self.fps, self.speed = fps, speed
        self.features = features

    def __call__(
        self, obs: dict[str, np.ndarray], motion: np.ndarray, gripper: float = 0.0
    ) -> np.ndarray:
        """The action for this tick."""
        motion = np.clip(np.asarray(motion, np.float32).ravel()[:3], -1.0, 1.0)
        if self.mode == "ee_delta_pos":
            unit = np.concatenate([motion, [np.clip(gripper, -1.0, 1.0)]]).astype(np.float32)
            mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
            return (mid + unit * half).astype(np.float32)
        current = np.asarray(obs["observation.state"], np.float32)[:2]
        step = self.speed * (self.high - self.low) / self.fps
        return np.clip(current + motion[:2] * step, self.low, self.high).astype(np.float32)

    def hold(self, obs: dict[str, np.ndarray], gripper: float | None = None) -> np.ndarray:
        """The action that keeps the robot still (zero delta; the current position).

        ``gripper`` None keeps the gripper as it is (:func:`initial_gripper`: closed when the
        fingers are nearly shut, else open) rather than commanding a half-open 0.
        """
        if gripper is None:
            gripper = initial_gripper(self.features, obs) if self.mode == "ee_delta_pos" else 0.0
        return self(obs, np.zeros(3, np.float32), gripper)


def apply_deadzone(value, deadzone: float):
    """Zero inside ``|value| <= deadzone``, rescaled outside so the output is continuous.

    ``value`` is a normalised axis (float or array in [-1, 1]); the result goes from 0 at the edge
    of the dead zone to +-1 at full deflection: ``sign(v) * (|v| - dz) / (1 - dz)``.
    """
    v = np.clip(np.asarray(value, np.float64), -1.0, 1.0)
    dz = float(np.clip(deadzone, 0.0, 0.99))
    out = np.sign(v) * np.maximum(np.abs(v) - dz, 0.0) / (1.0 - dz)
    return float(out) if out.ndim == 0 else out.astype(np.float32)


def mapper_for(context: TeleopContext, device: str, speed: float = 0.5) -> ActionMapper:
    """The :class:`ActionMapper` for ``context``; an unsupported task is a ``DeviceError``."""
    try:
        return ActionMapper(context.features, context.fps, speed=speed)
    except (ValueError, KeyError) as exc:
        raise DeviceError(
            f"device={device} cannot drive this task: {exc}; use device=expert or a task with an "
            "ee_delta_pos / planar_pos action"
        ) from exc


def initial_gripper(features: FeatureSpec, obs: dict[str, np.ndarray]) -> float:
    """The gripper command matching the robot's gripper at episode start (-1 open, +1 closed).

    Reads ``gripper_width`` from ``observation.state`` when the state names it: closed when the
    width is below the middle of its declared range (e.g. ``peg_insert`` starts holding the peg),
    else open. Tasks without a gripper width start open.
    """
    state = features.get("observation.state") if hasattr(features, "get") else None
    names = getattr(state, "names", None) or ()
    if "gripper_width" not in names or "observation.state" not in obs:
        return -1.0
    i = names.index("gripper_width")
    width = float(np.asarray(obs["observation.state"]).ravel()[i])
    middle = 0.04 if state.low is None else (state.low[i] + state.high[i]) / 2
    return 1.0 if width < middle else -1.0
