"""``robot=franka``: Franka Robotics arms (Panda, FR3) through ``franky``.

The action is the arm tasks' ``ee_delta_pos`` form: ``dx, dy, dz`` in [-1, 1] times
``action_scale`` metres in the robot's base frame plus ``gripper`` (-1 open, +1 close). Each
command is one asynchronous franky ``CartesianMotion`` to an *absolute* target, the measured
end-effector position plus the delta with the orientation held at what it was at
``connect()``/``home()``; it preempts the previous one, so the arm follows at the task rate
(franky's ``Relative`` targets are composed in the end-effector frame, which would turn a
"down" command sideways when the hand is tilted). The caller paces the loop at ``control_hz``.
``observation.state`` is ``ee_x, ee_y, ee_z, gripper_width, joint1..joint7``, the same form as
the simulated Panda tasks.

Gripper (Franka Hand): the command maps linearly to a width (-1: ``max_width``, +1: 0) sent as an
asynchronous move when it changes by more than ``gripper_deadband``; at or above
``grasp_threshold`` it is a force-controlled grasp (``gripper_force``) that keeps holding an
object of any size. ``gripper=false`` ignores the command (``gripper_width`` then reports the
commanded width).

Needs ``pip install 'robot-learning[franka]'`` (PyPI ``franky-control``), FCI activated in Desk
and, by default, a real-time kernel; ``robot.fake=true`` drives
:mod:`hardware.robots.fakes.franky` instead, and ``robot.host`` may point at ``franky-sim``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.arm_features import ACTION_NAMES, ee_delta_arm_features
from hardware.robot import ROBOTS, Robot, RobotConfig, RobotError
from robot_learning.envs import TaskConfig
from robot_learning.features import FeatureSpec

log = logging.getLogger(__name__)

INSTALL = "pip install 'robot-learning[franka]'"
JOINTS = 7
#: joint position limits (rad), the union of the Panda and FR3 datasheets, one (low, high) per
#: joint, widened by JOINT_MARGIN: readings beyond are a sensor fault
JOINT_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7837, 1.7837),
    (-2.9007, 2.9007),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 4.5169),
    (-3.0159, 3.0159),
)
JOINT_MARGIN = 0.1
#: end-effector bounds (m, base frame) around the 0.855 m reach
EE_LOW = (-1.0, -1.0, -0.5)
EE_HIGH = (1.0, 1.0, 1.3)
#: Franka Hand stroke (m)
HAND_MAX_WIDTH = 0.08
#: how long home() waits for the hand to finish its last command and to open (s)
HAND_WAIT_S = 3.0


@dataclass
class FrankaConfig(RobotConfig):
    """``robot=franka`` settings."""

    type: str = "franka"
    host: str | None = None
    """The robot's FCI address (the control box's IP, e.g. 172.16.0.2); required unless
    ``fake`` (then the fake robot at 127.0.0.1)."""
    action_scale: float = 0.03
    """Metres of end-effector travel per control step for an action component of 1.0."""
    relative_dynamics_factor: float = 0.15
    """Scale (0..1] of franky's velocity, acceleration and jerk limits for task motions."""
    home_joints: tuple[float, ...] = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)
    """Joint positions of the home pose (rad); default: libfranka's ready pose, hand down."""
    home_dynamics_factor: float = 0.1
    """Scale (0..1] of the limits while homing."""
    realtime_kernel: bool = True
    """Require a real-time kernel (libfranka's advice); false for franky-sim or a test PC."""
    gripper: bool = True
    """Drive the Franka Hand."""
    gripper_speed: float = 0.1
    """Finger speed (m/s)."""
    gripper_force: float = 20.0
    """Grasping force (N)."""
    grasp_threshold: float = 0.5
    """Gripper commands at or above this grasp with ``gripper_force`` instead of moving."""
    gripper_deadband: float = 0.005
    """Smallest width change (m) worth a new gripper command (each one interrupts the last)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.host is None and not self.fake:
            raise ValueError(
                "robot.host is not set: give the Franka's FCI address, e.g. robot.host=172.16.0.2 "
                "(the control box's IP, the one Desk runs on), or robot.fake=true for the fake"
            )
        for name in ("relative_dynamics_factor", "home_dynamics_factor"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"robot.{name}={getattr(self, name)} must be in (0, 1]")
        if len(self.home_joints) != JOINTS:
            raise ValueError(
                f"robot.home_joints needs {JOINTS} values, got {len(self.home_joints)}"
            )
        for name in ("action_scale", "gripper_speed", "gripper_force", "gripper_deadband"):
            if not getattr(self, name) > 0:
                raise ValueError(f"robot.{name}={getattr(self, name)} must be positive")
        if not -1 < self.grasp_threshold <= 1:
            raise ValueError(f"robot.grasp_threshold={self.grasp_threshold} must be in (-1, 1]")


def load_sdk(fake: bool) -> Any:
    """The ``franky`` module (the recording fake when ``fake``); a missing SDK is a
    :class:`RobotError` naming the install command."""
    if fake:
        from hardware.robots.fakes import franky

        return franky
    try:
        return importlib.import_module("franky")
    except ImportError as exc:
        raise RobotError(
            f"robot=franka needs the franky SDK ({exc}): {INSTALL} (PyPI package "
            "franky-control), or robot.fake=true"
        ) from None


def franka_features() -> FeatureSpec:
    """``observation.state`` (11: end-effector xyz, gripper width, 7 joints) and the
    ``ee_delta_pos`` action (dx, dy, dz, gripper in [-1, 1])."""
    low = EE_LOW + (0.0,) + tuple(lo - JOINT_MARGIN for lo, _ in JOINT_LIMITS)
    high = EE_HIGH + (HAND_MAX_WIDTH + 0.005,) + tuple(hi + JOINT_MARGIN for _, hi in JOINT_LIMITS)
    return ee_delta_arm_features(7, low, high)


@ROBOTS.register("franka")
class FrankaRobot(Robot):
    """Franka Panda / FR3: end-effector delta control through franky Cartesian motions."""

    name = "franka"
    config_class = FrankaConfig
    extra = "franka"  # the pip extra `robot list` shows

    def __init__(self, cfg: FrankaConfig, task: TaskConfig | None = None) -> None:
        super().__init__(cfg, task)
        self.cfg: FrankaConfig = cfg
        self.host = cfg.host or "127.0.0.1"
        self.control_hz = float(cfg.control_hz or 10.0)
        self.ee_action_scale = cfg.action_scale
        self.features = franka_features()
        self.sdk: Any = None
        """The franky module (or its fake) while connected."""
        self.arm: Any = None
        """The ``franky.Robot`` while connected."""
        self.hand: Any = None
        """The ``franky.Gripper`` while connected (``gripper=true``)."""
        self._quaternion = np.array([1.0, 0.0, 0.0, 0.0])
        self._max_width = HAND_MAX_WIDTH
        self._width_cmd = HAND_MAX_WIDTH
        self._grasping: bool | None = None
        self._hand_future: Any = None

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Connect to the robot (and hand), clear stale reflexes and latch the hand orientation;
        raises :class:`RobotError` naming the fix."""
        if self._connected:
            return
        sdk = load_sdk(self.cfg.fake)
        self.load_calibration()  # a corrupt file names its fix before the arm moves
        rt = sdk.RealtimeConfig
        realtime = rt.Enforce if self.cfg.realtime_kernel else rt.Ignore
        try:
            arm = sdk.Robot(
                self.host,
                relative_dynamics_factor=self.cfg.relative_dynamics_factor,
                realtime_config=realtime,
            )
            hand = sdk.Gripper(self.host) if self.cfg.gripper else None
        except Exception as exc:  # franky raises NetworkException, IncompatibleVersion, Realtime...
            raise RobotError(
                f"cannot connect to the Franka at {self.host} ({exc}): check that the robot is "
                "on, its joints unlocked and FCI activated in Desk, that robot.host is the FCI "
                "address and reachable (ping it), that franky's libfranka matches the robot's "
                "system version, and for a realtime error use a PREEMPT_RT kernel or "
                "robot.realtime_kernel=false"
            ) from exc
        self.sdk, self.arm, self.hand = sdk, arm, hand
        self.arm.recover_from_errors()  # a reflex left by a previous session blocks motions
        if hand is not None:
            self._max_width = float(hand.max_width) or HAND_MAX_WIDTH
        self._quaternion = self._pose().quaternion.copy()
        self._width_cmd, self._grasping, self._hand_future = self._max_width, None, None
        self._connected = True
        log.info("connected to Franka at %s (control %.3g Hz)", self.host, self.control_hz)

    def disconnect(self) -> None:
        """Stop the running motion (the arm holds where it is) and release the robot
        (idempotent; libfranka closes the connection when the objects go)."""
        if not self._connected:
            return
        self._connected = False
        try:
            self.arm.stop()
            if self._hand_future is not None:  # let the last hand command answer first
                self._hand_future.wait(HAND_WAIT_S)
        finally:
            self.sdk = self.arm = self.hand = self._hand_future = None

    def home(self) -> None:
        """Clear reflexes, move to ``home_joints`` (blocking), latch the hand orientation there
        and open the hand."""
        self._require_connected()
        self.arm.recover_from_errors()
        motion = self.sdk.JointMotion(
            list(self.cfg.home_joints), relative_dynamics_factor=self.cfg.home_dynamics_factor
        )
        self._move(motion, asynchronous=False)
        self._quaternion = self._pose().quaternion.copy()
        self._command_gripper(-1.0, wait=HAND_WAIT_S)

    # ------------------------------------------------------------------ I/O
    def _pose(self) -> Any:
        return self.arm.current_cartesian_state.pose.end_effector_pose

    def _move(self, motion: Any, asynchronous: bool) -> None:
        try:
            self.arm.move(motion, asynchronous=asynchronous)
        except self.sdk.Exception as exc:
            raise RobotError(
                f"the Franka at {self.host} refused or aborted a motion ({exc}): check the arm "
                "(collision reflex, limit, user stop released), then call home(), which runs "
                "recover_from_errors()"
            ) from exc

    def get_observation(self) -> dict[str, np.ndarray]:
        """End-effector position, gripper width and joint positions."""
        self._require_connected()
        xyz = np.asarray(self._pose().translation, np.float64).ravel()
        q = np.asarray(self.arm.current_joint_positions, np.float64).ravel()
        width = float(self.hand.width) if self.hand is not None else self._width_cmd
        state = np.concatenate([xyz, [width], q[:JOINTS]]).astype(np.float32)
        return {"observation.state": state}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Start a Cartesian motion to the measured position + ``action[:3] * action_scale``
        (orientation held), preempting the last one, and the gripper command; returns the
        clipped action."""
        self._require_connected()
        sent = np.clip(np.asarray(action, np.float32).ravel(), -1.0, 1.0)
        if sent.shape != (4,) or not np.all(np.isfinite(sent)):
            raise RobotError(
                f"robot=franka takes 4 finite action elements {ACTION_NAMES}, got {action}"
            )
        xyz = np.asarray(self._pose().translation, np.float64).ravel()
        target = self.sdk.Affine(xyz + sent[:3] * self.cfg.action_scale, self._quaternion)
        motion = self.sdk.CartesianMotion(
            target,
            self.sdk.ReferenceType.Absolute,
            relative_dynamics_factor=self.cfg.relative_dynamics_factor,
        )
        self._move(motion, asynchronous=True)
        self._command_gripper(float(sent[3]))
        return sent

    def _command_gripper(self, command: float, wait: float = 0.0) -> None:
        """Send the hand command for ``command`` in [-1, 1] if it differs from the last one
        sent; waits up to ``wait`` s for the previous command, and defers this one to a later
        call while the previous is still running (a preempted hand command may never answer,
        and franky serialises them)."""
        width = self._max_width * (1.0 - command) / 2.0  # the simulated tasks' mapping
        grasp = command >= self.cfg.grasp_threshold
        if grasp:
            send = self._grasping is not True
        else:
            moved = abs(width - self._width_cmd) > self.cfg.gripper_deadband
            send = self._grasping is not False or moved
        if not send:
            return
        if self.hand is not None:
            if self._hand_future is not None and not self._hand_future.wait(wait):
                return
            if grasp:  # any object between the fingers counts as grasped; the force is held
                self._hand_future = self.hand.grasp_async(
                    0.0, self.cfg.gripper_speed, self.cfg.gripper_force, 0.005, self._max_width
                )
            else:
                self._hand_future = self.hand.move_async(width, self.cfg.gripper_speed)
            if wait:
                self._hand_future.wait(wait)
        self._width_cmd = 0.0 if grasp else width
        self._grasping = grasp

    def limits(self) -> dict[str, Any]:
        """Action bounds and mode, plus the host, metres per action unit and the hand."""
        return {
            **super().limits(),
            "host": self.host,
            "action_scale_m": self.cfg.action_scale,
            "gripper": self.cfg.gripper,
        }
