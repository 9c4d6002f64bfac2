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
class PybulletReachEnv(PybulletArmEnv):
    """Reach a target position sampled in ``REACH_TARGET_LOW .. REACH_TARGET_HIGH``."""

    task_description = "reach the red target"
    default_max_episode_steps = arm_common.REACH_MAX_STEPS
    env_state_names = arm_common.REACH_ENV_STATE

    # ----------------------------------------------------------------- scene
    def _build_task_scene(self) -> None:
        c = self.client
        # drawn with the success radius; no collision shape and no mass, the arm passes through
        visual = c.createVisualShape(
            self._pb.GEOM_SPHERE,
            radius=arm_common.REACH_SUCCESS_DIST,
            rgbaColor=(0.9, 0.1, 0.1, 0.8),
        )
        self.target = c.createMultiBody(0.0, -1, visual, basePosition=_nominal_target().tolist())
        self.target_pos = _nominal_target()

    # ----------------------------------------------------------------- reset
    def _reset_objects(self, rng: np.random.Generator) -> None:
        if self.cfg.randomization.object_pose:
            self.target_pos = rng.uniform(arm_common.REACH_TARGET_LOW, arm_common.REACH_TARGET_HIGH)
        else:
            self.target_pos = _nominal_target()
        self.client.resetBasePositionAndOrientation(
            self.target, self.target_pos.tolist(), (0, 0, 0, 1)
        )

    # ----------------------------------------------------------------- observations
    def _object_state(self) -> dict[str, np.ndarray]:
        return {"target_pos": np.array(self.target_pos, dtype=np.float64)}

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
