"""robot-learning plugin module (entry point group ``robot_learning.experts``): the scripted
expert of the ``point_reach`` task, registered under the task's name."""

from __future__ import annotations

import numpy as np

from point_suite.env import STEP
from robot_learning.envs import register_expert


@register_expert("point_reach")
class PointReachExpert:
    """Heads straight for the goal, slowing down on the last step."""

    def __init__(self, env) -> None:
        self.env = env

    def reset(self, seed: int | None = None) -> None:
        """Nothing to plan."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The velocity that reaches the goal (or heads for it at full speed)."""
        point, goal = np.split(np.asarray(obs["observation.state"], np.float64), 2)
        return np.clip((goal - point) / STEP, -1.0, 1.0).astype(np.float32)
