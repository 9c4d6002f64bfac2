""":class:`RobotWrapper`: a robot around another one, delegating everything it does not change
(the safety layer and the cameras are wrappers; unknown attributes are the wrapped robot's)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardware.robot import Robot


class RobotWrapper(Robot):
    """Delegates the whole contract to ``robot``; subclasses override what they add."""

    def __init__(self, robot: Robot) -> None:
        super().__init__(robot.cfg, robot.task)
        self.robot = robot
        self.name = robot.name
        self.realtime = robot.realtime

    def __getattr__(self, name: str) -> Any:
        if name == "robot":  # not yet set (during __init__): no recursion
            raise AttributeError(name)
        return getattr(self.robot, name)

    @property
    def features(self):
        return self.robot.features

    @property
    def control_hz(self) -> float:
        return self.robot.control_hz

    @property
    def ee_action_scale(self) -> float | None:
        return self.robot.ee_action_scale

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    @property
    def has_forward_kinematics(self) -> bool:
        return self.robot.has_forward_kinematics

    def connect(self) -> None:
        self.robot.connect()

    def disconnect(self) -> None:
        self.robot.disconnect()

    def home(self) -> None:
        self.robot.home()

    def get_observation(self) -> dict[str, np.ndarray]:
        return self.robot.get_observation()

    def send_action(self, action: np.ndarray) -> np.ndarray:
        return self.robot.send_action(action)

    def forward_kinematics(self, joints: np.ndarray) -> np.ndarray:
        return self.robot.forward_kinematics(joints)

    def limits(self) -> dict[str, Any]:
        return self.robot.limits()

    def calibrate(self) -> dict[str, Any]:
        return self.robot.calibrate()
