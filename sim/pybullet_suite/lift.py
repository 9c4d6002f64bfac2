"""Lift (PyBullet): grasp a cube from the table and raise it.

Same spec, cube size and mass, ranges, success flags and reward terms as the MuJoCo ``lift``
(all from :mod:`sim.arm_common`); the cube starts axis-aligned with the gripper.
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from sim import arm_common
from sim.pybullet_suite.base import PybulletArmEnv

#: cube friction; pybullet multiplies the two bodies' coefficients, so against the 1.5 finger
#: pads this gives 1.5 and against the table 1.0 -- MuJoCo (which takes the max) gets the same
CUBE_FRICTION = 1.0
#: torsional friction (m), as MuJoCo's condim=4 default, so the cube does not spin in the grasp
CUBE_SPINNING_FRICTION = 0.005


@register_task("lift", backend="pybullet")
class PybulletLiftEnv(arm_common.LiftTask, PybulletArmEnv):
    """Pick up a cube placed in ``LIFT_CUBE_LOW .. LIFT_CUBE_HIGH`` and lift it."""

    # ----------------------------------------------------------------- scene
    def _build_task_scene(self) -> None:
        c, pb, h = self.client, self._pb, arm_common.CUBE_HALF
        self.cube = c.createMultiBody(
            baseMass=arm_common.CUBE_MASS,
            baseCollisionShapeIndex=c.createCollisionShape(pb.GEOM_BOX, halfExtents=(h, h, h)),
            baseVisualShapeIndex=c.createVisualShape(
                pb.GEOM_BOX, halfExtents=(h, h, h), rgbaColor=(0.85, 0.15, 0.1, 1)
            ),
            basePosition=(0.5, 0.0, arm_common.TABLE_Z + h),
        )
        c.changeDynamics(
            self.cube, -1, lateralFriction=CUBE_FRICTION, spinningFriction=CUBE_SPINNING_FRICTION
        )
        self.randomized_bodies.append(self.cube)

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        xy = self.sample_cube_xy(rng)
        pos = [float(xy[0]), float(xy[1]), arm_common.TABLE_Z + arm_common.CUBE_HALF]
        self.client.resetBasePositionAndOrientation(self.cube, pos, (0, 0, 0, 1))
        self.client.resetBaseVelocity(self.cube, (0, 0, 0), (0, 0, 0))

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        pos = self.client.getBasePositionAndOrientation(self.cube)[0]
        return {"cube_pos": np.asarray(pos, dtype=np.float64)}
