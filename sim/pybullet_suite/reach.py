"""Reach (PyBullet): move the Panda's tcp to a random target shown as a red sphere.

Same spec, target range, success and reward terms as the MuJoCo ``reach`` (all from
:mod:`sim.arm_common`).
"""

from __future__ import annotations

import numpy as np

from robot_learning.envs import register_task
from sim import arm_common
from sim.pybullet_suite.base import PybulletArmEnv


@register_task("reach", backend="pybullet")
class PybulletReachEnv(arm_common.ReachTask, PybulletArmEnv):
    """Reach a target position sampled in ``REACH_TARGET_LOW .. REACH_TARGET_HIGH``."""

    # ----------------------------------------------------------------- scene
    def _build_task_scene(self) -> None:
        c = self.client
        # drawn with the success radius; no collision shape and no mass, the arm passes through
        visual = c.createVisualShape(
            self._pb.GEOM_SPHERE,
            radius=arm_common.REACH_SUCCESS_DIST,
            rgbaColor=(0.9, 0.1, 0.1, 0.8),
        )
        self.target_pos = (arm_common.REACH_TARGET_LOW + arm_common.REACH_TARGET_HIGH) / 2
        self.target = c.createMultiBody(0.0, -1, visual, basePosition=self.target_pos.tolist())

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        self.target_pos = self.sample_target(rng)
        self.client.resetBasePositionAndOrientation(
            self.target, self.target_pos.tolist(), (0, 0, 0, 1)
        )

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        return {"target_pos": np.array(self.target_pos, dtype=np.float64)}
