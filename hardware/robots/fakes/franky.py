"""A recording fake of ``franky`` (PyPI ``franky-control``): the classes ``robot=franka`` uses,
with franky's names and signatures.

All :class:`Robot` and :class:`Gripper` objects for one host share one :class:`FakeFranka`
(``ARMS[host]``), which records every call. A motion's target is reached when it starts (the
fake has no dynamics): a Cartesian motion sets the end-effector pose (``Absolute``: in the base
frame; ``Relative``: composed in the end-effector frame, as franky does), a joint motion sets the
joints and, having no kinematic model, puts the end effector back at its start pose. Hosts in
:data:`REFUSE` refuse connections with libfranka's error.
"""

from __future__ import annotations

import builtins
import enum

import numpy as np

from hardware.robots.fakes import CallLog

#: end-effector pose the fake arm starts in: position (m, base frame), quaternion x, y, z, w
#: (gripper pointing down, as franky reports it)
START_TRANSLATION = (0.45, 0.0, 0.3)
START_QUATERNION = (1.0, 0.0, 0.0, 0.0)
#: joint positions the fake arm starts in (rad)
START_Q = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)
GRIPPER_MAX_WIDTH = 0.08
#: hosts that refuse connections (as a robot without FCI enabled does)
REFUSE: set[str] = set()


class Exception(builtins.Exception):  # noqa: A001 (franky's own name)
    """Base of franky's exceptions."""


class NetworkException(Exception):
    """Connection refused, lost or timed out."""


class ControlException(Exception):
    """A motion was aborted (reflex, limit violation)."""


class CommandException(Exception):
    """A command was rejected."""


class ReferenceType(enum.Enum):
    """Whether a motion target is in the base frame or relative to the current state."""

    Absolute = 0
    Relative = 1


class RealtimeConfig(enum.Enum):
    """Whether libfranka requires a real-time kernel."""

    Enforce = 0
    Ignore = 1


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


class Affine:
    """A rigid transform: ``translation`` (3,) and ``quaternion`` (x, y, z, w)."""

    def __init__(self, translation=(0.0, 0.0, 0.0), quaternion=(0.0, 0.0, 0.0, 1.0)) -> None:
        self.translation = np.asarray(translation, np.float64).reshape(3).copy()
        self.quaternion = np.asarray(quaternion, np.float64).reshape(4).copy()

    def __mul__(self, other: Affine) -> Affine:
        rot = _quat_to_matrix(self.quaternion)
        return Affine(
            self.translation + rot @ other.translation, _quat_mul(self.quaternion, other.quaternion)
        )

    def __repr__(self) -> str:
        return f"Affine(t={self.translation.tolist()}, q={self.quaternion.tolist()})"


class RobotPose:
    """End-effector pose (and elbow state, not modelled)."""

    def __init__(self, end_effector_pose: Affine) -> None:
        self.end_effector_pose = end_effector_pose


class CartesianState:
    """End-effector pose and velocity (velocity not modelled)."""

    def __init__(self, pose: RobotPose) -> None:
        self.pose = pose


class CartesianMotion:
    """Move the end effector to ``target``."""

    def __init__(
        self,
        target: Affine,
        reference_type: ReferenceType = ReferenceType.Absolute,
        relative_dynamics_factor: float = 1.0,
        return_when_finished: bool = True,
        ee_frame: Affine | None = None,
    ) -> None:
        self.target = target
        self.reference_type = reference_type
        self.relative_dynamics_factor = relative_dynamics_factor


class JointMotion:
    """Move the joints to ``target`` (7 values)."""

    def __init__(
        self,
        target,
        reference_type: ReferenceType = ReferenceType.Absolute,
        relative_dynamics_factor: float = 1.0,
        return_when_finished: bool = True,
    ) -> None:
        self.target = np.asarray(target, np.float64).reshape(7).copy()
        self.reference_type = reference_type
        self.relative_dynamics_factor = relative_dynamics_factor


