"""``sim_robot_node``: any task of the suite behaving as a robot on ROS 2 topics.

Run: ``python -m ros_nodes.sim_robot_node --ros-args -p task:=lift [-p name:=value ...]``
(parameters: :class:`SimRobotConfig`). Interface:

* publishes every observation key on its topic (default ``/robot/state``,
  ``/robot/environment_state``, ``/robot/images/<camera>``; see :mod:`ros_nodes.topics`) as
  ``sensor_msgs/JointState`` (element names as joint names) or ``sensor_msgs/Image`` (``rgb8``),
  all with the same ``header.stamp``;
* subscribes to ``/policy/command`` (``trajectory_msgs/JointTrajectory``, joints by name);
* publishes ``/robot/success`` (``std_msgs/Bool``) after every step and, when an episode ends,
  a JSON summary on ``/robot/episode`` (``std_msgs/String``: episode, seed, success, length,
  max_reward, duration_s and the observation->command latencies measured from the stamps of
  the commands that answered its observations);
* serves ``/robot/reset`` (``std_srvs/Trigger``: starts the next episode; episode ``i`` resets
  with ``seed + i``, as ``robot-learning eval`` does; the response message is JSON with the
  episode and seed) and ``/robot/is_success`` (``std_srvs/Trigger``: success so far).

``lockstep:=true`` (default): after publishing an observation the simulation waits for the
command stamped with it and applies ``points[0]``, so it never advances without the policy and
a ROS episode reproduces an in-process evaluation; it re-sends the observation if no answer came
within ``republish_s``. ``realtime:=true`` paces the steps at ``rate_hz``; ``false`` steps as soon
as the command arrives. ``lockstep:=false`` behaves like a real robot: it steps at ``rate_hz``
whether or not a command came, following the newest trajectory point by point (the episode
starts moving with the first command). An episode starts publishing once something subscribes
to its observations and something publishes commands.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_learning.envs import episode_instruction, make_env
from robot_learning.evaluation import EVAL_SEED_OFFSET
from robot_learning.features import ACTION
from ros_nodes.base import TaskParams, qos_profile, read_config, run_node
from ros_nodes.conversions import (
    ConversionError,
    element_names,
    image_to_msg,
    stamp_to_ns,
    state_to_joint_state,
    trajectory_to_chunk,
)
from ros_nodes.topics import (
    COMMAND_TOPIC,
    DIAGNOSTICS_TOPIC,
    IMAGE,
    INSTRUCTION_QOS,
    INSTRUCTION_TOPIC,
    TASK_STATE_TOPIC,
    TopicMap,
)

IDLE, STARTING, WAITING, READY, RUNNING = "idle", "starting", "waiting", "ready", "running"


@dataclass
class SimRobotConfig(TaskParams):
    """Parameters of ``sim_robot_node`` (``-p name:=value``): the task plus how it runs."""

    seed: int = EVAL_SEED_OFFSET
    """Episode ``i`` (counted from 0 by ``/robot/reset`` calls) resets with ``seed + i``."""
    rate_hz: float = 0.0
    """Step rate; 0 = the task's control rate (``env.fps``); another value must equal it."""
    allow_rate_mismatch: bool = False
    """Step at a ``rate_hz`` other than the task's (benchmarks only: simulated time then runs
    faster or slower than real time)."""
    lockstep: bool = True
    """Wait for the command answering each observation before stepping (see the module docstring)."""
    realtime: bool = True
    """With lockstep: pace steps at ``rate_hz``; false steps as soon as the command arrives."""
    republish_s: float = 0.5
    """With lockstep: re-send the observation if no command answered it within this time."""
    topics: list[str] = field(default_factory=list)
    """``key=topic`` overrides of the observation topics."""
    command_topic: str = COMMAND_TOPIC
    """Where commands come from."""
    publish_task_state: bool = False
    """Also publish the simulator's privileged ``task_state()`` (JSON) with every observation on
    ``task_state_topic``, for ``teleop_node device:=expert`` (the simulated operator)."""
    task_state_topic: str = TASK_STATE_TOPIC
    """Where the privileged task state goes (with ``publish_task_state``)."""
    publish_instruction: bool = False
    """Language bundles with per-episode instructions: publish each episode's instruction on
    ``/policy/instruction`` at reset and start the episode only once the policy node reports
    (``/policy/diagnostics``) that it follows it, so no step runs on the previous one."""
    robot: str = ""
    """A robot instead of the simulated task: its settings as JSON (``{"type": "ros2_control",
    "fake": true, ...}``, as ``robot.*`` on the command line), driven through the robot contract
    and its safety layer (:class:`hardware.robot_env.RobotEnv`); the task gives the features and
    the episode limit. Empty: the task itself."""

    def __post_init__(self) -> None:
        if self.rate_hz < 0 or self.republish_s <= 0:
            raise ValueError(
                f"need rate_hz >= 0 and republish_s > 0; got {self.rate_hz}, {self.republish_s}"
            )


