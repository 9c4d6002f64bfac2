"""``robot=ros2_control``: an arm behind the standard ros2_control controllers, over rclpy.

Reads ``/joint_states`` (joint_state_broadcaster) and commands the joint_trajectory_controller
(``/<arm_controller>/joint_trajectory``) or a forward_command_controller
(``/<forward_controller>/commands``). End-effector delta actions become joint targets through
inverse kinematics on the robot's description (URDF or MJCF, from a file or ``/robot_description``,
loaded through MuJoCo): :mod:`.ee_control`. Observations follow the task's feature names:
``ee_x/ee_y/ee_z`` by forward kinematics, ``gripper_width`` as the sum of the finger joints,
``jointK`` the K-th arm joint; ``observation.environment_state`` comes from a ``JointState``
topic (a perception node; the fake publishes the simulator's).

``robot.fake=true`` starts :mod:`ros_nodes.fake_controller_node` (the MuJoCo Panda behind the
same topics) as a child process on the same ROS domain.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.arm_features import ee_delta_arm_features
from hardware.robot import ROBOTS, Robot, RobotError
from hardware.robots.ros2_control.config import Ros2ControlConfig
from hardware.robots.ros2_control.ee_control import EeControlSettings, EeDeltaController
from robot_learning.envs import TaskConfig
from robot_learning.features import ACTION

STATE, ENV_STATE = "observation.state", "observation.environment_state"
FAKE_TASK = "lift"


@ROBOTS.register("ros2_control")
class Ros2ControlRobot(Robot):
    """An arm behind ros2_control's standard controllers (see the module docstring)."""

    name = "ros2_control"
    config_class = Ros2ControlConfig
    extra = "ros"

    def __init__(self, cfg: Ros2ControlConfig, task: TaskConfig | None = None) -> None:
        super().__init__(cfg, task)
        if task is not None:
            from robot_learning.envs import make_env

            env = make_env(task)
            self.features, fps = env.features, float(env.fps)
            env.close()
        else:
            self.features, fps = ee_delta_arm_features(len(cfg.joint_names)), 10.0
        self.control_hz = float(cfg.control_hz or fps)
        if any(k.startswith("observation.images.") for k in self.features):
            raise RobotError("robot=ros2_control has no cameras yet: use a state task (obs=state)")
        mode = self.features[ACTION].control_mode
        if mode not in ("ee_delta_pos", "joint_pos"):
            raise RobotError(
                f"robot=ros2_control drives ee_delta_pos or joint_pos actions, not {mode!r}"
            )
        self.ee_action_scale = cfg.action_scale if mode == "ee_delta_pos" else None
        self.sync = cfg.sync if cfg.sync is not None else cfg.fake
        self.realtime = not self.sync  # a lockstep fake advances only when commanded
        self._success, self._success_stamp = False, -1
        self._lock = threading.Condition()
        self._joints: dict[str, float] | None = None
        self._joint_stamp = -1  # ns of the newest joint states
        self._env_state: np.ndarray | None = None
        self._env_stamp = -1
        self._fake: subprocess.Popen | None = None
        self._episode = -1
        self.kinematics = None
        self.controller: EeDeltaController | None = None

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Start rclpy (and the fake), wait for the description and the first joint states."""
        cfg = self.cfg
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
        except ImportError as exc:
            raise RobotError(
                f"robot=ros2_control needs rclpy: pip install 'robot-learning[ros]' ({exc})"
            ) from None
        domain = (
            cfg.domain_id
            if cfg.domain_id is not None
            else int(os.environ.get("ROS_DOMAIN_ID", "0"))
        )
        if cfg.fake:
            self._start_fake(domain)
        self._context = rclpy.Context()
        self._context.init(domain_id=domain)
        self._node = rclpy.create_node("ros2_control_robot", context=self._context)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._connected = True
        try:
            self._create_interfaces()
            self._spin = threading.Thread(target=self._spin_loop, name="ros2_control", daemon=True)
            self._spin.start()
            self._build_kinematics(self._description())
            self._wait_joints(-1, "the first joint states")
            if cfg.fake:
                self._reset_fake()
            self._sync_targets()
        except BaseException:
            self.disconnect()
            raise

    def _spin_loop(self) -> None:
        from rclpy.executors import ExternalShutdownException

        while self._connected and self._context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except ExternalShutdownException:  # Ctrl-C / SIGTERM shut every context down
                return
            except Exception:  # noqa: BLE001 - shutting down under the spinner
                # the process's shutdown (SIGTERM) invalidates the context between the loop's
                # check and the wait: that is the end of spinning, not an error
                if self._connected and self._context.ok():
                    raise
                return

    def _create_interfaces(self) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

        cfg, node, qos = self.cfg, self._node, QoSProfile(depth=10)
        node.create_subscription(JointState, cfg.joint_states_topic, self._on_joints, qos)
        if ENV_STATE in self.features:
            topic = cfg.environment_state_topic or (
                "/fake/environment_state" if cfg.fake else "/perception/environment_state"
            )
            node.create_subscription(JointState, topic, self._on_env_state, qos)
            self._env_topic = topic
        if cfg.fake:
            node.create_subscription(JointState, "/fake/success", self._on_success, qos)
        if cfg.command_interface == "trajectory":
            self._arm_pub = node.create_publisher(
                JointTrajectory, f"/{cfg.arm_controller}/joint_trajectory", qos
            )
        else:
            self._arm_pub = node.create_publisher(
                Float64MultiArray, f"/{cfg.forward_controller}/commands", qos
            )
        if cfg.gripper_command == "controller":
            self._gripper_pub = node.create_publisher(
                Float64MultiArray, f"/{cfg.gripper_controller}/commands", qos
            )
        self._description_msg: str | None = None
        if cfg.description is None:
            latched = QoSProfile(
                depth=1,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            node.create_subscription(String, cfg.description_topic, self._on_description, latched)

    def disconnect(self) -> None:
        """Stop spinning, destroy the node and the context, stop the fake (idempotent)."""
        if self._connected:
            self._connected = False
            if getattr(self, "_spin", None) is not None:
                self._spin.join(timeout=2)
            self._executor.shutdown()
            self._node.destroy_node()
            self._context.try_shutdown()
        if self._fake is not None:
            self._fake.terminate()
            try:
                self._fake.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._fake.kill()
            self._fake = None

    # ------------------------------------------------------------------ the fake
    def _start_fake(self, domain: int) -> None:
        task = self.task or TaskConfig(name=FAKE_TASK)
        log = (
            Path(os.environ.get("TMPDIR", "/tmp")) / f"fake_controller_{os.getpid()}_{id(self)}.log"
        )
        params = [
            f"task:={task.name}",
            f"backend:={task.backend}",
            f"reward:={task.reward}",
            f"seed:={self.cfg.fake_seed}",
            f"max_episode_steps:={task.max_episode_steps or 0}",
            f"lockstep:={'true' if self.sync else 'false'}",
        ]
        args = [sys.executable, "-m", "ros_nodes.fake_controller_node", "--ros-args"]
        for p in params:
            args += ["-p", p]
        env = {
            **os.environ,
            "ROS_DOMAIN_ID": str(domain),
            "ROBOT_LEARNING_PARENT_PID": str(os.getpid()),
        }
        self._fake_log = log
        self._fake = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def _reset_fake(self) -> None:
        from std_srvs.srv import Trigger

        client = self._node.create_client(Trigger, "/fake/reset")
        if not client.wait_for_service(timeout_sec=self.cfg.timeout_s):
            raise RobotError(self._fake_failure("the fake's /fake/reset service"))
        seq = self._joint_stamp
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + self.cfg.timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)
        self._node.destroy_client(client)
        if not future.done():
            raise RobotError(self._fake_failure("an answer from /fake/reset"))
        self._episode += 1
        self._wait_joints(seq, "the reset joint states")

    def _fake_failure(self, what: str) -> str:
        tail = ""
        if self._fake is not None and self._fake_log.exists():
            lines = self._fake_log.read_text().strip().splitlines()[-5:]
            tail = " fake controller log: " + " | ".join(lines)
        return f"no {what} within {self.cfg.timeout_s} s.{tail}"

    # ------------------------------------------------------------------ callbacks
    def _on_joints(self, msg) -> None:
        with self._lock:
            self._joints = dict(zip(msg.name, msg.position, strict=False))
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            self._joint_stamp = max(self._joint_stamp, stamp)
            self._lock.notify_all()

    def _on_env_state(self, msg) -> None:
        with self._lock:
            self._env_state = np.asarray(msg.position, np.float32)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            self._env_stamp = max(self._env_stamp, stamp)
            self._lock.notify_all()

    def _on_success(self, msg) -> None:
        with self._lock:
            self._success = bool(msg.position[0] > 0.5)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            self._success_stamp = max(self._success_stamp, stamp)
            self._lock.notify_all()

    @property
    def info(self) -> dict[str, Any]:
        """``is_success`` of the fake's task (with ``sync``: the one of the newest joint states);
        a real arm reports none."""
        with self._lock:
            if self.sync and self.cfg.fake:
                self._lock.wait_for(
                    lambda: self._success_stamp >= self._joint_stamp, self.cfg.timeout_s
                )
            return {"is_success": self._success}

    def _on_description(self, msg) -> None:
        with self._lock:
            self._description_msg = msg.data
            self._lock.notify_all()

    # ------------------------------------------------------------------ kinematics
    def _description(self) -> str:
        cfg = self.cfg
        if cfg.description is not None:
            path = Path(cfg.description).expanduser()
            if not path.exists():
                raise RobotError(f"robot.description={cfg.description}: no such file")
            return path.read_text()
        with self._lock:
            ok = self._lock.wait_for(lambda: self._description_msg is not None, cfg.timeout_s)
            if not ok:
                raise RobotError(
                    f"no robot description on {cfg.description_topic} within {cfg.timeout_s} s: "
                    "start robot_state_publisher, or set robot.description=<URDF or MJCF file>"
                    + (self._fake_failure("description")[2:] if cfg.fake else "")
                )
            return self._description_msg

    def _build_kinematics(self, xml: str) -> None:
        from robot_learning.kinematics import ArmKinematics, load_model

        cfg = self.cfg
        names = cfg.description_joint_names or (
            [f"joint{i}" for i in range(1, 8)] if cfg.fake else cfg.joint_names
        )
        site = cfg.ee_site or ("tcp" if cfg.fake and cfg.ee_body is None else None)
        try:
            self.kinematics = ArmKinematics(
                load_model(xml),
                names,
                site=site,
                body=cfg.ee_body,
                offset=cfg.ee_offset,
                q_rest=cfg.rest_joints,
                damping=cfg.ik_damping,
                null_gain=cfg.ik_null_gain,
                iters=cfg.ik_iters,
                dq_max=np.asarray(cfg.joint_velocity_limit) / self.control_hz,
            )
        except ValueError as exc:
            raise RobotError(
                f"robot description: {exc} (check robot.description_joint_names, "
                "robot.ee_site / robot.ee_body)"
            ) from None
        settings = EeControlSettings(
            action_scale=cfg.action_scale,
            target_low=np.asarray(cfg.target_low, np.float64),
            target_high=np.asarray(cfg.target_high, np.float64),
            max_lead=cfg.max_lead,
            rotation=np.asarray(cfg.ee_rotation, np.float64).reshape(3, 3),
            reach_center=None if cfg.reach_center is None else np.asarray(cfg.reach_center),
            reach_radius=cfg.reach_radius,
            reach_offset=np.asarray(cfg.reach_offset, np.float64),
            gripper_max=cfg.gripper_max,
        )
        self.controller = EeDeltaController(self.kinematics, settings)

    # ------------------------------------------------------------------ joints
    def _wait_joints(self, after: int, what: str) -> None:
        """Wait for joint states stamped later than ``after`` (ns)."""
        with self._lock:
            ok = self._lock.wait_for(lambda: self._joint_stamp > after, self.cfg.timeout_s)
        if not ok:
            hint = (
                self._fake_failure(what)
                if self.cfg.fake
                else f"no {what} on {self.cfg.joint_states_topic} within {self.cfg.timeout_s} s: "
                "is the controller manager running with a joint_state_broadcaster (same ROS_DOMAIN_ID)?"
            )
            raise RobotError(hint)

    def _joint_vector(self, names: list[str]) -> np.ndarray:
        with self._lock:
            joints = dict(self._joints or {})
        missing = [n for n in names if n not in joints]
        if missing:
            raise RobotError(
                f"{self.cfg.joint_states_topic} lacks joints {missing} (it has {sorted(joints)}); "
                "set robot.joint_names / robot.gripper_joint_names"
            )
        return np.array([joints[n] for n in names], np.float64)

    def _sync_targets(self) -> None:
        self.controller.sync(self._joint_vector(self.cfg.joint_names))

    # ------------------------------------------------------------------ the contract
    def home(self) -> None:
        """Fake: the next episode of the simulated task. Real arm: a trajectory to
        ``rest_joints`` over ``home_duration_s``."""
        self._require_connected()
        if self.cfg.fake:
            self._reset_fake()
        else:
            q = np.asarray(self.cfg.rest_joints, np.float64)
            fingers = (
                self._joint_vector(self.cfg.gripper_joint_names)
                if self.cfg.gripper_joint_names
                else None
            )
            self._publish(
                q, None if fingers is None else float(fingers.mean()), self.cfg.home_duration_s
            )
            time.sleep(self.cfg.home_duration_s)
        self._sync_targets()

    def get_observation(self) -> dict[str, np.ndarray]:
        """The task's observation keys from the newest joint states (and environment state)."""
        self._require_connected()
        cfg = self.cfg
        q = self._joint_vector(cfg.joint_names)
        fingers = (
            self._joint_vector(cfg.gripper_joint_names) if cfg.gripper_joint_names else np.zeros(0)
        )
        ee = self.kinematics.fk(q)[0]
        values = {
            "ee_x": ee[0],
            "ee_y": ee[1],
            "ee_z": ee[2],
            "gripper_width": float(fingers.sum()),
        }
        values.update({f"joint{i + 1}": v for i, v in enumerate(q)})
        names = self.features[STATE].names
        try:
            obs = {STATE: np.array([values[n] for n in names], np.float32)}
        except KeyError as exc:
            raise RobotError(
                f"observation.state element {exc} has no source on this robot"
            ) from None
        if ENV_STATE in self.features:
            with self._lock:
                if self.sync:  # the environment state published with these joint states
                    self._lock.wait_for(
                        lambda: self._env_stamp >= self._joint_stamp, self.cfg.timeout_s
                    )
                env_state = self._env_state
            if env_state is None or env_state.shape != self.features[ENV_STATE].shape:
                raise RobotError(
                    f"observation.environment_state: nothing of shape {self.features[ENV_STATE].shape} "
                    f"on {self._env_topic} (a perception node must publish it as a JointState)"
                )
            obs[ENV_STATE] = env_state.copy()
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Turn ``action`` into joint targets and publish them; with ``sync``, return once the
        joint states it produced arrived."""
        self._require_connected()
        act = self.features[ACTION]
        sent = np.clip(np.asarray(action, np.float32), act.low, act.high)
        seq = self._joint_stamp
        q_measured = self._joint_vector(self.cfg.joint_names)
        if act.control_mode == "ee_delta_pos":
            q, finger = self.controller.step(sent, q_measured)
        else:
            q, finger = sent.astype(np.float64), None
        self._publish(q, finger, 1.0 / self.control_hz)
        if self.sync:
            self._wait_joints(seq, "joint states after a command")
        return sent

    def _publish(self, q: np.ndarray, finger: float | None, duration_s: float) -> None:
        from builtin_interfaces.msg import Duration
        from std_msgs.msg import Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

        cfg = self.cfg
        grip = cfg.gripper_command if finger is not None and cfg.gripper_joint_names else "none"
        if grip == "controller":
            self._gripper_pub.publish(
                Float64MultiArray(data=[finger] * len(cfg.gripper_joint_names))
            )
        if cfg.command_interface == "forward":
            self._arm_pub.publish(Float64MultiArray(data=[float(x) for x in q]))
            return
        names, positions = list(cfg.joint_names), [float(x) for x in q]
        if grip == "trajectory":
            names += cfg.gripper_joint_names
            positions += [finger] * len(cfg.gripper_joint_names)
        ns = int(duration_s * 1e9)
        msg = JointTrajectory(joint_names=names)
        msg.points.append(
            JointTrajectoryPoint(
                positions=positions,
                time_from_start=Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
            )
        )
        self._arm_pub.publish(msg)

    def limits(self) -> dict[str, Any]:
        out = super().limits()
        if self.kinematics is not None:
            out["joint_names"] = list(self.cfg.joint_names)
            out["joint_low"] = self.kinematics.q_lo.tolist()
            out["joint_high"] = self.kinematics.q_hi.tolist()
        return out
