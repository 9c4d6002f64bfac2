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
* serves ``/policy/emergency_stop`` and ``/policy/reset`` (``std_srvs/Trigger``);
* language bundles (``vla``): follows ``-p instruction:=...`` and every ``std_msgs/String`` on
  ``/policy/instruction`` (a new one drops the queued chunk: the next step replans for it); the
  node holds while it has none; an instruction the bundle cannot read is refused and counted.

Steps never run faster than the control rate (the bundle's ``control_rate_hz``):

* ``trigger:=observation`` (default): a step runs as soon as every observation key has a message
  newer than the previous step's *and* the step is due (:class:`StepSchedule`: one step per
  control period, up to a quarter period early to absorb jitter). Observations that arrive
  faster than the control rate are not stepped on one by one: the step waits until it is due
  and then uses the newest ones (``superseded_observations`` counts the messages that arrived
  while a complete set waited for its step). At or below the control rate the command follows each
  observation by the inference time only.
* ``trigger:=timer``: steps on the control-rate timer with the newest observations.
* ``trigger:=lockstep``: a step per new observation set whatever its rate; only for a simulated
  robot that waits for each command and runs faster than real time (``robot-learning deploy
  realtime=false`` sets it).

``control_rate_hz`` must equal the bundle's rate (the node refuses to start otherwise, naming
both) unless ``allow_rate_mismatch:=true`` (benchmarks only). The watchdog runs on the
control-rate timer in every mode. Safety behaviour: :mod:`ros_nodes.control`.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_learning.features import ACTION
from robot_learning.runtime import load_bundle
from ros_nodes.base import qos_profile, read_config, run_node
from ros_nodes.control import INFERENCE_MODES, PolicyController
from ros_nodes.conversions import (
    ConversionError,
    chunk_to_trajectory,
    element_names,
    joint_state_to_state,
    msg_to_image,
    stamp_to_ns,
)
from ros_nodes.topics import (
    COMMAND_QOS,
    COMMAND_TOPIC,
    DIAGNOSTICS_LEVELS,
    DIAGNOSTICS_NAME,
    DIAGNOSTICS_TOPIC,
    ESTOP_SERVICE,
    IMAGE,
    INSTRUCTION_QOS,
    INSTRUCTION_TOPIC,
    OBSERVATION_QOS,
    RESET_SERVICE,
    TopicBinding,
    TopicMap,
)

TRIGGERS = ("observation", "timer", "lockstep")
#: stale_after_s default, in control periods: tolerates one lost message plus jitter
STALE_PERIODS = 3.0
#: an observation-triggered step may run this many periods before it is due (absorbs jitter)
EARLY_PERIODS = 0.25
#: a robot whose observations come at most this fraction faster than the control rate is
#: followed onto its own phase (StepSchedule.stepped)
RATE_TOLERANCE = 0.05


