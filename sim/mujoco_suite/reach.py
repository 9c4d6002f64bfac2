"""Reach (MuJoCo): move the Panda's tcp to a random target shown as a red sphere.

Scene, ranges, success and reward come from :mod:`sim.arm_common` (shared with PyBullet).
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from sim import arm_common
from sim.mujoco_suite.arm_base import MujocoArmEnv


@register_task("reach")
class ReachEnv(MujocoArmEnv):
    """Reach a target position sampled in ``REACH_TARGET_LOW .. REACH_TARGET_HIGH``."""

    task_description = "reach the red target"
    default_max_episode_steps = arm_common.REACH_MAX_STEPS
    env_state_names = arm_common.REACH_ENV_STATE

    # ----------------------------------------------------------------- scene
    def _objects_xml(self) -> str:
        # a mocap body so the target moves without physics; visual only (no collision)
        return f"""
    <body name="target" mocap="true" pos="{" ".join(map(str, _nominal_target()))}">
      <geom name="target" type="sphere" size="{arm_common.REACH_SUCCESS_DIST}" contype="0"
            conaffinity="0" rgba="0.9 0.1 0.1 0.8"/>
    </body>"""

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        if self.cfg.randomization.object_pose:
            target = rng.uniform(arm_common.REACH_TARGET_LOW, arm_common.REACH_TARGET_HIGH)
        else:
            target = _nominal_target()
        self.data.mocap_pos[0] = target

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        return {"target_pos": self.data.mocap_pos[0].copy()}

    def _env_state_keys(self) -> tuple[str, ...]:
        return ("target_pos",)

    # ----------------------------------------------------------------- evaluate / reward
    def evaluate(self) -> dict[str, bool]:
        """``success``: tcp within ``REACH_SUCCESS_DIST`` of the target."""
        return arm_common.reach_evaluate(self.task_state())

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        return arm_common.reach_reward_terms(self.task_state(), flags)


def _nominal_target() -> np.ndarray:
    """Target used when object-pose randomisation is off: the centre of the range."""
    return (arm_common.REACH_TARGET_LOW + arm_common.REACH_TARGET_HIGH) / 2
