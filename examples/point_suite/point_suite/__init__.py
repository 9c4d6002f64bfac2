"""An example external suite: a point in the plane that must reach a goal.

Importing the package registers ``PointReach-v0`` with gymnasium (so ``gym_id:
point_suite:PointReach-v0`` works without robot-learning importing anything). Like many real
suites it reports success as ``info["success"]``, does not end episodes on success and draws the
goal from numpy's global generator, ignoring ``reset(seed=...)``.
"""

import gymnasium as gym

from point_suite.env import PointReachEnv

__all__ = ["PointReachEnv"]

if "PointReach-v0" not in gym.registry:
    gym.register("PointReach-v0", entry_point=PointReachEnv, max_episode_steps=40)
