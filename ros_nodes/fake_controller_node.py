"""``fake_controller_node``: the MuJoCo Panda behind the topics of the standard ros2_control
controllers, standing in for a real arm (``robot=ros2_control robot.fake=true``).

Run: ``python -m ros_nodes.fake_controller_node --ros-args -p task:=lift [-p name:=value ...]``
(parameters: :class:`FakeControllerConfig`). What a real ros2_control setup offers:

* ``/joint_states`` (``sensor_msgs/JointState``: ``<prefix>joint1..7`` and
  ``<prefix>finger_joint1/2``, positions and velocities), from the joint_state_broadcaster;
* ``/<arm_controller>/joint_trajectory`` (``trajectory_msgs/JointTrajectory``, joints by name,
  ``points[0]`` is the target; with the finger joints too, one controller drives both) as the
  joint_trajectory_controller takes it, and
  ``/<forward_controller>/commands`` (``std_msgs/Float64MultiArray``, the 7 joint positions) as
  a forward_command_controller takes it;
* ``/<gripper_controller>/commands`` (``Float64MultiArray``: both finger positions, m);
* ``/robot_description`` (``std_msgs/String``, transient local): the arm's MJCF, as
  robot_state_publisher publishes a URDF.

And what only a simulator can offer (the task's privileged state, for evaluation):
``/fake/environment_state`` (``JointState`` named by the task's environment-state elements, the
stand-in for a perception node), ``/fake/success`` (``JointState`` ``success`` = 1.0 or 0.0, stamped like the joint states) and ``/fake/reset``
(``std_srvs/Trigger``: the next episode; episode ``i`` (counted by calls from 0) resets with
``seed + i``; before the first call the arm waits in episode 0's start).

``lockstep:=true`` (default): one control period of physics per arm command, then the new joint
states (a deterministic stand-in that runs as fast as its client); joint states are stamped with
simulated time and republished unchanged at the control rate, so a client waits for a newer
stamp to see its command's effect. ``lockstep:=false``: physics
runs in real time at the task's rate towards the latest targets, as a real arm does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_learning.envs import make_env
from robot_learning.evaluation import EVAL_SEED_OFFSET
from ros_nodes.base import TaskParams, read_config, run_node
from ros_nodes.conversions import ns_to_stamp

#: /robot_description is latched (transient local), as robot_state_publisher does
DESCRIPTION_QOS = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
FAKE_NAMESPACE = "/fake"
#: lockstep stamps are simulated time from this epoch (1 s: never the zero stamp)
LOCKSTEP_EPOCH_NS = 1_000_000_000


@dataclass
class FakeControllerConfig(TaskParams):
    """Parameters of ``fake_controller_node`` (``-p name:=value``)."""

    seed: int = EVAL_SEED_OFFSET
    """Episode ``i`` (counted by ``/fake/reset`` calls) resets with ``seed + i``."""
    lockstep: bool = True
    """Step one control period per arm command (false: real time at the task's rate)."""
    joint_prefix: str = "panda_"
    """ROS joint names: ``<prefix>joint1..7`` and ``<prefix>finger_joint1/2``."""
    arm_controller: str = "joint_trajectory_controller"
    """Namespace of the trajectory controller (``/<name>/joint_trajectory``)."""
    forward_controller: str = "forward_position_controller"
    """Namespace of the forward position controller (``/<name>/commands``)."""
    gripper_controller: str = "gripper_controller"
    """Namespace of the gripper's forward controller (``/<name>/commands``)."""


class FakeControllerNode(Node):
    """The MuJoCo Panda as ros2_control would expose it (see the module docstring)."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("fake_controller", **node_kwargs)
        self.config = cfg = read_config(self, FakeControllerConfig)
        self.env = make_env(cfg.task_config())
        inner = self.env.unwrapped
        if not hasattr(inner, "step_joint_targets"):
            raise ValueError(
                f"task {cfg.task!r} has no joint-level control; the ros2_control fake runs the "
                "MuJoCo Panda tasks (reach, lift, peg_insert)"
            )
        self.period_s = 1.0 / float(inner.fps)
        self.arm_joints = [f"{cfg.joint_prefix}joint{i}" for i in range(1, 8)]
        self.finger_joints = [f"{cfg.joint_prefix}finger_joint{i}" for i in (1, 2)]
        env_state = inner.features.get("observation.environment_state")
        self.env_state_names = list(env_state.names) if env_state is not None else []
        #: -1 until the first /fake/reset: the arm waits in episode 0's start pose
        self.episode = -2
        self.success = False
        self.q_target = None
        self.fingers = None
        #: physics steps (and resets) so far: the stamp of the joint states in lockstep, so a
        #: client can tell a new state from a republished one
        self.sim_steps = 0

    def activate(self) -> None:
        """Publishers, subscriptions, services; the first episode starts at once."""
        cfg = self.config
        qos = QoSProfile(depth=10)
        self.joint_pub = self.create_publisher(JointState, "/joint_states", qos)
        self.env_pub = self.create_publisher(JointState, f"{FAKE_NAMESPACE}/environment_state", qos)
        self.success_pub = self.create_publisher(JointState, f"{FAKE_NAMESPACE}/success", qos)
        description = self.create_publisher(String, "/robot_description", DESCRIPTION_QOS)
        description.publish(String(data=self.env.unwrapped.arm_description()))
        self.create_subscription(
            JointTrajectory, f"/{cfg.arm_controller}/joint_trajectory", self._on_trajectory, qos
        )
        self.create_subscription(
            Float64MultiArray, f"/{cfg.forward_controller}/commands", self._on_forward, qos
        )
        self.create_subscription(
            Float64MultiArray, f"/{cfg.gripper_controller}/commands", self._on_gripper, qos
        )
        self.create_service(Trigger, f"{FAKE_NAMESPACE}/reset", self._on_reset)
        self._reset()
        self.create_timer(self.period_s, self._on_tick)
        self.get_logger().info(
            f"fake ros2_control arm on task {cfg.task} ({'lockstep' if cfg.lockstep else 'real time'})"
        )

    # ------------------------------------------------------------------ episodes
    def _reset(self) -> dict:
        self.episode += 1
        seed = self.config.seed + max(self.episode, 0)
        self.env.reset(seed=seed)
        self.sim_steps += 1  # a new state, a new stamp
        inner = self.env.unwrapped
        self.q_target = inner.data.qpos[inner._arm_qadr].copy()
        self.fingers = inner.data.ctrl[inner._finger_act].copy()
        self.success = False
        self._publish()
        return {"episode": self.episode, "seed": seed}

    def _on_reset(self, request, response):
        response.message = json.dumps(self._reset())
        response.success = True
        return response

    # ------------------------------------------------------------------ commands
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return
        index = {n: i for i, n in enumerate(msg.joint_names)}
        missing = [n for n in self.arm_joints if n not in index]
        if missing:
            self.get_logger().error(f"trajectory lacks joints {missing}; ignored")
            return
        positions = msg.points[0].positions
        if all(n in index for n in self.finger_joints):  # one controller for arm and fingers
            self.fingers = np.array([positions[index[n]] for n in self.finger_joints])
        self._command_arm(np.array([positions[index[n]] for n in self.arm_joints]))

    def _on_forward(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != len(self.arm_joints):
            self.get_logger().error(
                f"forward command has {len(msg.data)} values, expected {len(self.arm_joints)}"
            )
            return
        self._command_arm(np.asarray(msg.data, np.float64))

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        values = np.asarray(msg.data, np.float64)
        if values.size not in (1, 2) or not np.all(np.isfinite(values)):
            self.get_logger().error(f"gripper command {list(values)} must be 1 or 2 finite values")
            return
        self.fingers = np.broadcast_to(values, (2,)).copy()

    def _command_arm(self, q: np.ndarray) -> None:
        if not np.all(np.isfinite(q)):
            self.get_logger().error("non-finite joint command ignored")
            return
        self.q_target = q
        if self.config.lockstep:
            self._step()

    def _on_tick(self) -> None:
        if self.config.lockstep:
            self._publish()  # as a joint_state_broadcaster does; same state, same stamp
        else:
            self._step()

    def _step(self) -> None:
        self.sim_steps += 1
        _, _, terminated, _, info = self.env.unwrapped.step_joint_targets(
            self.q_target, self.fingers
        )
        self.success = self.success or bool(info["is_success"])
        self._publish()

    # ------------------------------------------------------------------ state
    def _publish(self) -> None:
        inner = self.env.unwrapped
        if self.config.lockstep:
            stamp = ns_to_stamp(LOCKSTEP_EPOCH_NS + int(self.sim_steps * self.period_s * 1e9))
        else:
            stamp = self.get_clock().now().to_msg()
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = self.arm_joints + self.finger_joints
        qpos = np.concatenate(
            [inner.data.qpos[inner._arm_qadr], inner.data.qpos[inner._finger_qadr]]
        )
        qvel = np.concatenate(
            [inner.data.qvel[inner._arm_dadr], inner.data.qvel[inner._finger_qadr]]
        )
        msg.position = [float(x) for x in qpos]
        msg.velocity = [float(x) for x in qvel]
        if self.env_state_names:
            env_msg = JointState()
            env_msg.header.stamp = stamp
            env_msg.name = self.env_state_names
            env_msg.position = [float(x) for x in inner._env_state_obs()]
            self.env_pub.publish(env_msg)  # before the joints: a reader waiting on joints has both
        status = JointState(name=["success"], position=[float(self.success)])
        status.header.stamp = stamp
        self.success_pub.publish(status)
        self.joint_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Entry point: ``python -m ros_nodes.fake_controller_node --ros-args -p task:=lift``."""
    return run_node(FakeControllerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
