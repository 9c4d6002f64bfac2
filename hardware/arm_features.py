"""The feature spec every end-effector-delta arm shares (the simulated Panda tasks' form), so a
policy trained on those tasks reads and drives a real arm the same way."""

from __future__ import annotations

from collections.abc import Sequence

from robot_learning.features import ACTION, Feature, FeatureSpec

ACTION_NAMES = ("dx", "dy", "dz", "gripper")
STATE_HEAD = ("ee_x", "ee_y", "ee_z", "gripper_width")


def ee_delta_arm_features(
    n_joints: int,
    low: Sequence[float] | None = None,
    high: Sequence[float] | None = None,
) -> FeatureSpec:
    """``observation.state`` = end-effector xyz, gripper width and ``joint1..N`` (with the
    given bounds, or none), and the ``ee_delta_pos`` action (dx, dy, dz, gripper in [-1, 1])."""
    names = STATE_HEAD + tuple(f"joint{i}" for i in range(1, n_joints + 1))
    return FeatureSpec(
        {
            "observation.state": Feature("float32", (len(names),), names, low=low, high=high),
            ACTION: Feature(
                "float32",
                (4,),
                ACTION_NAMES,
                low=(-1.0,) * 4,
                high=(1.0,) * 4,
                control_mode="ee_delta_pos",
            ),
        }
    )
