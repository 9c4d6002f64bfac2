"""Reach (MuJoCo): move the Panda's tcp to a random target shown as a red sphere.

Ranges, success and reward come from :class:`sim.arm_common.ReachTask` (shared with PyBullet).
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from sim import arm_common
from sim.mujoco_suite.arm_base import MujocoArmEnv


@register_task("reach")
class ReachEnv(arm_common.ReachTask, MujocoArmEnv):
    """Reach a target position sampled in ``REACH_TARGET_LOW .. REACH_TARGET_HIGH``."""

    # ----------------------------------------------------------------- scene
    def _objects_xml(self) -> str:
        # a mocap body so the target moves without physics; visual only (no collision)
        centre = (arm_common.REACH_TARGET_LOW + arm_common.REACH_TARGET_HIGH) / 2
        return f"""
    <body name="target" mocap="true" pos="{" ".join(map(str, centre))}">
      <geom name="target" type="sphere" size="{arm_common.REACH_SUCCESS_DIST}" contype="0"
            conaffinity="0" rgba="0.9 0.1 0.1 0.8"/>
    </body>"""

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        self.data.mocap_pos[0] = self.sample_target(rng)

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        return {"target_pos": self.data.mocap_pos[0].copy()}
