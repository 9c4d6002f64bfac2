"""The registered servo arms: ``robot=so101`` / ``so100`` (Feetech STS3215) and ``robot=koch``
(Dynamixel X series), with LeRobot's motor names, ids and models."""

from __future__ import annotations

from dataclasses import dataclass, field

from hardware.robot import ROBOTS
from hardware.robots.servo.arm import ServoArm, ServoArmConfig
from hardware.robots.servo.dynamixel import DynamixelBus
from hardware.robots.servo.feetech import FeetechBus

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
#: the fakes' joint travel (actual encoder ticks): plausible mechanical stops of a 6-DoF arm
FAKE_TRAVEL = {
    "shoulder_pan": (900, 3200),
    "shoulder_lift": (800, 3300),
    "elbow_flex": (850, 3150),
    "wrist_flex": (900, 3250),
    "gripper": (2000, 3400),
}


@dataclass
class SO101Config(ServoArmConfig):
    """``robot=so101`` / ``robot=so100`` settings (six Feetech STS3215, ids 1-6)."""

    type: str = "so101"
    motors: dict[str, int] = field(default_factory=lambda: {n: i + 1 for i, n in enumerate(JOINTS)})
    models: dict[str, str] = field(default_factory=lambda: dict.fromkeys(JOINTS, "sts3215"))


@ROBOTS.register("so101")
class SO101Arm(ServoArm):
    """SO-101 arm: six Feetech STS3215 servos on one USB bus (joint positions in degrees)."""

    name = "so101"
    config_class = SO101Config
    bus_class = FeetechBus
    full_turn_motors = ("wrist_roll",)
    fake_travel = FAKE_TRAVEL


@ROBOTS.register("so100")
class SO100Arm(SO101Arm):
    """SO-100 arm: the SO-101's predecessor, same motors and bus (joint positions in degrees)."""

    name = "so100"


@dataclass
class KochConfig(ServoArmConfig):
    """``robot=koch`` settings (Dynamixel XL430-W250 at the shoulder, XL330-M288 beyond)."""

    type: str = "koch"
    port: str = "/dev/ttyUSB0"
    motors: dict[str, int] = field(default_factory=lambda: {n: i + 1 for i, n in enumerate(JOINTS)})
    models: dict[str, str] = field(
        default_factory=lambda: {
            n: "xl430-w250" if n in ("shoulder_pan", "shoulder_lift") else "xl330-m288"
            for n in JOINTS
        }
    )


@ROBOTS.register("koch")
class KochArm(ServoArm):
    """Koch v1.1 arm: six Dynamixel X-series servos, protocol 2.0 (joint positions in degrees)."""

    name = "koch"
    config_class = KochConfig
    bus_class = DynamixelBus
    full_turn_motors = ("shoulder_pan", "wrist_roll")
    fake_travel = {k: v for k, v in FAKE_TRAVEL.items() if k != "shoulder_pan"}
