"""``teleop_node``: a teleop device (``hardware/teleop``) as a ROS 2 operator, once per observation.

Run: ``python -m ros_nodes.teleop_node --ros-args -p task:=lift -p device:=keyboard [-p name:=value ...]``
(parameters: :class:`TeleopNodeConfig`). The task gives the feature spec (observation keys, action
names and bounds, control rate); the observation topics are those of every node
(:mod:`ros_nodes.topics`). Interface:

* subscribes to the robot's observations and to the policy's commands (``/policy/command``,
  ``points[0]`` = the policy's proposed action for the observation with that stamp);
* for each new observation (all keys with one stamp) it calls ``device.read(obs, policy_action)``
  once the policy has answered that stamp, or after ``policy_wait_s`` without it (then
  ``policy_action`` is None: a silent or e-stopped policy never blocks the operator);
* publishes its answer on ``/teleop/command`` (``trajectory_msgs/JointTrajectory`` stamped with
  the observation): **one point** (the operator's action) while the operator intervenes, **no
  points** when the operator passes. Every observation gets exactly one answer, so an arbiter can
  pair it with the policy's command of the same stamp (:mod:`ros_nodes.intervention_mux`);
* publishes ``/teleop/intervention`` (``std_msgs/Bool``) every tick, reliable and
  **transient-local, depth 1**: a late subscriber gets the current state at once;
* serves ``/teleop/reset`` (``std_srvs/Trigger``): a new episode; episode ``i`` (counted from 0)
  resets the device with ``seed + i`` (the same numbering as ``sim_robot_node``); the response
  is the node's counters as JSON.

``device:=expert`` (the scripted expert as a simulated operator) needs the simulator's privileged
state, which no observation carries. Design: ``sim_robot_node publish_task_state:=true``
publishes ``env.unwrapped.task_state()`` as JSON on ``/robot/task_state`` with every observation
(same stamp), and this node hands the device a :class:`TaskStateMirror` as ``context.env``: an
object with the env's ``unwrapped.cfg``, ``task_state()`` and ``evaluate()`` answering from the
message of the observation being read. The expert never touches a simulator, so this node stays a
generic process that can run anywhere on the ROS graph; on a real robot there is no task state
and ``expert`` is refused with a :class:`~hardware.teleop.DeviceError` naming the human devices.

The device's one-shot events (``success``, ``failure``, ``rerecord``, ``stop``) are logged,
not acted upon: episode bookkeeping belongs to the orchestrator or recorder.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_learning.evaluation import EVAL_SEED_OFFSET
from robot_learning.features import ACTION
from ros_nodes.base import TaskParams, read_config, run_node
from ros_nodes.conversions import (
    ConversionError,
    chunk_to_trajectory,
    element_names,
    joint_state_to_state,
    msg_to_image,
    stamp_to_ns,
    trajectory_to_chunk,
)
from ros_nodes.topics import (
    COMMAND_TOPIC,
    IMAGE,
    INTERVENTION_QOS,
    INTERVENTION_TOPIC,
    RELIABLE_QOS,
    TASK_STATE_TOPIC,
    TELEOP_COMMAND_TOPIC,
    TELEOP_RESET_SERVICE,
    TopicMap,
    rclpy_qos,
)

#: observation stamps remembered while waiting for the rest of a set or the policy's answer
WINDOW = 16


@dataclass
class TeleopNodeConfig(TaskParams):
    """Parameters of ``teleop_node`` (``-p name:=value``): the task (features, rate) plus the device."""

    device: str = ""
    """Registered teleop device, e.g. ``keyboard``, ``gamepad``, ``expert``; required."""
    options: list[str] = field(default_factory=list)
    """Device options as ``key=value`` entries (``device.<key>=value`` on the command line)."""
    seed: int = EVAL_SEED_OFFSET
    """Episode ``i`` (counted by ``/teleop/reset`` calls) resets the device with ``seed + i``."""
    topics: list[str] = field(default_factory=list)
    """``key=topic`` overrides of the observation topics."""
    policy_topic: str = COMMAND_TOPIC
    """The policy's commands (its proposal, passed to the device); empty: no policy."""
    command_topic: str = TELEOP_COMMAND_TOPIC
    """Where the operator's answers go."""
    intervention_topic: str = INTERVENTION_TOPIC
    """Where the intervention state goes."""
    task_state_topic: str = TASK_STATE_TOPIC
    """Privileged task state (``device:=expert`` only; see the module docstring)."""
    policy_wait_s: float = 0.0
    """How long to wait for the policy's answer to an observation; 0 = one control period."""

    def __post_init__(self) -> None:
        if not self.device:
            raise ValueError(
                "teleop_node needs -p device:=<name> (keyboard, gamepad, spacemouse, browser, expert)"
            )
        if self.policy_wait_s < 0:
            raise ValueError(f"policy_wait_s:={self.policy_wait_s} must be >= 0")

    def device_options(self) -> dict[str, str]:
        """``options`` as a dict; a malformed entry is an error naming it."""
        out = {}
        for entry in self.options:
            key, sep, value = str(entry).partition("=")
            if not sep or not key.strip():
                raise ValueError(f"options entry {entry!r} must look like 'hold_steps=10'")
            out[key.strip()] = value.strip()
        return out


