"""Build a robot from its config: ``robot=<name>`` plus ``robot.<key>=...`` settings."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hardware.robot import ROBOTS, Robot, RobotConfig
from hardware.safe_robot import SafeRobot
from robot_learning.envs import TaskConfig


def robot_config(data: dict[str, Any] | str) -> RobotConfig:
    """The typed config of ``data`` (a resolved ``robot:`` block, or just a name): the driver's
    own :class:`RobotConfig` subclass; a wrong key or value names ``robot.<key>``."""
    from robot_learning.config import build  # config imports envs, which must not import us

    if isinstance(data, str):
        data = {"type": data}
    data = dict(data)
    kind = data.get("type") or "sim"
    cls = ROBOTS.get(kind)
    return build(cls.config_class, {**data, "type": kind}, where="robot", prefix="robot.")


def make_robot(
    cfg: RobotConfig | dict[str, Any] | str, task: TaskConfig | None = None, safe: bool = True
) -> Robot:
    """The robot of ``cfg`` (not yet connected), behind the safety layer unless ``safe=False``."""
    if not isinstance(cfg, RobotConfig):
        cfg = robot_config(cfg)
    cls = ROBOTS.get(cfg.type)
    if not isinstance(cfg, cls.config_class):  # a base config for a driver with its own fields
        base = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
        cfg = robot_config(base)
    robot = cls(cfg, task)
    if cfg.cameras:
        from hardware.camera_robot import RobotWithCameras

        robot = RobotWithCameras(robot)
    return SafeRobot(robot) if safe else robot
