"""``intervention_mux``: the arbiter in front of the robot, policy or operator, with a clean hand-back.

Run: ``python -m ros_nodes.intervention_mux [--ros-args -p name:=value ...]`` (parameters:
:class:`MuxConfig`). It subscribes to the policy's ``/policy/command`` and the operator's
``/teleop/command`` (:mod:`ros_nodes.teleop_node`: per observation, one point while the operator
intervenes, no points when it passes) and publishes exactly one command per observation on the
robot's command topic (default ``/robot/command``; deploy starts ``sim_robot_node`` with
``command_topic:=/robot/command``):

* the operator's command while the operator intervenes, else the policy's (its whole chunk);
* **hand-back** (the operator passes again after intervening): the mux calls the policy's
  ``/policy/reset`` (queued actions and history dropped, so the policy re-plans from the next
  observation) and forwards the policy's command only once the reset answered;
* ``sync:=true`` (default; lockstep robots): the command for a stamp is chosen once both sources
  answered that stamp, so the choice never depends on DDS delivery order; an operator command
  whose policy answer has not come within ``policy_wait_s`` goes through without it (an
  e-stopped or dead policy never locks the operator out). The policy's command of
  the hand-back stamp (the proposal the operator just accepted) is forwarded after the reset.
  ``sync:=false`` (free-running robots): commands are forwarded on arrival according to the
  operator's latest answer; after a hand-back only policy commands for newer observations,
  arriving after the reset answered, are forwarded.

The intervention state is taken from the operator's per-observation answers (``/teleop/command``),
which are stamped; ``/teleop/intervention`` (``std_msgs/Bool``, no stamp) is for observers.
For every forwarded command the mux publishes a JSON record on ``/mux/record``
(``std_msgs/String``: ``stamp``, ``source`` ``policy``/``teleop``, ``intervention_start`` (the
first command of an intervention), ``joint_names``, ``action`` (``points[0]`` forwarded) and
``policy_action`` (the policy's ``points[0]`` for that stamp, or its latest, or the action when
there is none)), before the command itself: ``recorder_node record_interventions:=true`` writes
it as ``complementary_info.*``. Services (``std_srvs/Trigger``, JSON counters as response):
``/mux/reset`` (a new episode: forget pending commands and the intervention state) and
``/mux/status``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from ros_nodes.base import read_config, run_node
from ros_nodes.conversions import stamp_to_ns
from ros_nodes.topics import (
    COMMAND_TOPIC,
    MUX_RECORD_TOPIC,
    MUX_RESET_SERVICE,
    MUX_STATUS_SERVICE,
    RELIABLE_QOS,
    RESET_SERVICE,
    ROBOT_COMMAND_TOPIC,
    TELEOP_COMMAND_TOPIC,
    rclpy_qos,
)

POLICY, TELEOP = "policy", "teleop"
#: stamps kept waiting for their second source (sync mode)
WINDOW = 32


@dataclass
class MuxConfig:
    """Parameters of ``intervention_mux`` (``-p name:=value``)."""

    policy_topic: str = COMMAND_TOPIC
    """The policy's commands."""
    teleop_topic: str = TELEOP_COMMAND_TOPIC
    """The operator's per-observation answers."""
    robot_topic: str = ROBOT_COMMAND_TOPIC
    """Where the chosen command goes (the robot's command topic)."""
    record_topic: str = MUX_RECORD_TOPIC
    """Where the per-command JSON records go."""
    sync: bool = True
    """Choose per stamp once both sources answered (lockstep robots); false: forward on arrival."""
    reset_service: str = RESET_SERVICE
    """The policy's reset service, called at every hand-back; empty: do not reset."""
    policy_wait_s: float = 0.5
    """Sync mode: how long an operator command waits for the policy's answer to its stamp."""


@dataclass
class MuxCounters:
    """What the mux did since start (the ``/mux/reset`` and ``/mux/status`` responses)."""

    policy_commands: int = 0
    """Policy commands forwarded."""
    teleop_commands: int = 0
    """Operator commands forwarded (frames driven by the operator)."""
    interventions: int = 0
    """Times the operator took over."""
    handbacks: int = 0
    """Times the operator handed back to the policy."""
    policy_resets: int = 0
    """``/policy/reset`` calls answered at hand-backs."""
    reset_failures: int = 0
    """Hand-backs whose reset was unavailable or failed (the policy was not reset)."""
    dropped: int = 0
    """Commands never forwarded (superseded stamps, or stale policy commands after a hand-back)."""
    policy_timeouts: int = 0
    """Operator commands forwarded without the policy's answer (``policy_wait_s`` passed)."""


