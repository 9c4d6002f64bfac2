"""``policy_node``: serve an exported bundle over ROS 2 topics.

Run: ``python -m ros_nodes.policy_node --ros-args -p bundle:=/path/to/bundle [-p name:=value ...]``
(parameters: :class:`PolicyNodeConfig`). Interface:

* subscribes to one topic per observation key of the bundle (``sensor_msgs/JointState`` for
  state vectors, read by joint name; ``sensor_msgs/Image`` for cameras), default
  ``/robot/<key without "observation.", dots as slashes>`` (see :mod:`ros_nodes.topics`);
* publishes ``/policy/command`` (``trajectory_msgs/JointTrajectory``): ``header.stamp`` = the
  stamp of the newest observation used, ``joint_names`` = the action's element names,
  ``points[0]`` = the action to execute now (base + residual for residual RL bundles),
  ``points[1:]`` = the rest of the queued chunk at ``time_from_start = k / control_rate_hz``;
  every action clipped to the bundle's bounds;
* publishes ``/policy/diagnostics`` (``diagnostic_msgs/DiagnosticArray``);
* serves ``/policy/emergency_stop`` and ``/policy/reset`` (``std_srvs/Trigger``).

With ``trigger:=observation`` (default) a control step runs as soon as every observation key has
a message newer than the previous step's, so the command follows the observation by the
inference time only; ``trigger:=timer`` runs steps on the control-rate timer with the newest
observations (for sensors that stream faster than the control rate). The watchdog runs on the
control-rate timer in both modes. Safety behaviour: :mod:`ros_nodes.control`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_learning.features import ACTION
from robot_learning.runtime import load_bundle
from ros_nodes.base import read_config, run_node
from ros_nodes.control import PolicyController
from ros_nodes.conversions import (
    ConversionError,
    chunk_to_trajectory,
    element_names,
    joint_state_to_state,
    msg_to_image,
    stamp_to_ns,
)
from ros_nodes.topics import COMMAND_TOPIC, IMAGE, TopicBinding, TopicMap

TRIGGERS = ("observation", "timer")
#: stale_after_s default, in control periods: tolerates one lost message plus jitter
STALE_PERIODS = 3.0


@dataclass
class PolicyNodeConfig:
    """Parameters of ``policy_node`` (``-p name:=value``)."""

    bundle: str = ""
    """Exported bundle folder (``robot-learning export``); required."""
    runtime: str = "auto"
    """``auto``, ``onnxruntime``, ``tensorrt`` or ``torch``."""
    threads: int = 1
    """CPU threads of the runtime (1 is usually fastest for small policies on a shared CPU)."""
    seed: int = 0
    """Seed of the sampler noise (deploy passes the evaluation seed so episodes match ``eval``)."""
    control_rate_hz: float = 0.0
    """Control rate; 0 uses the bundle's ``control_rate_hz``."""
    stale_after_s: float = 0.0
    """An observation older than this (receipt time) makes the node hold; 0 = 3 control periods."""
    trigger: str = "observation"
    """``observation``: step when every key has a new message; ``timer``: step on the control timer."""
    input_topics: list[str] = field(default_factory=list)
    """``key=topic`` overrides, e.g. ``observation.state=/arm/joint_states``."""
    joint_names: list[str] = field(default_factory=list)
    """``key=j1,j2,...`` joint names to read for a state key (default: the feature's names)."""
    command_topic: str = COMMAND_TOPIC
    """Where commands go."""
    diagnostics_hz: float = 2.0
    """Diagnostics publishing rate (also published after every service call)."""

    def __post_init__(self) -> None:
        if not self.bundle:
            raise ValueError(
                "policy_node needs -p bundle:=/path/to/bundle (an exported bundle folder)"
            )
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger:={self.trigger!r} must be one of {TRIGGERS}")
        if (
            self.threads < 1
            or self.control_rate_hz < 0
            or self.stale_after_s < 0
            or self.diagnostics_hz <= 0
        ):
            raise ValueError(
                "need threads >= 1, control_rate_hz >= 0, stale_after_s >= 0 and diagnostics_hz > 0"
            )


