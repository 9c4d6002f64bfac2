"""Leader arms as teleop devices: ``device=so101_leader`` / ``so100_leader`` / ``koch_leader``.

A leader arm is a copy of the follower moved by the operator's hand with its torque off. Each
control tick the device reads its joints (calibrated with its own LeRobot-format file,
``<calibration_dir>/<arm>_leader/<id>.json``) and hands them over as the follower's action:
absolute joint positions (``joint_pos``) with the follower's names, clipped to its bounds.

Options (``device.<key>=value``): ``port`` (the leader's serial device), ``fake`` (a simulated
leader on a pseudo-terminal), ``id`` (names its calibration file), ``calibration_dir``,
``baudrate``, ``intervene`` (true: every tick is an intervention, for taking over a policy).
Calibrate a leader with ``make_device(...).arm.calibrate()`` while connected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hardware.robot import RobotError
from hardware.robots.servo.arm import ServoArm
from hardware.robots.servo.arms import KochArm, SO100Arm, SO101Arm
from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, TeleopInput, parse_options
from robot_learning.features import ACTION


@dataclass
class LeaderOptions:
    """``device.<key>=value`` options of a leader arm."""

    port: str | None = None
    """The leader's serial device (default: the arm type's default port)."""
    fake: bool = False
    """Drive a simulated leader on a pseudo-terminal instead of hardware."""
    id: str = "default"
    """The leader's name: its calibration file is ``<calibration_dir>/<arm>_leader/<id>.json``."""
    calibration_dir: str | None = None
    """Where calibration files live (default as for robots)."""
    baudrate: int = 1_000_000
    """The leader's motors' baud rate."""
    intervene: bool = False
    """Report every tick as an intervention (the leader takes over from a policy)."""


class SO101LeaderArm(SO101Arm):
    """The SO-101 leader: same motors, torque off (moved by hand)."""

    name = "so101_leader"
    torque_on_connect = False


class SO100LeaderArm(SO100Arm):
    """The SO-100 leader: same motors, torque off (moved by hand)."""

    name = "so100_leader"
    torque_on_connect = False


class KochLeaderArm(KochArm):
    """The Koch leader: same motors, torque off (moved by hand)."""

    name = "koch_leader"
    torque_on_connect = False


class ServoLeader:
    """A leader arm as a teleop device (see the module docstring)."""

    name: ClassVar[str] = ""
    arm_class: ClassVar[type[ServoArm]]

    def __init__(self, context: TeleopContext) -> None:
        self.context = context
        self.options = parse_options(LeaderOptions, dict(context.options), self.name)
        opts = self.options
        settings: dict[str, Any] = {"type": self.arm_class.name, "id": opts.id, "fake": opts.fake}
        settings.update(calibration_dir=opts.calibration_dir, baudrate=opts.baudrate)
        if opts.port is not None:
            settings["port"] = opts.port
        try:
            cfg = self.arm_class.config_class(**settings)
        except ValueError as exc:
            raise DeviceError(f"device={self.name}: {exc}") from None
        self.arm = self.arm_class(cfg)
        """The leader arm (a robot without torque), connected by :meth:`connect`."""
        act = context.features[ACTION]
        names = list(act.names or ())
        if act.control_mode != "joint_pos" or names != self.arm.names:
            raise DeviceError(
                f"device={self.name} produces joint_pos actions for {self.arm.names}; this "
                f"robot/task wants {act.control_mode!r} actions for {names}: use it with "
                f"robot={self.arm_class.name.removesuffix('_leader')}"
            )
        self.low = np.asarray(act.low, np.float32)
        self.high = np.asarray(act.high, np.float32)

    def connect(self) -> None:
        """Open the leader's bus (torque stays off); raises :class:`DeviceError` naming the fix."""
        try:
            self.arm.connect()
        except RobotError as exc:
            raise DeviceError(f"device={self.name}: {exc}") from None

    def disconnect(self) -> None:
        """Close the leader's bus (idempotent)."""
        self.arm.disconnect()

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the leader's pose is the operator's."""

    def read(self, obs: dict[str, np.ndarray], policy_action: np.ndarray | None) -> TeleopInput:
        """The leader's joint positions as the follower's action."""
        try:
            joints = self.arm.read_joints()
        except RobotError as exc:
            raise DeviceError(f"device={self.name}: {exc}") from None
        action = np.clip(joints, self.low, self.high).astype(np.float32)
        return TeleopInput(action=action, intervene=self.options.intervene)

    def show(self, obs: dict[str, np.ndarray], status: dict[str, Any]) -> None:
        """No screen."""


@DEVICES.register("so101_leader")
class SO101Leader(ServoLeader):
    """SO-101 leader arm (Feetech STS3215) driving an SO-101 follower."""

    name = "so101_leader"
    arm_class = SO101LeaderArm


@DEVICES.register("so100_leader")
class SO100Leader(ServoLeader):
    """SO-100 leader arm (Feetech STS3215) driving an SO-100 follower."""

    name = "so100_leader"
    arm_class = SO100LeaderArm


@DEVICES.register("koch_leader")
class KochLeader(ServoLeader):
    """Koch leader arm (Dynamixel) driving a Koch follower."""

    name = "koch_leader"
    arm_class = KochLeaderArm
