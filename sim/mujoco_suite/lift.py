"""Lift (MuJoCo): grasp a cube from the table and raise it.

Cube size, mass, ranges, success and reward come from :mod:`sim.arm_common` (shared with
PyBullet); the cube starts axis-aligned with the gripper (only its xy position is random).
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from sim import arm_common
from sim.mujoco_suite.arm_base import MujocoArmEnv


@register_task("lift")
class LiftEnv(arm_common.LiftTask, MujocoArmEnv):
    """Pick up a cube placed in ``LIFT_CUBE_LOW .. LIFT_CUBE_HIGH`` and lift it."""

    randomized_bodies = ("cube",)

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self._cube = self.body_id("cube")
        self._cube_qadr = self.model.jnt_qposadr[self.model.joint("cube").id]

    # ----------------------------------------------------------------- scene
    def _objects_xml(self) -> str:
        h = arm_common.CUBE_HALF
        return f"""
    <body name="cube" pos="0.5 0 {arm_common.TABLE_Z + h}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{h} {h} {h}" mass="{arm_common.CUBE_MASS}"
            rgba="0.85 0.15 0.1 1" condim="4"/>
    </body>"""

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        xy = self.sample_cube_xy(rng)
        adr = self._cube_qadr
        self.data.qpos[adr : adr + 7] = [*xy, arm_common.TABLE_Z + arm_common.CUBE_HALF, 1, 0, 0, 0]

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        return {"cube_pos": self.data.xpos[self._cube].copy()}