class PolicyNode(Node):
    """The policy server (see the module docstring). Nothing is created on the ROS graph before :meth:`activate`."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("policy_node", **node_kwargs)
        self.config = cfg = read_config(self, PolicyNodeConfig)
        self.policy = load_bundle(
            cfg.bundle, runtime=cfg.runtime, threads=cfg.threads, seed=cfg.seed
        )
        rate = cfg.control_rate_hz or self.policy.control_rate_hz
        self.period_s = 1.0 / rate
        stale = cfg.stale_after_s or STALE_PERIODS * self.period_s
        self.controller = PolicyController(self.policy, self.period_s, stale)
        self.topics = TopicMap.build(
            self.policy.features, self.policy.input_keys, cfg.input_topics, cfg.joint_names
        )
        self.action_names = element_names(ACTION, self.policy.features[ACTION])
        self._inference_ms: deque[float] = deque(maxlen=1000)
        self._last_command: JointTrajectory | None = None
        self._first_key = self.policy.input_keys[0]

    def activate(self) -> None:
        """Create subscriptions, publishers, services and timers; start serving."""
        cfg = self.config
        self._subs = []
        for binding in self.topics.bindings.values():
            kind = Image if binding.kind == IMAGE else JointState
            # sensor-data QoS (best effort) also matches reliable publishers, e.g. a plain script's
            self._subs.append(
                self.create_subscription(
                    kind,
                    binding.topic,
                    lambda msg, b=binding: self._on_observation(msg, b),
                    qos_profile_sensor_data,
                )
            )
        self.command_pub = self.create_publisher(
            JointTrajectory, cfg.command_topic, QoSProfile(depth=10)
        )
        self.diagnostics_pub = self.create_publisher(
            DiagnosticArray, "/policy/diagnostics", QoSProfile(depth=10)
        )
        self.create_service(Trigger, "/policy/emergency_stop", self._on_estop)
        self.create_service(Trigger, "/policy/reset", self._on_reset)
        self.create_timer(self.period_s, self._on_tick)
        self.create_timer(1.0 / cfg.diagnostics_hz, self._publish_diagnostics)
        self.get_logger().info(
            f"serving {self.policy.name} ({self.policy.runtime}) from {cfg.bundle} at {1 / self.period_s:g} Hz, "
            f"trigger={cfg.trigger}, stale after {self.controller.stale_after_s:.3f} s; inputs: "
            + "; ".join(self.topics.describe())
            + f"; commands on {cfg.command_topic}"
        )

    # ------------------------------------------------------------------ callbacks
    def _on_observation(self, msg, binding: TopicBinding) -> None:
        started = time.perf_counter()
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            if binding.kind == IMAGE:
                value = msg_to_image(msg, binding.channels)
            else:
                value = joint_state_to_state(msg, binding.names)
        except ConversionError as exc:
            self.controller.counters.rejected_observations += 1
            self.get_logger().warning(
                f"rejected observation on {binding.topic}: {binding.key!r}: {exc}",
                throttle_duration_sec=1.0,
            )
            return
        reason = self.controller.offer(binding.key, value, stamp, time.monotonic())
        if reason is not None:
            self.get_logger().warning(
                f"rejected observation on {binding.topic}: {reason}", throttle_duration_sec=1.0
            )
            return
        if self.config.trigger != "observation":
            return
        if self.controller.ready(time.monotonic(), need_new=True):
            self._step(started)
        elif (
            binding.key == self._first_key
            and self._last_command is not None
            and stamp == stamp_to_ns(self._last_command.header.stamp)
            and not self.controller.latched
        ):
            # the robot re-sent the observation we answered: our command was lost, send it again
            self.command_pub.publish(self._last_command)

    def _on_tick(self) -> None:
        started = time.perf_counter()
        stale = self.controller.watchdog(time.monotonic())
        if stale:
            self.get_logger().warning(
                f"holding: no fresh observation of {stale} within {self.controller.stale_after_s:.3f} s",
                throttle_duration_sec=2.0,
            )
        elif self.config.trigger == "timer" and self.controller.ready(
            time.monotonic(), need_new=False
        ):
            self._step(started)

    def _step(self, started: float) -> None:
        command = self.controller.step()
        if command is None:
            self.get_logger().error(
                "the policy produced NaN/Inf actions; holding", throttle_duration_sec=1.0
            )
            return
        msg = chunk_to_trajectory(
            command.actions, self.action_names, command.stamp_ns, self.period_s
        )
        self.command_pub.publish(msg)
        self._last_command = msg
        if self.controller.finish_step(started, time.perf_counter()):
            self.get_logger().warning("missed a control deadline", throttle_duration_sec=2.0)
        if command.inferred:
            self._inference_ms.append(command.inference_ms)

    def _on_estop(self, request, response):
        self.controller.emergency_stop()
        self.get_logger().error("EMERGENCY STOP: no commands until /policy/reset")
        self._publish_diagnostics()
        response.success, response.message = (
            True,
            "emergency stop latched; call /policy/reset to clear it",
        )
        return response

    def _on_reset(self, request, response):
        self.controller.reset()
        self._last_command = None
        self.get_logger().info("reset: latch cleared, history and queued actions dropped")
        self._publish_diagnostics()
        response.success, response.message = True, json.dumps(self.diagnostics())
        return response

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> dict[str, float | int | bool]:
        """Counters plus latency and state, as published on ``/policy/diagnostics``."""
        times = list(self._inference_ms)
        return {
            "inference_ms": round(self.controller.last_inference_ms, 3),
            "inference_ms_p99": round(float(np.percentile(times, 99)), 3) if times else 0.0,
            "queue_depth": self.controller.queue_depth,
            "estop": self.controller.latched,
            "holding": self.controller.holding,
            **self.controller.counters.to_dict(),
        }

    def _publish_diagnostics(self) -> None:
        values = self.diagnostics()
        status = DiagnosticStatus(name="policy_node", hardware_id=self.policy.name)
        if values["estop"]:
            status.level, status.message = DiagnosticStatus.ERROR, "emergency stop latched"
        elif values["holding"]:
            status.level, status.message = DiagnosticStatus.WARN, "holding: stale observations"
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        status.values = [
            KeyValue(key=k, value=str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in values.items()
        ]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Entry point: ``python -m ros_nodes.policy_node --ros-args -p bundle:=DIR ...``."""
    return run_node(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
