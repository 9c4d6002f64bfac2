""":class:`RobotEnv`: a robot seen as an episodic environment (``reset`` / ``step``), so the code
that runs policies on simulated tasks (the ROS 2 robot node, evaluation) runs them on robots.

``reset()`` starts an episode: the first one right after connecting (a robot is ready where it
connected), each later one after ``home()``. ``step(action)`` sends the action and reads the
next observation. Success comes from the robot's ``info["is_success"]`` when it has one (a
simulator or a simulated fake); a real arm reports none, so its episodes end at the step limit
(or by an operator's label, upstream). The reward is 1 on success, else 0.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hardware.robot import Robot, RobotConfig, RobotError
from robot_learning.envs import TaskConfig


class RobotEnv:
    """``robot`` (connected here) as a gymnasium-style env with a step limit."""

    def __init__(
        self, robot: Robot, max_episode_steps: int, task: TaskConfig | None = None
    ) -> None:
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={max_episode_steps} must be >= 1")
        self.robot = robot
        self.cfg = task if task is not None else robot.task
        """The task (scripted experts look up theirs by its name)."""
        self.task_description = getattr(robot, "task_description", None) or (
            self.cfg.name if self.cfg is not None else robot.name
        )
        self.robot_type = getattr(robot, "robot_type", None) or robot.name
        self.max_episode_steps = max_episode_steps
        self.features = robot.features
        self.fps = robot.control_hz
        self._fresh = True
        self._steps = 0
        self._due: float | None = None
        robot.connect()

    @classmethod
    def for_task(cls, robot: RobotConfig | dict[str, Any], task: TaskConfig) -> RobotEnv:
        """The robot of ``robot`` (behind its safety layer) with ``task``'s features and episode
        limit, connected."""
        from hardware.build import make_robot
        from robot_learning.envs import make_env

        env = make_env(task)
        limit = env.max_episode_steps
        env.close()
        return cls(make_robot(robot, task), limit, task)

    @property
    def unwrapped(self) -> RobotEnv:
        return self

    @property
    def instruction(self) -> str:
        """This episode's language instruction: the simulator's (robot=sim), else
        ``task.instruction``, else the task description."""
        text = getattr(self.robot, "instruction", None)
        if text:
            return text
        if self.cfg is not None and self.cfg.instruction:
            return self.cfg.instruction
        return self.task_description

    def task_state(self) -> dict[str, np.ndarray]:
        """The robot's privileged task state (simulators only: scripted experts and the simulated
        operator read it); a real robot has none."""
        state = getattr(self.robot, "task_state", None)
        if state is None:
            raise RobotError(
                f"robot {self.robot.name!r} has no privileged task state: scripted experts and "
                "the simulated operator (device=expert) need robot=sim; on a real robot record "
                "with a person (robot-learning teleop device=<keyboard|gamepad|...>)"
            )
        return state()

    def _info(self) -> dict[str, Any]:
        info = dict(getattr(self.robot, "info", {}) or {})
        info["is_success"] = bool(info.get("is_success", False))
        return info

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: a simulator starts the episode of ``seed``; other robots home (a
        simulated fake seeds itself, see :meth:`~hardware.robot.RobotConfig.seeded`)."""
        reseed = getattr(self.robot, "reseed", None)
        if seed is not None and reseed is not None:
            reseed(seed)
            self.robot.home()
        elif not self._fresh:
            self.robot.home()
        self._fresh = False
        self._steps = 0
        self._due = None
        return self.robot.get_observation(), {"is_success": False}

    def step(self, action: np.ndarray):
        """Send ``action``, read the next observation; the gymnasium 5-tuple. A real-time robot
        is paced at its control rate (one step per period)."""
        if self.robot.realtime:
            if self._due is not None:
                time.sleep(max(0.0, self._due - time.monotonic()))
            self._due = max(self._due or 0.0, time.monotonic()) + 1.0 / self.fps
        self.robot.send_action(np.asarray(action, np.float32))
        self._steps += 1
        obs, info = self.robot.get_observation(), self._info()
        success = info["is_success"]
        truncated = self._steps >= self.max_episode_steps and not success
        return obs, float(success), success, truncated, info

    def close(self) -> None:
        """Disconnect the robot."""
        self.robot.disconnect()