class FakeFranka:
    """The state one fake Franka keeps across connections, and every call it received."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.ee = Affine(START_TRANSLATION, START_QUATERNION)
        self.q = np.array(START_Q, np.float64)
        self.width = GRIPPER_MAX_WIDTH
        self.moving = False
        self.errors = False
        self.calls = CallLog()


#: the fake robots by host, created on first connection
ARMS: dict[str, FakeFranka] = {}


def arm(host: str) -> FakeFranka:
    """The fake robot at ``host`` (created on first use)."""
    if host not in ARMS:
        ARMS[host] = FakeFranka(host)
    return ARMS[host]


def _connect(host: str) -> FakeFranka:
    if host in REFUSE:
        raise NetworkException(
            "libfranka: Connection to FCI refused. Please install FCI feature or enable FCI "
            "mode in Desk."
        )
    return arm(host)


class Robot:
    """Fake of ``franky.Robot``."""

    def __init__(
        self,
        fci_hostname: str,
        relative_dynamics_factor: float = 1.0,
        default_torque_threshold: float = 20.0,
        default_force_threshold: float = 30.0,
        controller_mode=None,
        realtime_config: RealtimeConfig = RealtimeConfig.Enforce,
    ) -> None:
        self._arm = _connect(fci_hostname)
        self._arm.calls.record("Robot", "__init__", fci_hostname, relative_dynamics_factor)
        self.fci_hostname = fci_hostname
        self._dynamics = float(relative_dynamics_factor)

    @property
    def relative_dynamics_factor(self) -> float:
        """Global scale of velocity, acceleration and jerk limits (0..1]."""
        return self._dynamics

    @relative_dynamics_factor.setter
    def relative_dynamics_factor(self, value: float) -> None:
        self._arm.calls.record("Robot", "relative_dynamics_factor", value)
        self._dynamics = float(value)

    @property
    def current_cartesian_state(self) -> CartesianState:
        """The end-effector pose now."""
        ee = self._arm.ee
        return CartesianState(RobotPose(Affine(ee.translation, ee.quaternion)))

    @property
    def current_joint_positions(self) -> np.ndarray:
        """Joint positions now (rad)."""
        return self._arm.q.copy()

    @property
    def has_errors(self) -> bool:
        """True after a reflex until :meth:`recover_from_errors`."""
        return self._arm.errors

    def move(
        self,
        motion: CartesianMotion | JointMotion,
        asynchronous: bool = False,
        limit_rate: bool = False,
        cutoff_frequency: float = 100.0,
    ) -> None:
        """Execute ``motion`` (preempting a running asynchronous one); the target is reached."""
        self._arm.calls.record("Robot", "move", motion, asynchronous=asynchronous)
        if self._arm.errors:
            raise ControlException("libfranka: Move command rejected: robot is in reflex mode")
        if isinstance(motion, CartesianMotion):
            target = motion.target
            if motion.reference_type is ReferenceType.Relative:
                target = self._arm.ee * target
            self._arm.ee = Affine(target.translation, target.quaternion)
        else:
            self._arm.q = motion.target.copy()
            self._arm.ee = Affine(START_TRANSLATION, START_QUATERNION)
        self._arm.moving = asynchronous

    def join_motion(self, timeout: float | None = None) -> bool:
        """Wait for the running motion (returns at once: targets are reached when sent)."""
        self._arm.calls.record("Robot", "join_motion", timeout)
        self._arm.moving = False
        return True

    def poll_motion(self) -> bool:
        """Whether a motion is running."""
        return self._arm.moving

    def stop(self) -> None:
        """Stop every running motion."""
        self._arm.calls.record("Robot", "stop")
        self._arm.moving = False

    def recover_from_errors(self) -> bool:
        """Clear a reflex."""
        self._arm.calls.record("Robot", "recover_from_errors")
        self._arm.errors = False
        return True


class BoolFuture:
    """A finished asynchronous gripper command."""

    def __init__(self, value: bool) -> None:
        self._value = value

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the command finished (always, in the fake)."""
        return True

    def get(self) -> bool:
        """The command's result."""
        return self._value


class Gripper:
    """Fake of ``franky.Gripper`` (Franka Hand)."""

    def __init__(self, fci_hostname: str) -> None:
        self._arm = _connect(fci_hostname)
        self._arm.calls.record("Gripper", "__init__", fci_hostname)

    @property
    def width(self) -> float:
        """Current opening (m)."""
        return self._arm.width

    @property
    def max_width(self) -> float:
        """Widest opening (m)."""
        return GRIPPER_MAX_WIDTH

    def move_async(self, width: float, speed: float) -> BoolFuture:
        """Move the fingers to ``width`` (m) at ``speed`` (m/s)."""
        self._arm.calls.record("Gripper", "move_async", width, speed)
        if not 0.0 <= width <= GRIPPER_MAX_WIDTH:
            raise CommandException(f"gripper width {width} outside 0..{GRIPPER_MAX_WIDTH}")
        self._arm.width = float(width)
        return BoolFuture(True)

    def grasp_async(
        self,
        width: float,
        speed: float,
        force: float,
        epsilon_inner: float = 0.005,
        epsilon_outer: float = 0.005,
    ) -> BoolFuture:
        """Close on an object of about ``width`` with ``force`` (N); the fake has no object, so
        the fingers close fully."""
        self._arm.calls.record(
            "Gripper", "grasp_async", width, speed, force, epsilon_inner, epsilon_outer
        )
        self._arm.width = 0.0
        return BoolFuture(width - epsilon_inner <= 0.0 <= width + epsilon_outer)
