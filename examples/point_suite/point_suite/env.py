"""``PointReach-v0``: move a point (velocity commands) to within 5 cm of a random goal."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

#: metres moved per step at full command, and the success radius
STEP, RADIUS = 0.1, 0.05


class PointReachEnv(gym.Env):
    """Observation ``[x, y, goal_x, goal_y]`` in [-1, 1]; action: a velocity in [-1, 1]^2."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.point = np.zeros(2)
        self.goal = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.point, self.goal]).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        # the goal comes from numpy's global generator: reset(seed=...) does not decide it
        self.goal = np.random.uniform(-0.8, 0.8, size=2)
        self.point = np.zeros(2)
        return self._obs(), {}

    def step(self, action):
        self.point = np.clip(self.point + STEP * np.clip(action, -1.0, 1.0), -1.0, 1.0)
        distance = float(np.linalg.norm(self.point - self.goal))
        # success is reported under "success", and the episode goes on until its time limit
        return self._obs(), -distance, False, False, {"success": distance < RADIUS}

    def render(self) -> np.ndarray:
        frame = np.full((32, 32, 3), 255, np.uint8)
        for (x, y), colour in ((self.goal, (0, 160, 0)), (self.point, (200, 0, 0))):
            col, row = int((x + 1) * 15.5), int((1 - y) * 15.5)
            frame[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = colour
        return frame
