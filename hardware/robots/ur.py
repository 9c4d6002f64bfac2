"""``robot=ur``: Universal Robots arms (CB3, e-Series, UR20/30) through ``ur_rtde``.

The action is the arm tasks' ``ee_delta_pos`` form: ``dx, dy, dz`` in [-1, 1] times
``action_scale`` metres in the robot's base frame (ur_rtde's ``base``, not ROS ``base_link``)
plus ``gripper`` (-1 open, +1 close). Each command is one ``servoL`` to the measured TCP plus the
delta, with the tool orientation held at what it was at ``connect()``/``home()``, and ``time`` set
to one control period so the arm reaches it by the next command; the caller paces the loop at
``control_hz`` (``robot check``, ``deploy``). ``observation.state`` is ``ee_x, ee_y, ee_z,
gripper_width, joint1..joint6``.

Gripper: ``gripper=none`` ignores the gripper command (it is still returned as sent);
``gripper=digital_out`` drives a pneumatic or I/O-controlled gripper from a standard digital
output (closed while the command is > 0). There is no width sensor either way:
``gripper_width`` is the commanded width (``gripper_open_width`` or 0).

Needs ``pip install 'robot-learning[ur]'`` (PyPI ``ur-rtde``) and the robot in remote control
mode; ``robot.fake=true`` drives :mod:`hardware.robots.fakes.ur_rtde` instead.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from hardware.arm_features import ACTION_NAMES, ee_delta_arm_features
from hardware.robot import ROBOTS, Robot, RobotConfig, RobotError
from robot_learning.envs import TaskConfig
from robot_learning.features import FeatureSpec

log = logging.getLogger(__name__)

#: the SDK's modules, in the order the driver uses them
SDK_MODULES = ("rtde_control", "rtde_receive", "rtde_io")
INSTALL = "pip install 'robot-learning[ur]'"
JOINTS = 6
#: UR joints turn +-360 degrees (rad); readings beyond this plus a margin are a sensor fault
JOINT_RANGE = 2 * np.pi + 0.1
#: TCP bounds (m, base frame) wide enough for the largest UR (UR20, 1.75 m reach)
EE_RANGE = 2.0


@dataclass
class URConfig(RobotConfig):
    """``robot=ur`` settings."""

    type: str = "ur"
    host: str | None = None
    """The controller's IP address (teach pendant: Settings > System > Network); required
    unless ``fake`` (then the fake controller at 127.0.0.1)."""
    action_scale: float = 0.03
    """Metres of TCP travel per control step for an action component of 1.0 (the arm tasks')."""
    servo_lookahead: float = 0.1
    """servoL lookahead time (s, 0.03..0.2): larger is smoother and lags more."""
    servo_gain: float = 300.0
    """servoL proportional gain (100..2000): larger tracks tighter and may oscillate."""
    home_joints: tuple[float, ...] = (0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0)
    """Joint positions of the home pose (rad, base to wrist 3); default: tool pointing down."""
    home_speed: float = 0.5
    """Speed of the leading joint when homing (rad/s)."""
    home_acceleration: float = 0.5
    """Acceleration of the leading joint when homing (rad/s^2)."""
    stop_deceleration: float = 2.0
    """Tool deceleration when leaving servo mode (m/s^2)."""
    gripper: Literal["none", "digital_out"] = "none"
    """``none``: no gripper; ``digital_out``: a gripper on a standard digital output."""
    gripper_output: int = 0
    """Standard digital output (0..7) of ``gripper=digital_out``; high closes the gripper."""
    gripper_open_width: float = 0.085
    """Reported ``gripper_width`` when open (m); closed reports 0."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.host is None and not self.fake:
            raise ValueError(
                "robot.host is not set: give the UR controller's IP address, e.g. "
                "robot.host=192.168.1.10 (teach pendant: Settings > System > Network), "
                "or robot.fake=true for the fake arm"
            )
        if not 0.03 <= self.servo_lookahead <= 0.2:
            raise ValueError(f"robot.servo_lookahead={self.servo_lookahead} must be in 0.03..0.2 s")
        if not 100 <= self.servo_gain <= 2000:
            raise ValueError(f"robot.servo_gain={self.servo_gain} must be in 100..2000")
        if len(self.home_joints) != JOINTS:
            raise ValueError(
                f"robot.home_joints needs {JOINTS} values, got {len(self.home_joints)}"
            )
        for name in ("action_scale", "home_speed", "home_acceleration", "stop_deceleration"):
            if not getattr(self, name) > 0:
                raise ValueError(f"robot.{name}={getattr(self, name)} must be positive")
        if not 0 <= self.gripper_output <= 7:
            raise ValueError(f"robot.gripper_output={self.gripper_output} must be in 0..7")


def load_sdk(fake: bool) -> tuple[Any, Any, Any]:
    """The ``rtde_control``, ``rtde_receive`` and ``rtde_io`` modules (the recording fake's when
    ``fake``); a missing SDK is a :class:`RobotError` naming the install command."""
    if fake:
        from hardware.robots.fakes import ur_rtde

        return ur_rtde.rtde_control, ur_rtde.rtde_receive, ur_rtde.rtde_io
    try:
        mods: list[ModuleType] = [importlib.import_module(m) for m in SDK_MODULES]
    except ImportError as exc:
        raise RobotError(
            f"robot=ur needs the ur_rtde SDK ({exc}): {INSTALL} (PyPI package ur-rtde), "
            "or robot.fake=true"
        ) from None
    return mods[0], mods[1], mods[2]


def ur_features(gripper_open_width: float) -> FeatureSpec:
    """``observation.state`` (10: TCP xyz, gripper width, 6 joints) and the ``ee_delta_pos``
    action (dx, dy, dz, gripper in [-1, 1])."""
    low = (-EE_RANGE, -EE_RANGE, -EE_RANGE, 0.0) + (-JOINT_RANGE,) * JOINTS
    high = (EE_RANGE, EE_RANGE, EE_RANGE, gripper_open_width) + (JOINT_RANGE,) * JOINTS
    return ee_delta_arm_features(JOINTS, low, high)


@ROBOTS.register("ur")
class URRobot(Robot):
    """Universal Robots arm: end-effector delta control through ur_rtde servoL."""

    name = "ur"
    config_class = URConfig
    extra = "ur"  # the pip extra `robot list` shows

    def __init__(self, cfg: URConfig, task: TaskConfig | None = None) -> None:
        super().__init__(cfg, task)
        self.cfg: URConfig = cfg
        self.host = cfg.host or "127.0.0.1"
        self.control_hz = float(cfg.control_hz or 10.0)
        self.ee_action_scale = cfg.action_scale
        self.features = ur_features(cfg.gripper_open_width)
        self.control: Any = None
        """The ``RTDEControlInterface`` while connected."""
        self.receive: Any = None
        """The ``RTDEReceiveInterface`` while connected."""
        self.io: Any = None
        """The ``RTDEIOInterface`` while connected (``gripper=digital_out`` only)."""
        self._rotation = np.zeros(3)
        self._gripper_closed: bool | None = None

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Connect to the controller (uploads ur_rtde's control script) and latch the tool
        orientation; raises :class:`RobotError` naming the fix."""
        if self._connected:
            return
        control, receive, io = load_sdk(self.cfg.fake)
        self.load_calibration()  # a corrupt file names its fix before the arm moves
        try:
            self.receive = receive.RTDEReceiveInterface(self.host)
            self.control = control.RTDEControlInterface(self.host)
            if self.cfg.gripper == "digital_out":
                self.io = io.RTDEIOInterface(self.host)
        except Exception as exc:  # ur_rtde raises RuntimeError for every connection failure
            self._release()
            raise RobotError(
                f"cannot connect to the UR controller at {self.host} ({exc}): check that the "
                "robot is powered on and brakes released, in Remote Control mode (teach pendant, "
                "top right), reachable on the network (ping it), that robot.host is right, and "
                "that no other program holds its RTDE interface"
            ) from exc
        self._connected = True
        self._rotation = np.asarray(self.receive.getActualTCPPose(), np.float64)[3:6]
        self._gripper_closed = None
        log.info("connected to UR at %s (control %.3g Hz)", self.host, self.control_hz)

    def disconnect(self) -> None:
        """Leave servo mode (the arm decelerates and holds), stop the control script and close
        the connections (idempotent)."""
        if not self._connected:
            return
        self._connected = False
        try:
            self.control.servoStop(self.cfg.stop_deceleration)
            self.control.stopScript()
        finally:
            self._release()

    def _release(self) -> None:
        for iface in (self.control, self.receive, self.io):
            if iface is not None:
                try:
                    iface.disconnect()
                except Exception as exc:  # already gone: nothing left to release
                    log.debug("UR disconnect: %s", exc)
        self.control = self.receive = self.io = None

    def home(self) -> None:
        """Leave servo mode, move to ``home_joints`` (moveJ, blocking) and latch the tool
        orientation there; opens the gripper."""
        self._require_connected()
        self.control.servoStop(self.cfg.stop_deceleration)
        self.control.moveJ(
            list(self.cfg.home_joints), self.cfg.home_speed, self.cfg.home_acceleration, False
        )
        self._rotation = np.asarray(self.receive.getActualTCPPose(), np.float64)[3:6]
        self._command_gripper(False)

    # ------------------------------------------------------------------ I/O
    def get_observation(self) -> dict[str, np.ndarray]:
        """TCP position, commanded gripper width and joint positions."""
        self._require_connected()
        tcp = np.asarray(self.receive.getActualTCPPose(), np.float64)
        q = np.asarray(self.receive.getActualQ(), np.float64)
        width = 0.0 if self._gripper_closed else self.cfg.gripper_open_width
        state = np.concatenate([tcp[:3], [width], q[:JOINTS]]).astype(np.float32)
        return {"observation.state": state}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """servoL to the measured TCP + ``action[:3] * action_scale`` (orientation held) over one
        control period, and the gripper command; returns the clipped action."""
        self._require_connected()
        sent = np.clip(np.asarray(action, np.float32).ravel(), -1.0, 1.0)
        if sent.shape != (4,) or not np.all(np.isfinite(sent)):
            raise RobotError(
                f"robot=ur takes 4 finite action elements {ACTION_NAMES}, got {action}"
            )
        tcp = np.asarray(self.receive.getActualTCPPose(), np.float64)
        target = np.concatenate([tcp[:3] + sent[:3] * self.cfg.action_scale, self._rotation])
        period = 1.0 / self.control_hz
        # speed and acceleration are unused by servoL (ur_rtde docs); time spans one period
        self.control.servoL(
            target.tolist(), 0.0, 0.0, period, self.cfg.servo_lookahead, self.cfg.servo_gain
        )
        self._command_gripper(bool(sent[3] > 0))
        return sent

    def _command_gripper(self, closed: bool) -> None:
        # only changes go out: the output keeps its level
        if self.io is not None and closed != self._gripper_closed:
            self.io.setStandardDigitalOut(self.cfg.gripper_output, closed)
        self._gripper_closed = closed

    def limits(self) -> dict[str, Any]:
        """Action bounds and mode, plus the host, metres per action unit and gripper mode."""
        return {
            **super().limits(),
            "host": self.host,
            "action_scale_m": self.cfg.action_scale,
            "gripper": self.cfg.gripper,
        }