@dataclass
class Episode:
    """Bookkeeping of the episode in progress."""

    index: int
    seed: int
    success: bool
    length: int = 0
    max_reward: float = -float("inf")
    latencies_ms: list[float] = field(default_factory=list)
    published: dict[int, float] = field(default_factory=dict)
    """Observation stamp (ns) -> monotonic time it was taken, for latency measurement."""
    started_s: float | None = None
    instruction: str = ""

    def summary(self, ended_s: float) -> dict:
        """The ``/robot/episode`` JSON payload."""
        duration = ended_s - self.started_s if self.started_s is not None else 0.0
        return {
            "episode": self.index,
            "seed": self.seed,
            "success": self.success,
            "length": self.length,
            "max_reward": self.max_reward,
            "duration_s": round(duration, 4),
            "latencies_ms": [round(v, 4) for v in self.latencies_ms],
            "instruction": self.instruction,
        }


class SimRobotNode(Node):
    """A simulated task as a robot (see the module docstring); ROS entities appear in :meth:`activate`."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("sim_robot_node", **node_kwargs)
        self.config = cfg = read_config(self, SimRobotConfig)
        self.env = make_env(cfg.task_config()) if not cfg.robot else robot_env(cfg)
        self.features = self.env.features
        self.topics = TopicMap.build(self.features, self.features.observation_keys, cfg.topics)
        self.action_names = element_names(ACTION, self.features[ACTION])
        self.period_s = 1.0 / step_rate(cfg, float(self.env.fps))
        self.state = IDLE
        self.episode: Episode | None = None
        self.next_index = 0
        self._obs_msgs: list = []
        self._stamp = 0
        self._published_at = 0.0
        self._action: np.ndarray | None = None
        self._trajectory: np.ndarray | None = None
        self._point = 0
        self._policy_instruction: str | None = None  # what /policy/diagnostics last reported

    def activate(self) -> None:
        """Create publishers, the command subscription, services and the step timer."""
        cfg = self.config
        qos = QoSProfile(depth=10)
        self._pubs = {
            b.key: self.create_publisher(Image if b.kind == IMAGE else JointState, b.topic, qos)
            for b in self.topics.bindings.values()
        }
        self.success_pub = self.create_publisher(Bool, "/robot/success", qos)
        self.episode_pub = self.create_publisher(String, "/robot/episode", qos)
        self.command_sub = self.create_subscription(
            JointTrajectory, cfg.command_topic, self._on_command, qos
        )
        self.task_state_pub = (
            self.create_publisher(String, cfg.task_state_topic, QoSProfile(depth=50))
            if cfg.publish_task_state
            else None
        )
        if cfg.publish_instruction:
            self.instruction_pub = self.create_publisher(
                String, INSTRUCTION_TOPIC, qos_profile(INSTRUCTION_QOS)
            )
            self.create_subscription(
                DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_policy_diagnostics, qos
            )
        self.create_service(Trigger, "/robot/reset", self._on_reset)
        self.create_service(Trigger, "/robot/is_success", self._on_is_success)
        fast = cfg.lockstep and not cfg.realtime
        self.create_timer(min(self.period_s, 0.01) if fast else self.period_s, self._on_tick)
        self.get_logger().info(
            f"task {cfg.task} ({cfg.backend}, obs={cfg.obs}) as a robot at {1 / self.period_s:g} Hz, "
            f"lockstep={cfg.lockstep}, realtime={cfg.realtime}; publishes "
            + "; ".join(self.topics.describe())
            + f"; commands from {cfg.command_topic}"
        )

    def destroy_node(self) -> None:
        """Close the simulator with the node."""
        self.env.close()
        super().destroy_node()

    # ------------------------------------------------------------------ services
    def _on_reset(self, request, response):
        index = self.next_index
        self.next_index += 1
        seed = self.config.seed + index
        obs, info = self.env.reset(seed=seed)
        self.episode = Episode(
            index=index,
            seed=seed,
            success=bool(info.get("is_success", False)),
            instruction=episode_instruction(self.env),
        )
        self._obs, self._action, self._trajectory, self._point = obs, None, None, 0
        self.state = STARTING
        if self.config.publish_instruction:
            self.instruction_pub.publish(String(data=self.episode.instruction))
        self.success_pub.publish(Bool(data=self.episode.success))
        self._try_start()
        response.success, response.message = True, json.dumps({"episode": index, "seed": seed})
        return response

    def _on_is_success(self, request, response):
        response.success = bool(self.episode is not None and self.episode.success)
        response.message = json.dumps(
            {"episode": None if self.episode is None else self.episode.index}
        )
        return response

    # ------------------------------------------------------------------ commands and stepping
    def _on_command(self, msg: JointTrajectory) -> None:
        episode, stamp = self.episode, stamp_to_ns(msg.header.stamp)
        if episode is None or stamp not in episode.published:
            return  # not an answer to an observation of this episode
        try:
            chunk = trajectory_to_chunk(msg, self.action_names)
        except ConversionError as exc:
            self.get_logger().warning(f"ignored command: {exc}", throttle_duration_sec=1.0)
            return
        taken = episode.published.pop(stamp)
        episode.latencies_ms.append((time.monotonic() - taken) * 1e3)
        if not self.config.lockstep:
            self._trajectory, self._point = chunk, 0
        elif self.state == WAITING and stamp == self._stamp:
            self._action = chunk[0]
            if self.config.realtime:
                self.state = READY  # the next tick steps: a fixed-rate clock, like a robot's
            else:
                self._advance(self._action)

    def _on_tick(self) -> None:
        if self.state == STARTING:
            self._try_start()
        elif self.state == READY:
            self._advance(self._action)
        elif (
            self.state == WAITING
            and time.monotonic() - self._published_at > self.config.republish_s
        ):
            self._publish_obs(fresh=False)
        elif self.state == RUNNING:
            if self._trajectory is None:
                self._publish_obs()  # not moving until the first command; keep the policy informed
            else:
                action = self._trajectory[min(self._point, len(self._trajectory) - 1)]
                self._point += 1
                self._advance(action)

    def _on_policy_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            for item in status.values:
                if item.key == "instruction":
                    self._policy_instruction = item.value

    def _try_start(self) -> None:
        listening = all(p.get_subscription_count() > 0 for p in self._pubs.values())
        if self.config.publish_instruction and self._policy_instruction != self.episode.instruction:
            self.get_logger().info(
                f"episode {self.episode.index}: waiting for the policy to follow "
                f"{self.episode.instruction!r}",
                throttle_duration_sec=2.0,
            )
            return
        if listening and self.command_sub.get_publisher_count() > 0:
            self.episode.started_s = time.monotonic()
            self._publish_obs()
            self.state = WAITING if self.config.lockstep else RUNNING

    def _advance(self, action: np.ndarray) -> None:
        obs, reward, terminated, truncated, info = self.env.step(action)
        episode = self.episode
        episode.length += 1
        episode.max_reward = max(episode.max_reward, float(reward))
        episode.success = episode.success or bool(info.get("is_success", False))
        self.success_pub.publish(Bool(data=episode.success))
        if terminated or truncated:
            self.state = IDLE
            self.episode_pub.publish(String(data=json.dumps(episode.summary(time.monotonic()))))
            self.get_logger().info(
                f"episode {episode.index} (seed {episode.seed}) ended after {episode.length} "
                f"steps, success={episode.success}"
            )
            return
        self._obs = obs
        self._publish_obs()
        self.state = WAITING if self.config.lockstep else RUNNING

    def _publish_obs(self, fresh: bool = True) -> None:
        """Publish the current observation; ``fresh=False`` re-sends the last messages unchanged."""
        if fresh:
            now = self.get_clock().now().nanoseconds
            self._stamp = max(
                now, self._stamp + 1
            )  # strictly increasing: the policy steps on new stamps only
            self.episode.published[self._stamp] = time.monotonic()
            self._obs_msgs = []
            for key, binding in self.topics.bindings.items():
                value = self._obs[key]
                if binding.kind == IMAGE:
                    msg = image_to_msg(value, self._stamp, frame_id=key)
                else:
                    msg = state_to_joint_state(value, binding.names, self._stamp)
                self._obs_msgs.append((self._pubs[key], msg))
        if self.task_state_pub is not None:  # before the observations: the expert needs both
            self.task_state_pub.publish(String(data=self._task_state_json()))
        for pub, msg in self._obs_msgs:
            pub.publish(msg)
        self._published_at = time.monotonic()

    def _task_state_json(self) -> str:
        """``{"stamp": ns, "success": bool, "state": {key: list}}`` of the current observation."""
        state = self.env.unwrapped.task_state()
        return json.dumps(
            {
                "stamp": self._stamp,
                "success": bool(self.episode.success),
                "state": {k: np.asarray(v, float).tolist() for k, v in state.items()},
            }
        )


def robot_env(cfg: SimRobotConfig):
    """The :class:`~hardware.robot_env.RobotEnv` of ``cfg.robot`` (connected)."""
    from hardware.robot_env import RobotEnv

    try:
        settings = json.loads(cfg.robot)
    except json.JSONDecodeError as exc:
        raise ValueError(f"parameter robot:={cfg.robot!r} is not JSON: {exc}") from None
    return RobotEnv.for_task(settings, cfg.task_config())


def step_rate(cfg: SimRobotConfig, task_hz: float) -> float:
    """The robot's step rate: the task's, or ``cfg.rate_hz`` if it agrees (or is allowed to differ)."""
    if not cfg.rate_hz:
        return task_hz
    if not cfg.allow_rate_mismatch and not math.isclose(cfg.rate_hz, task_hz, rel_tol=1e-6):
        raise ValueError(
            f"rate_hz:={cfg.rate_hz:g} differs from task {cfg.task!r}'s control rate {task_hz:g} Hz "
            "(env.fps; one step simulates 1/env.fps seconds): leave rate_hz at 0, or run a policy "
            "exported for this task's rate"
        )
    return float(cfg.rate_hz)


def main(args: list[str] | None = None) -> int:
    """Entry point: ``python -m ros_nodes.sim_robot_node --ros-args -p task:=lift ...``."""
    return run_node(SimRobotNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
