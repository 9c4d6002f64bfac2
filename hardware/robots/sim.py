"""``robot=sim``: any simulated task driven through the robot contract (``robot=sim task=lift``).

Time passes only when commanded (one ``send_action`` = one control step), so the safety watchdog
is not armed. ``home()`` starts a new episode; the last step's reward and ``info`` (with
``is_success``) stay readable for evaluation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.robot import ROBOTS, Robot, RobotConfig, RobotError
from robot_learning.envs import TaskConfig, make_env


@dataclass
class SimRobotConfig(RobotConfig):
    """``robot=sim`` settings."""

    seed: int = 0
    """Seed of the first episode; each ``home()`` uses the next one."""

    def seeded(self, seed: int) -> SimRobotConfig:
        return dataclasses.replace(self, seed=seed)


@ROBOTS.register("sim")
class SimRobot(Robot):
    """A simulated task behind the robot contract."""

    name = "sim"
    config_class = SimRobotConfig
    realtime = False

    def __init__(self, cfg: SimRobotConfig, task: TaskConfig | None = None) -> None:
        super().__init__(cfg, task)
        if task is None:
            raise RobotError("robot=sim drives a simulated task: choose one with task=<name>")
        self.env = make_env(task)
        self.features = self.env.features
        fps = float(self.env.fps)
        if cfg.control_hz is not None and cfg.control_hz != fps:
            raise RobotError(
                f"robot.control_hz={cfg.control_hz}: task {task.name!r} steps at {fps:g} Hz; "
                "remove robot.control_hz"
            )
        self.control_hz = fps
        self.task_description = self.env.unwrapped.task_description
        self.robot_type = self.env.unwrapped.robot_type
        scale = getattr(self.env.unwrapped, "action_scale", None)
        self.ee_action_scale = float(scale) if scale is not None else None
        self._seed = cfg.seed
        self._obs: dict[str, np.ndarray] | None = None
        self.reward = 0.0
        self.info: dict[str, Any] = {}
        self.done = False

    def connect(self) -> None:
        """Start the first episode."""
        self._connected = True
        self.home()

    def disconnect(self) -> None:
        """Close the simulator (idempotent)."""
        if self._connected:
            self._connected = False
            self.env.close()

    def reseed(self, seed: int) -> None:
        """The next :meth:`home` starts the episode of ``seed``."""
        self._seed = seed

    def home(self) -> None:
        """Start a new episode (the next seed)."""
        self._require_connected()
        self._obs, self.info = self.env.reset(seed=self._seed)
        self._seed += 1
        self.reward, self.done = 0.0, False

    @property
    def instruction(self) -> str:
        """The simulated episode's language instruction."""
        return self.env.unwrapped.instruction

    def task_state(self) -> dict[str, np.ndarray]:
        """The simulator's privileged state (for scripted experts and the simulated operator)."""
        return self.env.unwrapped.task_state()

    def get_observation(self) -> dict[str, np.ndarray]:
        """The observation after the last step (or reset)."""
        self._require_connected()
        return {k: np.array(v, copy=True) for k, v in self._obs.items()}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """One control step; returns the action as the task applied it (clipped, held elements)."""
        self._require_connected()
        sent = self.env.unwrapped._checked_action(action)
        self._obs, self.reward, terminated, truncated, self.info = self.env.step(sent)
        self.done = bool(terminated or truncated)
        return sent
