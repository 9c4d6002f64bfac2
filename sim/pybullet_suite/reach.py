"""PyBullet ``reach``: move the grasp centre of the Panda to a visible target point.

Same spec, target range, success and reward terms as the MuJoCo ``reach`` (all from
:mod:`sim.arm_common`).
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from sim import arm_common
from sim.pybullet_suite.base import PybulletArmEnv

#: radius (m) of the drawn target; visual only, it never collides
TARGET_RADIUS = 0.02


@register_task("reach", backend="pybullet")
class PybulletReachEnv(PybulletArmEnv):
    """Reach a target point drawn uniformly from REACH_TARGET_LOW..HIGH (world frame, metres)."""

    default_max_episode_steps = arm_common.REACH_MAX_STEPS
    env_state_names = arm_common.REACH_ENV_STATE
    reward_weights = {"reach": 1.0, "success": 1.0}
    task_description = "Move the gripper to the red target."

    # ----------------------------------------------------------------- scene
    def _build_task_scene(self) -> None:
        c = self.client
        visual = c.createVisualShape(self._pb.GEOM_SPHERE, radius=TARGET_RADIUS, rgbaColor=(0.9, 0.1, 0.1, 1.0))
        # no collision shape (-1) and no mass: the arm passes through the marker
        self.target = c.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=-1, baseVisualShapeIndex=visual)
        self.target_pos = (arm_common.REACH_TARGET_LOW + arm_common.REACH_TARGET_HIGH) / 2

    # ----------------------------------------------------------------- reset
    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomization.object_pose:
            self.target_pos = rng.uniform(arm_common.REACH_TARGET_LOW, arm_common.REACH_TARGET_HIGH)
        else:
            self.target_pos = (arm_common.REACH_TARGET_LOW + arm_common.REACH_TARGET_HIGH) / 2
        self.client.resetBasePositionAndOrientation(self.target, self.target_pos.tolist(), (0, 0, 0, 1))

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        return {"target_pos": np.asarray(self.target_pos, dtype=np.float64).copy()}

    def _env_state_obs(self) -> np.ndarray:
        return np.asarray(self.target_pos, dtype=np.float32)

    # ----------------------------------------------------------------- evaluate / reward
    def evaluate(self) -> dict[str, bool]:
        """``success``: grasp centre within REACH_SUCCESS_DIST of the target."""
        return arm_common.reach_evaluate(self.task_state())

    def _reward_terms(self, flags: dict[str, bool]) -> dict[str, float]:
        return arm_common.reach_reward_terms(self.task_state(), flags)
