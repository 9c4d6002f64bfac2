"""PyBullet ``lift``: grasp a cube from the table and raise it.

Same spec, cube range, size, mass, success flags and reward terms as the MuJoCo ``lift``
(all from :mod:`sim.arm_common`).
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from sim import arm_common
from sim.pybullet_suite.base import PybulletArmEnv

#: Coulomb friction of the cube; with the fingers' 1.0 pybullet combines them multiplicatively
CUBE_FRICTION = 1.0


@register_task("lift", backend="pybullet")
class PybulletLiftEnv(PybulletArmEnv):
    """Lift a cube placed uniformly in LIFT_CUBE_LOW..HIGH (xy, metres) LIFT_SUCCESS_HEIGHT up."""

    default_max_episode_steps = arm_common.LIFT_MAX_STEPS
    env_state_names = arm_common.LIFT_ENV_STATE
    reward_weights = {"reach": 1.0, "grasp": 1.0, "lift": 1.0, "success": 1.0}
    task_description = "Pick up the red cube and lift it."

    # ----------------------------------------------------------------- scene
    def _build_task_scene(self) -> None:
        c, pb, h = self.client, self._pb, arm_common.CUBE_HALF
        self.cube = c.createMultiBody(
            baseMass=arm_common.CUBE_MASS,
            baseCollisionShapeIndex=c.createCollisionShape(pb.GEOM_BOX, halfExtents=(h, h, h)),
            baseVisualShapeIndex=c.createVisualShape(pb.GEOM_BOX, halfExtents=(h, h, h), rgbaColor=(0.85, 0.15, 0.1, 1)),
            basePosition=(0.5, 0.0, arm_common.TABLE_Z + h),
        )
        # a little spinning/rolling friction keeps the cube from twisting out of a two-point grasp
        c.changeDynamics(self.cube, -1, lateralFriction=CUBE_FRICTION, spinningFriction=0.001, rollingFriction=0.0)
        self.randomized_bodies.append(self.cube)

    # ----------------------------------------------------------------- reset
    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomization.object_pose:
            xy = rng.uniform(arm_common.LIFT_CUBE_LOW, arm_common.LIFT_CUBE_HIGH)
        else:
            xy = (arm_common.LIFT_CUBE_LOW + arm_common.LIFT_CUBE_HIGH) / 2
        pos = [float(xy[0]), float(xy[1]), arm_common.TABLE_Z + arm_common.CUBE_HALF]
        self.client.resetBasePositionAndOrientation(self.cube, pos, (0, 0, 0, 1))
        self.client.resetBaseVelocity(self.cube, (0, 0, 0), (0, 0, 0))

    # ----------------------------------------------------------------- observations
    def _cube_pos(self) -> np.ndarray:
        return np.asarray(self.client.getBasePositionAndOrientation(self.cube)[0], dtype=np.float64)

    def _object_state(self) -> dict[str, np.ndarray]:
        return {"cube_pos": self._cube_pos()}

    def _env_state_obs(self) -> np.ndarray:
        return self._cube_pos().astype(np.float32)

    # ----------------------------------------------------------------- evaluate / reward
    def evaluate(self) -> dict[str, bool]:
        """``grasped`` (cube between closed fingers), ``lifted`` and ``success`` = both."""
        return arm_common.lift_evaluate(self.task_state())

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        return arm_common.lift_reward_terms(self.task_state(), flags)