@dataclass
class StepSchedule:
    """When the next observation-triggered step is due: at most one step per control period.

    A step may run up to ``early_s`` before it is due (jitter of a robot publishing at the
    control rate). A step within ``early_s`` of its due time moves the due time on by exactly
    one period (no drift); a later one (after a hold, observations slower than the control
    rate, or a step that itself ran late) re-anchors it one period after the observation that
    triggered the step arrived, so a late step never causes a burst, and never holds the
    following observations back either: anchored on the late step itself, the due time would
    sit behind the robot's clock and every later step of the episode would wait for it.
    """

    period_s: float
    early_s: float
    due_s: float | None = None
    last_arrival_s: float | None = None

    def allows(self, now_s: float) -> bool:
        """May a step run at ``now_s``?"""
        return self.due_s is None or now_s >= self.due_s - self.early_s

    def stepped(self, now_s: float, arrived_s: float | None = None, rephase: bool = False) -> None:
        """Record a step that ran at ``now_s`` on observations that arrived at ``arrived_s``
        (None: at ``now_s``). ``rephase``: the step had to wait although no newer observations
        came meanwhile, i.e. the robot publishes at the control rate on another phase than the
        schedule (its first observation arrived off its own grid); when this observation came
        a period (within ``RATE_TOLERANCE``) after the previous step's, the next step is due one
        period after it, so the waits stop instead of recurring every step. A robot publishing
        faster keeps the schedule's own grid (one step per period)."""
        previous, self.last_arrival_s = self.last_arrival_s, arrived_s
        at_rate = (
            arrived_s is not None
            and previous is not None
            and arrived_s - previous >= (1.0 - RATE_TOLERANCE) * self.period_s
        )
        if rephase and at_rate:
            self.due_s = arrived_s + self.period_s
        elif self.due_s is None or now_s > self.due_s + self.early_s:
            anchor = now_s if arrived_s is None else min(arrived_s, now_s)
            self.due_s = max(anchor, self.due_s or anchor) + self.period_s
        else:
            self.due_s += self.period_s

    def reset(self) -> None:
        """Forget the schedule (the next step may run at once)."""
        self.due_s = self.last_arrival_s = None


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
    """Control rate; 0 uses the bundle's ``control_rate_hz``; another value must equal it."""
    allow_rate_mismatch: bool = False
    """Run at a ``control_rate_hz`` other than the bundle's (benchmarks only: the actions are then
    applied for the wrong duration)."""
    stale_after_s: float = 0.0
    """An observation older than this (receipt time) makes the node hold; 0 = 3 control periods."""
    trigger: str = "observation"
    """``observation``: step on new messages, at most at the control rate; ``timer``: step on the
    control timer; ``lockstep``: step on every new message (simulated robots faster than real time)."""
    input_topics: list[str] = field(default_factory=list)
    """``key=topic`` overrides, e.g. ``observation.state=/arm/joint_states``."""
    joint_names: list[str] = field(default_factory=list)
    """``key=j1,j2,...`` joint names to read for a state key (default: the feature's names)."""
    command_topic: str = COMMAND_TOPIC
    """Where commands go."""
    diagnostics_hz: float = 2.0
    """Diagnostics publishing rate (also published after every service call)."""
    safety: str = ""
    """The robot safety layer's limits as JSON (``{"max_delta": 0.2, ...}``, the fields of
    :class:`hardware.safety.SafetyConfig`) applied to every executed action; empty: bounds only."""
    ee_action_scale: float = 0.0
    """Metres of end-effector motion per action unit (``ee_delta_*`` bundles), for a workspace box."""
    instruction: str = ""
    """Language bundles: the instruction to follow (``/policy/instruction``, std_msgs/String,
    replaces it at run time); the node holds until it has one."""
    instruction_topic: str = INSTRUCTION_TOPIC
    """Where new instructions arrive (reliable, transient local: the last one sent is kept)."""
    inference: str = "sync"
    """``sync``: a step that needs a new chunk runs the network; ``async``: the next chunk is
    computed in a background thread before the current one runs out (its delay skipped, the
    overlap crossfaded), so every step only pops an action (see ros_nodes/async_chunks.py)."""

    def __post_init__(self) -> None:
        if not self.bundle:
            raise ValueError(
                "policy_node needs -p bundle:=/path/to/bundle (an exported bundle folder)"
            )
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger:={self.trigger!r} must be one of {TRIGGERS}")
        if self.inference not in INFERENCE_MODES:
            raise ValueError(f"inference:={self.inference!r} must be one of {INFERENCE_MODES}")
        if (
            self.threads < 1
            or self.control_rate_hz < 0
            or self.stale_after_s < 0
            or self.diagnostics_hz <= 0
        ):
            raise ValueError(
                "need threads >= 1, control_rate_hz >= 0, stale_after_s >= 0 and diagnostics_hz > 0"
            )