class TaskStateMirror:
    """Stands in for the simulated env of ``device:=expert``: the privileged state of one observation.

    Offers what the scripted experts read: ``unwrapped.cfg`` (the task), ``task_state()`` and
    ``evaluate()`` (``{"success": ...}``, success so far in the episode), answering from the
    ``/robot/task_state`` message of the observation being read (:meth:`set`).
    """

    def __init__(self, task_config) -> None:
        self.cfg = task_config
        self._state: dict[str, np.ndarray] | None = None
        self._success = False

    @property
    def unwrapped(self) -> TaskStateMirror:
        """The mirror itself (experts read ``env.unwrapped``)."""
        return self

    def set(self, payload: dict[str, Any]) -> None:
        """Load one ``/robot/task_state`` payload."""
        self._state = {k: np.asarray(v, np.float64) for k, v in payload["state"].items()}
        self._success = bool(payload.get("success", False))

    def task_state(self) -> dict[str, np.ndarray]:
        """The privileged state of the current observation."""
        if self._state is None:
            raise RuntimeError("no /robot/task_state received yet")
        return {k: v.copy() for k, v in self._state.items()}

    def evaluate(self) -> dict[str, bool]:
        """``{"success": bool}`` (the episode's success so far)."""
        return {"success": self._success}


@dataclass
class TeleopCounters:
    """What the node did since start (the ``/teleop/reset`` response)."""

    ticks: int = 0
    """Device reads (one per answered observation)."""
    intervention_ticks: int = 0
    """Answers with the operator's action."""
    interventions: int = 0
    """Times the operator took over."""
    policy_timeouts: int = 0
    """Reads without the policy's answer (it did not come within ``policy_wait_s``)."""
    held_actions: int = 0
    """Intervening ticks where the device had no action yet (the robot was told to hold still)."""