class InterventionMux(Node):
    """The arbiter (see the module docstring); ROS entities appear in :meth:`activate`."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("intervention_mux", **node_kwargs)
        self.config = read_config(self, MuxConfig)
        self.counters = MuxCounters()
        self._clear()

    def _clear(self) -> None:
        self.intervening = False
        self._pending: dict[int, dict[str, JointTrajectory]] = {}
        self._arrived: dict[int, float] = {}
        self._last_out: tuple[int, str, JointTrajectory] | None = None
        self._latest_policy: JointTrajectory | None = None
        self._resetting = False
        self._handback_stamp = -1

    def activate(self) -> None:
        """Subscribe, create the publishers, the reset client and the services."""
        cfg = self.config
        qos = rclpy_qos(RELIABLE_QOS)
        self.create_subscription(JointTrajectory, cfg.policy_topic, self._on_policy, qos)
        self.create_subscription(JointTrajectory, cfg.teleop_topic, self._on_teleop, qos)
        self.robot_pub = self.create_publisher(JointTrajectory, cfg.robot_topic, qos)
        self.record_pub = self.create_publisher(String, cfg.record_topic, qos)
        self.reset_client = (
            self.create_client(Trigger, cfg.reset_service) if cfg.reset_service else None
        )
        self.create_service(Trigger, MUX_RESET_SERVICE, self._on_reset)
        self.create_service(Trigger, MUX_STATUS_SERVICE, self._on_status)
        if cfg.sync:
            self.create_timer(0.01, self._on_tick)
        self.get_logger().info(
            f"{cfg.policy_topic} | {cfg.teleop_topic} -> {cfg.robot_topic} "
            f"({'per stamp' if cfg.sync else 'on arrival'}); hand-back resets via "
            f"{cfg.reset_service or '(nothing)'}; records on {cfg.record_topic}"
        )

    # ------------------------------------------------------------------ inputs
    def _on_policy(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        if self._resend(stamp, POLICY):
            return
        self._latest_policy = msg
        if self.config.sync:
            self._offer(stamp, POLICY, msg)
        elif self.intervening or self._resetting or stamp <= self._handback_stamp:
            self.counters.dropped += 1
        else:
            self._forward(stamp, POLICY, msg)

    def _on_teleop(self, msg: JointTrajectory) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if self._resend(stamp, TELEOP):
            return
        if self.config.sync:
            self._offer(stamp, TELEOP, msg)
        elif msg.points:
            self._forward(stamp, TELEOP, msg)
        elif self.intervening:
            self._hand_back(stamp, None)

    def _resend(self, stamp: int, source: str) -> bool:
        """A command for the stamp already answered: re-publish the answer if it came from ``source``
        (the robot re-sent its observation because our command was lost)."""
        if self._last_out is None or stamp > self._last_out[0]:
            return False
        if stamp == self._last_out[0] and source == self._last_out[1]:
            self.robot_pub.publish(self._last_out[2])
        return True

    def _offer(self, stamp: int, source: str, msg: JointTrajectory) -> None:
        """Sync mode: decide a stamp once both sources answered it."""
        entry = self._pending.setdefault(stamp, {})
        entry[source] = msg
        self._arrived.setdefault(stamp, time.monotonic())
        for old in sorted(s for s in self._pending if s != stamp)[:-WINDOW]:
            del self._pending[old]
            self.counters.dropped += 1
        if len(entry) == 2 and not self._resetting:  # else decided when the reset answered
            self._decide(stamp)

    def _on_tick(self) -> None:
        """Sync mode: an operator command waiting too long for the policy goes through alone."""
        if self._resetting:
            return
        now = time.monotonic()
        for stamp in sorted(self._pending):
            entry = self._pending[stamp]
            waited = now - self._arrived.get(stamp, now)
            if (
                set(entry) == {TELEOP}
                and entry[TELEOP].points
                and waited > self.config.policy_wait_s
            ):
                self.counters.policy_timeouts += 1
                self.get_logger().warning(
                    f"no policy command for stamp {stamp} within {self.config.policy_wait_s} s; "
                    "forwarding the operator's alone",
                    throttle_duration_sec=2.0,
                )
                self._decide(stamp)
                return

    def _decide(self, stamp: int) -> None:
        """Sync mode: both sources answered ``stamp``; older waiting stamps are dropped."""
        entry = self._pending[stamp]
        for old in [s for s in self._pending if s < stamp]:
            del self._pending[old]
            self.counters.dropped += 1
        del self._pending[stamp]
        for old in [s for s in self._arrived if s <= stamp]:
            del self._arrived[old]
        teleop, policy = entry[TELEOP], entry.get(POLICY)
        if teleop.points:
            self._forward(stamp, TELEOP, teleop, policy)
        elif self.intervening:
            self._hand_back(stamp, policy)
        else:
            self._forward(stamp, POLICY, policy)

    # ------------------------------------------------------------------ decisions
    def _forward(
        self, stamp: int, source: str, msg: JointTrajectory, policy: JointTrajectory | None = None
    ) -> None:
        start = source == TELEOP and not self.intervening
        if source == TELEOP:
            self.intervening = True
            self.counters.interventions += int(start)
            self.counters.teleop_commands += 1
        else:
            self.counters.policy_commands += 1
        if source == POLICY:
            proposal = msg
        elif self.config.sync:  # the policy's answer to this stamp, if it came
            proposal = policy or msg
        else:
            proposal = self._latest_policy or msg
        record = {
            "stamp": stamp,
            "source": source,
            "intervention_start": start,
            "joint_names": list(msg.joint_names),
            "action": list(msg.points[0].positions),
            "policy_action": _first_action(proposal, list(msg.joint_names))
            or list(msg.points[0].positions),
        }
        self.record_pub.publish(String(data=json.dumps(record)))
        self.robot_pub.publish(msg)
        self._last_out = (stamp, source, msg)

    def _hand_back(self, stamp: int, policy: JointTrajectory | None) -> None:
        """The operator passes after intervening: reset the policy, then (sync) forward ``policy``."""
        self.intervening = False
        self.counters.handbacks += 1
        self._handback_stamp = stamp
        client = self.reset_client
        if client is None or not client.service_is_ready():
            self.counters.reset_failures += int(client is not None)
            if client is not None:
                self.get_logger().warning(
                    f"{self.config.reset_service} is not available: the policy was not reset at "
                    "hand-back (is policy_node running?)"
                )
            if policy is not None:
                self._forward(stamp, POLICY, policy)
            return
        self._resetting = True
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda f: self._reset_done(f, stamp, policy))

    def _reset_done(self, future, stamp: int, policy: JointTrajectory | None) -> None:
        self._resetting = False
        response = future.result()
        if response is not None and response.success:
            self.counters.policy_resets += 1
        else:
            self.counters.reset_failures += 1
            self.get_logger().warning(f"policy reset at hand-back failed: {response}")
        if policy is not None and (self._last_out is None or stamp > self._last_out[0]):
            self._forward(stamp, POLICY, policy)
        if self.config.sync:  # stamps both sources answered during the reset
            for s in sorted(self._pending):
                if self._resetting:
                    break  # another hand-back started
                if s in self._pending and len(self._pending[s]) == 2:
                    self._decide(s)

    # ------------------------------------------------------------------ services
    def _on_reset(self, request, response):
        self._clear()
        response.success, response.message = True, json.dumps(asdict(self.counters))
        return response

    def _on_status(self, request, response):
        response.success = True
        response.message = json.dumps({"intervening": self.intervening, **asdict(self.counters)})
        return response


def _first_action(msg: JointTrajectory, names: list[str]) -> list[float] | None:
    """``points[0]`` of ``msg`` in the order of ``names`` (None if it lacks a name or a point)."""
    if not msg.points:
        return None
    index = {n: i for i, n in enumerate(msg.joint_names)}
    if any(n not in index for n in names):
        return None
    positions = msg.points[0].positions
    return [float(positions[index[n]]) for n in names]


def main(args: list[str] | None = None) -> int:
    """Entry point: ``python -m ros_nodes.intervention_mux --ros-args -p sync:=true ...``."""
    return run_node(InterventionMux, args)


if __name__ == "__main__":
    raise SystemExit(main())
