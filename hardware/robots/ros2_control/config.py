"""Settings of ``robot=ros2_control`` (defaults: a Franka Panda as the simulated tasks model it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hardware.robot import RobotConfig

COMMAND_INTERFACES = ("trajectory", "forward")
GRIPPER_COMMANDS = ("trajectory", "controller", "none")
PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
PANDA_FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]
PANDA_REST = [0.0, -0.2614, 0.0, -2.4291, 0.0, 2.1676, 0.7854]


@dataclass
class Ros2ControlConfig(RobotConfig):
    """``robot=ros2_control``: an arm behind the standard ros2_control controllers."""

    type: str = "ros2_control"
    joint_names: list[str] = field(default_factory=lambda: list(PANDA_JOINTS))
    """The arm's ROS joint names, base to tip (observation ``jointK`` is the K-th)."""
    gripper_joint_names: list[str] = field(default_factory=lambda: list(PANDA_FINGERS))
    """Finger joints (their positions sum to ``gripper_width``); empty: no gripper."""
    joint_states_topic: str = "/joint_states"
    """Where the joint_state_broadcaster publishes."""
    command_interface: str = "trajectory"
    """``trajectory`` (joint_trajectory_controller ``~/joint_trajectory``) or ``forward``
    (forward_command_controller ``~/commands``, position interface)."""
    arm_controller: str = "joint_trajectory_controller"
    """The trajectory controller's name (topic ``/<name>/joint_trajectory``)."""
    forward_controller: str = "forward_position_controller"
    """The forward controller's name (topic ``/<name>/commands``)."""
    gripper_command: str = "trajectory"
    """``trajectory`` (the finger joints ride in the arm's trajectory), ``controller`` (a forward
    controller ``/<gripper_controller>/commands``) or ``none``."""
    gripper_controller: str = "gripper_controller"
    """The gripper's forward controller (with ``gripper_command=controller``)."""
    description: str | None = None
    """URDF or MJCF file for the kinematics; None: read ``/robot_description``."""
    description_topic: str = "/robot_description"
    """Where robot_state_publisher (or the fake) publishes the description."""
    description_joint_names: list[str] = field(default_factory=list)
    """The arm joints' names in the description; empty: ``joint_names``."""
    ee_site: str | None = None
    """End effector as an MJCF site; None: ``ee_body`` + ``ee_offset``."""
    ee_body: str | None = None
    """End effector as a body (URDF link) ..."""
    ee_offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """... and a point in its frame (m)."""
    ee_rotation: list[float] = field(default_factory=lambda: [1, 0, 0, 0, -1, 0, 0, 0, -1])
    """Orientation held by the controller (row-major 3x3; default: pointing down)."""
    action_scale: float = 0.03
    """Metres of end-effector target motion per action unit."""
    target_low: list[float] = field(default_factory=lambda: [0.25, -0.35, 0.005])
    """Lower corner of the box the end-effector target stays in (m, base frame)."""
    target_high: list[float] = field(default_factory=lambda: [0.75, 0.35, 0.55])
    """Upper corner of that box."""
    max_lead: float = 0.05
    """The target stays within this distance (m, per axis) of the measured end effector."""
    reach_center: list[float] | None = field(default_factory=lambda: [0.0, 0.0, 0.333])
    """Centre of the reach sphere (the shoulder); None: no reach limit."""
    reach_radius: float | None = 0.76
    """Radius of the reach sphere (m)."""
    reach_offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.212])
    """The point kept in the sphere, relative to the end effector (the flange above the tcp)."""
    rest_joints: list[float] = field(default_factory=lambda: list(PANDA_REST))
    """Posture the IK's nullspace term pulls towards; also the ``home()`` pose."""
    joint_velocity_limit: list[float] = field(
        default_factory=lambda: [2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]
    )
    """Largest joint speed (rad/s) the IK may command."""
    ik_damping: float = 0.03
    """Damping of the least-squares IK step (larger: smoother near singularities, less exact)."""
    ik_null_gain: float = 0.5
    """Pull of the nullspace term towards ``rest_joints`` per step."""
    ik_iters: int = 1
    """IK iterations per command (1: a resolved-rate controller warm-started each step)."""
    gripper_max: float = 0.04
    """Finger position (m) when fully open."""
    environment_state_topic: str | None = None
    """``JointState`` topic feeding ``observation.environment_state`` (a perception node);
    None: ``/fake/environment_state`` with the fake, else ``/perception/environment_state``."""
    sync: bool | None = None
    """After each command, wait for the joint states it produced (a lockstep fake); None: with
    the fake only."""
    timeout_s: float = 10.0
    """How long to wait for the description and the first joint states."""
    home_duration_s: float = 5.0
    """Time the home trajectory takes (real arms)."""
    domain_id: int | None = None
    """ROS_DOMAIN_ID; None: ``$ROS_DOMAIN_ID``."""
    fake_seed: int = 100000
    """With the fake: episode ``i`` (each ``home()``) resets the simulated task with this + i."""

    def seeded(self, seed: int) -> Ros2ControlConfig:
        return dataclasses.replace(self, fake_seed=seed)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.command_interface not in COMMAND_INTERFACES:
            raise ValueError(
                f"robot.command_interface={self.command_interface!r}: use one of {COMMAND_INTERFACES}"
            )
        if self.gripper_command not in GRIPPER_COMMANDS:
            raise ValueError(
                f"robot.gripper_command={self.gripper_command!r}: use one of {GRIPPER_COMMANDS}"
            )
        if self.command_interface == "forward" and self.gripper_command == "trajectory":
            raise ValueError(
                "robot.gripper_command=trajectory needs command_interface=trajectory; with a "
                "forward controller use gripper_command=controller"
            )
        if (self.ee_site is None) == (self.ee_body is None) and not self.fake:
            raise ValueError(
                "robot.ee_site or robot.ee_body: name the end effector in the description "
                "(a site for MJCF, a link for URDF with robot.ee_offset)"
            )
        n = len(self.joint_names)
        for name in ("rest_joints", "joint_velocity_limit"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"robot.{name} needs {n} values, one per joint_names entry")
        if len(self.ee_rotation) != 9:
            raise ValueError("robot.ee_rotation needs 9 numbers (a row-major rotation matrix)")
