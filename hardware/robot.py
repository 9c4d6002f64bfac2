"""The robot contract: one interface for simulated tasks and real arms (``robot=<name>``).

A robot has a ``features`` spec identical in form to a task's (observation and action keys,
dtypes, bounds, the action's control mode), a ``control_hz``, and ``connect()``,
``get_observation()``, ``send_action(action)`` (returns what was actually sent), ``home()`` and
``disconnect()``; it is a context manager. Calibration is a JSON file per robot type and id
(``<calibration_dir>/<type>/<id>.json``). Drivers register with ``@ROBOTS.register("<name>")``,
declare a typed config (a :class:`RobotConfig` subclass) and import their vendor SDK inside
``connect()``, so a missing SDK is a :class:`RobotError` naming the extra to install.

:func:`make_robot` builds any robot and wraps it in the safety layer
(:class:`~hardware.safe_robot.SafeRobot`) unless told not to.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hardware.safety import SafetyConfig
from robot_learning.datasets.atomic import write_json_atomic
from robot_learning.envs import TaskConfig
from robot_learning.errors import HardwareUnavailable
from robot_learning.features import ACTION, FeatureSpec
from robot_learning.registry import Registry

#: default calibration folder (override with ``robot.calibration_dir`` or this variable)
CALIBRATION_ENV = "ROBOT_LEARNING_CALIBRATION_DIR"


class RobotError(HardwareUnavailable):
    """A robot cannot be used (SDK missing, port absent, no answer, no permission); says the fix."""


@dataclass
class RobotConfig:
    """Settings every robot has (``robot.<key>=...``); drivers subclass it with their own."""

    type: str = "sim"
    """Registered driver name (``robot-learning robot list``)."""
    id: str = "default"
    """This robot's name: its calibration file is ``<calibration_dir>/<type>/<id>.json``."""
    fake: bool = False
    """Drive a fake that speaks the real protocol instead of hardware (tests, dry runs)."""
    control_hz: float | None = None
    """Command rate; None: the driver's (or the task's) default."""
    calibration_dir: str | None = None
    """Where calibration files live; None: ``$ROBOT_LEARNING_CALIBRATION_DIR`` or
    ``~/.cache/robot_learning/calibration``."""
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    """Limits of the safety layer around this robot."""
    cameras: dict[str, Any] = field(default_factory=dict)
    """Cameras on this robot, ``{name: {type: opencv|realsense|file, ...}}`` (see
    ``hardware/cameras``): each adds ``observation.images.<name>``."""

    def __post_init__(self) -> None:
        if isinstance(self.safety, dict):
            self.safety = SafetyConfig(**self.safety)
        if self.cameras:
            from hardware.cameras import camera_config

            self.cameras = {
                name: camera_config(c, name, prefix="robot.cameras.")
                for name, c in self.cameras.items()
            }
        if self.control_hz is not None and not self.control_hz > 0:
            raise ValueError(f"robot.control_hz={self.control_hz} must be positive")
        if not self.id or "/" in self.id or self.id.startswith("."):
            raise ValueError(f"robot.id={self.id!r} must be a plain name (it names a file)")

    def seeded(self, seed: int) -> RobotConfig:
        """These settings with episodes seeded from ``seed`` (episode ``i``: ``seed + i``) where
        the robot can (simulators and simulated fakes); real robots ignore it."""
        return self


class Robot(ABC):
    """Base class of every robot (see the module docstring)."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[RobotConfig]] = RobotConfig
    #: False for robots whose time only passes when commanded (simulators in lockstep): the
    #: safety watchdog is not armed for them
    realtime: ClassVar[bool] = True
    features: FeatureSpec
    control_hz: float
    #: metres of end-effector motion per action unit (``ee_delta_*`` control modes), if known
    ee_action_scale: float | None = None

    def __init__(self, cfg: RobotConfig, task: TaskConfig | None = None) -> None:
        self.cfg = cfg
        self.task = task
        """The command's ``task=``, if any (a simulated robot needs one; drivers may use it)."""
        self._connected = False

    # ------------------------------------------------------------------ lifecycle
    @abstractmethod
    def connect(self) -> None:
        """Open the connection (loading calibration); raises :class:`RobotError` naming the fix."""

    @abstractmethod
    def disconnect(self) -> None:
        """Release the robot (idempotent); a real arm is left holding its position."""

    @property
    def is_connected(self) -> bool:
        """True between :meth:`connect` and :meth:`disconnect`."""
        return self._connected

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def _require_connected(self) -> None:
        if not self._connected:
            raise RobotError(f"robot {self.name!r} is not connected: call connect() first")

    # ------------------------------------------------------------------ I/O
    @abstractmethod
    def get_observation(self) -> dict[str, np.ndarray]:
        """The newest reading of every observation feature."""

    @abstractmethod
    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Command ``action`` (the action feature's shape and control mode); returns what was
        actually sent after the driver's own clamping."""

    def home(self) -> None:
        """Move to the rest pose (simulators: start a new episode)."""
        raise RobotError(f"robot {self.name!r} has no home pose")

    def forward_kinematics(self, joints: np.ndarray) -> np.ndarray:
        """End-effector xyz for joint positions (joint control modes); robots without a model
        raise ``NotImplementedError`` and cannot have a workspace box."""
        raise NotImplementedError

    @property
    def has_forward_kinematics(self) -> bool:
        """True when this robot overrides :meth:`forward_kinematics`."""
        return type(self).forward_kinematics is not Robot.forward_kinematics

    def limits(self) -> dict[str, Any]:
        """What ``robot check`` reports: action bounds and control mode, plus driver extras."""
        act = self.features[ACTION]
        return {
            "control_mode": act.control_mode,
            "action_names": list(act.names or ()),
            "action_low": list(act.low) if act.low is not None else None,
            "action_high": list(act.high) if act.high is not None else None,
        }

    # ------------------------------------------------------------------ calibration
    @property
    def calibration_path(self) -> Path:
        """``<calibration_dir>/<type>/<id>.json``."""
        root = (
            self.cfg.calibration_dir
            or os.environ.get(CALIBRATION_ENV)
            or Path.home() / ".cache" / "robot_learning" / "calibration"
        )
        return Path(root).expanduser() / self.name / f"{self.cfg.id}.json"

    def load_calibration(self) -> dict[str, Any] | None:
        """This robot's calibration, or None when it has none yet."""
        path = self.calibration_path
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RobotError(
                f"calibration file {path} is not valid JSON ({exc}); fix it or delete it and run "
                f"`robot-learning robot calibrate robot={self.name} robot.id={self.cfg.id}`"
            ) from None

    def save_calibration(self, data: dict[str, Any]) -> Path:
        """Write ``data`` atomically as this robot's calibration file; returns its path."""
        path = self.calibration_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, data)
        return path

    def calibrate(self) -> dict[str, Any]:
        """Measure this robot's calibration and save it (robots that need none return {})."""
        return {}


ROBOTS: Registry[type[Robot]] = Registry(
    "robot", discover=("hardware.robots",), entry_points="robot_learning.robots"
)


def robot_names() -> list[str]:
    """Registered robot names."""
    return ROBOTS.names()
