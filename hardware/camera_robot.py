""":class:`RobotWithCameras`: a robot plus the cameras of its ``cameras:`` block.

The features gain ``observation.images.<name>`` (uint8 H x W x 3, the camera's configured size);
each observation carries every camera's newest frame, which must be fresher than the camera's
``max_age_s`` (a frozen or unplugged camera is an error naming it, never a silent old frame).
"""

from __future__ import annotations

import numpy as np

from hardware.cameras import Camera, make_camera
from hardware.robot import Robot, RobotError
from hardware.robot_wrapper import RobotWrapper
from robot_learning.features import FeatureSpec


class RobotWithCameras(RobotWrapper):
    """``robot`` with ``robot.cfg.cameras`` attached (see the module docstring)."""

    def __init__(self, robot: Robot) -> None:
        super().__init__(robot)
        self.cameras: dict[str, Camera] = {
            name: make_camera(cfg, name) for name, cfg in robot.cfg.cameras.items()
        }
        taken = [c.key for c in self.cameras.values() if c.key in robot.features]
        if taken:
            raise RobotError(
                f"robot.cameras: {taken} are already observations of robot {robot.name!r}; "
                "rename the cameras"
            )
        self._features = FeatureSpec(
            {**dict(robot.features.items()), **{c.key: c.features() for c in self.cameras.values()}}
        )

    @property
    def features(self) -> FeatureSpec:
        return self._features

    def connect(self) -> None:
        """Connect the robot, then every camera (all or nothing)."""
        self.robot.connect()
        try:
            for camera in self.cameras.values():
                camera.connect()
        except BaseException:
            self.disconnect()
            raise

    def disconnect(self) -> None:
        """Stop the cameras, then disconnect the robot (idempotent)."""
        for camera in self.cameras.values():
            camera.disconnect()
        self.robot.disconnect()

    def get_observation(self) -> dict[str, np.ndarray]:
        """The robot's observation plus every camera's newest frame."""
        obs = self.robot.get_observation()
        for camera in self.cameras.values():
            obs[camera.key] = camera.latest().image
        return obs