class TeleopNode(Node):
    """The operator on ROS 2 (see the module docstring); ROS entities appear in :meth:`activate`."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("teleop_node", **node_kwargs)
        from hardware.teleop import TeleopContext
        from robot_learning.envs import make_env

        self.config = cfg = read_config(self, TeleopNodeConfig)
        env = make_env(cfg.task_config())
        try:
            self.features, self.fps = env.features, int(env.fps)
        finally:
            env.close()
        self.keys = list(self.features.observation_keys)
        self.topics = TopicMap.build(self.features, self.keys, cfg.topics)
        self.action_names = element_names(ACTION, self.features[ACTION])
        self.period_s = 1.0 / self.fps
        self.policy_wait_s = cfg.policy_wait_s or self.period_s
        self.mirror = TaskStateMirror(cfg.task_config()) if cfg.device == "expert" else None
        context = TeleopContext(
            features=self.features, fps=self.fps, env=self.mirror, options=cfg.device_options()
        )
        self.device = device_class(cfg.device)(context)
        self.mapper = _mapper(self.features, self.fps)
        self.counters = TeleopCounters()
        self.episode = 0
        self.intervening = False
        self._obs: dict[int, dict[str, np.ndarray]] = {}
        self._complete_at: dict[int, float] = {}
        self._policy: dict[int, np.ndarray] = {}
        self._task_state: dict[int, dict] = {}
        self._answered = -1
        self._last_answer: JointTrajectory | None = None

    def activate(self) -> None:
        """Connect the device, subscribe, create the publishers, service and timer."""
        cfg = self.config
        self.device.connect()
        qos = rclpy_qos(RELIABLE_QOS)
        for b in self.topics.bindings.values():
            self.create_subscription(
                Image if b.kind == IMAGE else JointState,
                b.topic,
                lambda msg, b=b: self._on_observation(msg, b),
                qos,
            )
        if cfg.policy_topic:
            self.create_subscription(JointTrajectory, cfg.policy_topic, self._on_policy, qos)
        if self.mirror is not None:
            self.create_subscription(String, cfg.task_state_topic, self._on_task_state, qos)
        self.command_pub = self.create_publisher(JointTrajectory, cfg.command_topic, qos)
        self.intervention_pub = self.create_publisher(
            Bool, cfg.intervention_topic, rclpy_qos(INTERVENTION_QOS)
        )
        self.intervention_pub.publish(Bool(data=False))
        self.create_service(Trigger, TELEOP_RESET_SERVICE, self._on_reset)
        self.create_timer(min(self.policy_wait_s / 4, 0.01), self._try_read)
        self.get_logger().info(
            f"device {cfg.device} at {self.fps} Hz; observations: "
            + "; ".join(self.topics.describe())
            + f"; policy from {cfg.policy_topic or '(none)'}; answers on {cfg.command_topic}, "
            f"state on {cfg.intervention_topic}"
            + (f"; privileged state from {cfg.task_state_topic}" if self.mirror else "")
        )

    def destroy_node(self) -> None:
        """Release the device with the node."""
        self.device.disconnect()
        super().destroy_node()

    # ------------------------------------------------------------------ inputs
    def _on_observation(self, msg, binding) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp <= self._answered:
            if stamp == self._answered and binding.key == self.keys[0] and self._last_answer:
                self.command_pub.publish(self._last_answer)  # re-sent observation: answer again
            return
        try:
            value = (
                msg_to_image(msg, binding.channels)
                if binding.kind == IMAGE
                else joint_state_to_state(msg, binding.names)
            )
        except ConversionError as exc:
            self.get_logger().warning(f"ignored {binding.topic}: {exc}", throttle_duration_sec=1.0)
            return
        frame = self._obs.setdefault(stamp, {})
        frame[binding.key] = value
        if len(frame) == len(self.keys):
            self._complete_at.setdefault(stamp, time.monotonic())
        _prune(self._obs, self._complete_at)
        self._try_read()

    def _on_policy(self, msg: JointTrajectory) -> None:
        try:
            self._policy[stamp_to_ns(msg.header.stamp)] = trajectory_to_chunk(
                msg, self.action_names
            )[0]
        except ConversionError as exc:
            self.get_logger().warning(f"ignored policy command: {exc}", throttle_duration_sec=1.0)
            return
        _prune(self._policy)
        self._try_read()

    def _on_task_state(self, msg: String) -> None:
        payload = json.loads(msg.data)
        self._task_state[int(payload["stamp"])] = payload
        _prune(self._task_state)
        self._try_read()

    # ------------------------------------------------------------------ reading the device
    def _try_read(self) -> None:
        complete = [s for s in self._complete_at if s > self._answered]
        if not complete:
            return
        stamp = max(complete)
        if self.mirror is not None:
            if stamp not in self._task_state:
                return
            self.mirror.set(self._task_state[stamp])
        policy_action = self._policy.get(stamp)
        if policy_action is None and self.config.policy_topic:
            if time.monotonic() - self._complete_at[stamp] < self.policy_wait_s:
                return
            self.counters.policy_timeouts += 1
        self._read(stamp, self._obs[stamp], policy_action)

    def _read(self, stamp: int, obs: dict[str, np.ndarray], policy_action) -> None:
        self._answered = stamp
        for store in (self._obs, self._complete_at, self._policy, self._task_state):
            for s in [s for s in store if s <= stamp]:
                del store[s]
        inp = self.device.read(obs, policy_action)
        self.counters.ticks += 1
        action = inp.action
        if inp.intervene and action is None:
            self.counters.held_actions += 1
            action = self.mapper.hold(obs) if self.mapper is not None else policy_action
        intervene = bool(inp.intervene and action is not None)
        if intervene and not self.intervening:
            self.counters.interventions += 1
        self.intervening = intervene
        self.counters.intervention_ticks += int(intervene)
        events = [e for e in ("success", "failure", "rerecord", "stop") if getattr(inp, e)]
        if events:
            self.get_logger().info(f"operator events {events} (not acted upon by teleop_node)")
        # one point: the operator drives; no points: the operator passes on this observation
        rows = (
            np.asarray(action, np.float32).reshape(1, -1)
            if intervene
            else np.zeros((0, len(self.action_names)), np.float32)
        )
        answer = chunk_to_trajectory(rows, self.action_names, stamp, self.period_s)
        self.intervention_pub.publish(Bool(data=intervene))
        self.command_pub.publish(answer)
        self._last_answer = answer

    # ------------------------------------------------------------------ services
    def _on_reset(self, request, response):
        seed = self.config.seed + self.episode
        self.episode += 1
        self.device.reset(seed=seed)
        self.intervening = False
        self._answered = -1
        self._last_answer = None
        for store in (self._obs, self._complete_at, self._policy, self._task_state):
            store.clear()
        self.intervention_pub.publish(Bool(data=False))
        response.success = True
        response.message = json.dumps({"seed": seed, **vars(self.counters)})
        return response


def device_class(name: str) -> type:
    """The device class registered as ``name``; imports ``hardware.teleop.<name>`` first, so one
    device works without the modules (and libraries) of the others. Unknown: a KeyError listing
    the registered devices."""
    from hardware.teleop import DEVICES

    module = f"hardware.teleop.{name}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
    try:
        return DEVICES.get(name)  # discovers the other device modules only if ``name`` is unknown
    except ModuleNotFoundError as exc:
        raise KeyError(
            f"teleop device {name!r} is unknown: there is no {module.replace('.', '/')}.py and "
            f"discovering the other devices failed ({exc})"
        ) from None


def _mapper(features, fps: int):
    """An :class:`~hardware.teleop.mapping.ActionMapper` for holding still, or None if the mode has none."""
    from hardware.teleop.mapping import ActionMapper

    try:
        return ActionMapper(features, fps)
    except ValueError:
        return None


def _prune(*stores: dict) -> None:
    """Keep the newest :data:`WINDOW` stamps of each store."""
    for store in stores:
        for stamp in sorted(store)[:-WINDOW]:
            del store[stamp]


def main(args: list[str] | None = None) -> int:
    """Entry point: ``python -m ros_nodes.teleop_node --ros-args -p task:=lift -p device:=expert ...``."""
    return run_node(TeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