def safety_filter(cfg: PolicyNodeConfig, features, rate_hz: float):
    """The :class:`~hardware.safety.SafetyFilter` of ``cfg.safety`` (None when it is empty)."""
    if not cfg.safety:
        return None
    from hardware.safety import SafetyConfig, SafetyFilter
    from robot_learning.config import build

    try:
        data = json.loads(cfg.safety)
    except json.JSONDecodeError as exc:
        raise ValueError(f"parameter safety:={cfg.safety!r} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"parameter safety:={cfg.safety!r} must be a JSON object")
    limits = build(SafetyConfig, data, where="policy_node", prefix="safety.")
    return SafetyFilter(features, limits, rate_hz, ee_action_scale=cfg.ee_action_scale or None)


class PolicyNode(Node):
    """The policy server (see the module docstring). Nothing is created on the ROS graph before :meth:`activate`."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("policy_node", **node_kwargs)
        self.config = cfg = read_config(self, PolicyNodeConfig)
        self.policy = load_bundle(
            cfg.bundle, runtime=cfg.runtime, threads=cfg.threads, seed=cfg.seed
        )
        rate = control_rate(cfg, self.policy.control_rate_hz)
        self.period_s = 1.0 / rate
        self.schedule = StepSchedule(self.period_s, EARLY_PERIODS * self.period_s)
        self._pending = False  # a complete observation set waits for its step to be due
        self._pending_arrival = 0.0  # when that set arrived
        self._pending_alone = False  # no newer set arrived while it waited
        self.superseded_observations = 0
        stale = cfg.stale_after_s or STALE_PERIODS * self.period_s
        self.controller = PolicyController(
            self.policy,
            self.period_s,
            stale,
            safety_filter(cfg, self.policy.features, rate),
            inference=cfg.inference,
        )
        self.topics = TopicMap.build(
            self.policy.features, self.policy.input_keys, cfg.input_topics, cfg.joint_names
        )
        self.action_names = element_names(ACTION, self.policy.features[ACTION])
        self._inference_ms: deque[float] = deque(maxlen=1000)
        self._last_command: JointTrajectory | None = None
        self._first_key = self.policy.input_keys[0]
        if cfg.instruction:
            reason = self.controller.set_instruction(cfg.instruction)
            if reason is not None:
                raise ValueError(f"parameter instruction:={cfg.instruction!r}: {reason}")

    def activate(self) -> None:
        """Create subscriptions, publishers, services and timers; start serving."""
        cfg = self.config
        self._subs = []
        for binding in self.topics.bindings.values():
            kind = Image if binding.kind == IMAGE else JointState
            self._subs.append(
                self.create_subscription(
                    kind,
                    binding.topic,
                    lambda msg, b=binding: self._on_observation(msg, b),
                    qos_profile(OBSERVATION_QOS),
                )
            )
        self.command_pub = self.create_publisher(
            JointTrajectory, cfg.command_topic, qos_profile(COMMAND_QOS)
        )
        if self.controller.uses_language:
            self._subs.append(
                self.create_subscription(
                    String,
                    cfg.instruction_topic,
                    self._on_instruction,
                    qos_profile(INSTRUCTION_QOS),
                )
            )
        self.diagnostics_pub = self.create_publisher(
            DiagnosticArray, DIAGNOSTICS_TOPIC, qos_profile(COMMAND_QOS)
        )
        self.create_service(Trigger, ESTOP_SERVICE, self._on_estop)
        self.create_service(Trigger, RESET_SERVICE, self._on_reset)
        self.create_timer(self.period_s, self._on_tick)
        # runs a deferred observation-triggered step once it is due; idle (cancelled) otherwise
        self._wake = self.create_timer(self.schedule.early_s, self._on_wake)
        self._wake.cancel()
        self.create_timer(1.0 / cfg.diagnostics_hz, self._publish_diagnostics)
        self.get_logger().info(
            f"serving {self.policy.name} ({self.policy.runtime}) from {cfg.bundle} at {1 / self.period_s:g} Hz, "
            f"trigger={cfg.trigger}, stale after {self.controller.stale_after_s:.3f} s; inputs: "
            + "; ".join(self.topics.describe())
            + f"; commands on {cfg.command_topic}"
        )

    # ------------------------------------------------------------------ callbacks
    def _on_observation(self, msg, binding: TopicBinding) -> None:
        started, arrived = time.perf_counter(), time.monotonic()
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
        if self.config.trigger == "timer":
            return
        if self.controller.ready(time.monotonic(), need_new=True):
            self._step_when_due(started, arrived)
        elif (
            binding.key == self._first_key
            and self._last_command is not None
            and stamp == stamp_to_ns(self._last_command.header.stamp)
            and not self.controller.latched
        ):
            # the robot re-sent the observation we answered: our command was lost, send it again
            self.command_pub.publish(self._last_command)

    def _on_instruction(self, msg: String) -> None:
        reason = self.controller.set_instruction(msg.data)
        if reason is not None:
            self.get_logger().error(f"rejected instruction {msg.data!r}: {reason}")
        else:
            self.get_logger().info(f"instruction: {self.controller.instruction!r}")
            self._publish_diagnostics()  # tells a waiting robot (sim_robot_node) at once

    def _step_when_due(self, started: float, arrived: float) -> None:
        """Step now if the schedule allows (always with ``trigger:=lockstep``), else defer."""
        now = time.monotonic()
        if self.config.trigger == "lockstep" or self.schedule.allows(now):
            self._step(started, arrived)
            return
        if self._pending:
            self.superseded_observations += 1  # a newer message replaces one of the waiting set
        self._pending_alone = not self._pending  # no newer set came while it waited (yet)
        self._pending, self._pending_arrival = True, arrived
        if self._wake.is_canceled():
            self._wake.reset()

    def _on_wake(self) -> None:
        started = time.perf_counter()
        now = time.monotonic()
        if not self._pending:
            self._wake.cancel()
        elif self.schedule.allows(now):
            self._wake.cancel()
            self._pending = False
            if self.controller.ready(now, need_new=True):
                # one set per period that still had to wait: the robot runs at the control rate
                # on another phase, so the schedule moves onto the robot's phase
                self._step(started, self._pending_arrival, rephase=self._pending_alone)

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

    def _step(self, started: float, arrived: float | None = None, rephase: bool = False) -> None:
        self._pending = False
        self.schedule.stepped(time.monotonic(), arrived, rephase)
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

    def destroy_node(self) -> None:
        """Stop the inference thread with the node."""
        self.controller.close()
        super().destroy_node()

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
        self.schedule.reset()
        self._pending = False
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
            "control_rate_hz": round(1.0 / self.period_s, 6),
            "trigger": self.config.trigger,
            "superseded_observations": self.superseded_observations,
            "instruction": self.controller.instruction or "",
            "inference": self.config.inference,
            "inference_delay_steps": (
                self.controller.chunks.last_delay if self.controller.chunks is not None else 0
            ),
            **self.controller.counters.to_dict(),
        }

    def _publish_diagnostics(self) -> None:
        values = self.diagnostics()
        status = DiagnosticStatus(name=DIAGNOSTICS_NAME, hardware_id=self.policy.name)
        level = "ERROR" if values["estop"] else "WARN" if values["holding"] else "OK"
        status.level = getattr(DiagnosticStatus, level)
        status.message = DIAGNOSTICS_LEVELS[level]
        status.values = [
            KeyValue(key=k, value=str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in values.items()
        ]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)


def control_rate(cfg: PolicyNodeConfig, bundle_hz: float) -> float:
    """The rate the node runs at: the bundle's, or ``cfg.control_rate_hz`` if it agrees (or is allowed to differ)."""
    if not cfg.control_rate_hz:
        return float(bundle_hz)
    if not cfg.allow_rate_mismatch and not math.isclose(
        cfg.control_rate_hz, bundle_hz, rel_tol=1e-6
    ):
        raise ValueError(
            f"control_rate_hz:={cfg.control_rate_hz:g} differs from the bundle's control rate "
            f"{bundle_hz:g} Hz ({cfg.bundle}/policy.json): the policy's actions would be applied "
            f"for {bundle_hz / cfg.control_rate_hz:.3g}x their intended duration. Leave control_rate_hz "
            "at 0 (the bundle's rate), or re-export the policy from data recorded at the robot's rate"
        )
    return float(cfg.control_rate_hz)


def main(args: list[str] | None = None) -> int:
    """Entry point: ``python -m ros_nodes.policy_node --ros-args -p bundle:=DIR ...``."""
    return run_node(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
