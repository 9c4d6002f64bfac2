"""Which ROS topic carries which feature: the bundle/task feature spec <-> topic mapping.

Each observation key maps to a topic and a message kind: state vectors travel as
``sensor_msgs/JointState`` (elements selected by name), camera frames as ``sensor_msgs/Image``.
The default topic of ``observation.<rest>`` is ``/robot/<rest with dots as slashes>``, e.g.
``observation.state`` -> ``/robot/state``, ``observation.images.front`` -> ``/robot/images/front``.

Node parameters override it with ``key=topic`` entries (``input_topics``) and rename the joints
read for a key with ``key=name1,name2,...`` entries (``joint_names``; default: the feature's
element names), so a robot whose joints are called differently needs no code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from robot_learning.features import OBS_PREFIX, FeatureSpec
from ros_nodes.conversions import element_names

JOINT_STATE = "joint_state"
IMAGE = "image"
COMMAND_TOPIC = "/policy/command"
ROBOT_NAMESPACE = "/robot"
#: the ``sensor_msgs/JointState`` field the nodes read and write (``velocity``/``effort`` are ignored)
JOINT_STATE_FIELD = "position"
DIAGNOSTICS_TOPIC = "/policy/diagnostics"
#: ``DiagnosticStatus.name`` of every ``/policy/diagnostics`` message (``hardware_id`` = the policy name)
DIAGNOSTICS_NAME = "policy_node"
#: ``DiagnosticStatus`` level -> message, first matching condition wins: e-stop, holding, else running
DIAGNOSTICS_LEVELS = {
    "ERROR": "emergency stop latched",
    "WARN": "holding: stale observations",
    "OK": "running",
}
#: ``KeyValue`` entries of a status besides the counters of :class:`ros_nodes.control.Counters`
DIAGNOSTICS_VALUES = (
    "inference_ms", "inference_ms_p99", "queue_depth", "estop", "holding", "control_rate_hz",
    "trigger", "superseded_observations", "instruction", "inference", "inference_delay_steps",
)  # fmt: skip
#: language bundles: the instruction to follow (std_msgs/String)
INSTRUCTION_TOPIC = "/policy/instruction"
ESTOP_SERVICE = "/policy/emergency_stop"
RESET_SERVICE = "/policy/reset"


@dataclass(frozen=True)
class QosSpec:
    """A QoS profile as plain data (the nodes build their rclpy profiles from it; no rclpy here)."""

    reliability: str
    """``reliable`` or ``best_effort``."""
    durability: str
    """``volatile`` (late joiners get nothing old) or ``transient_local``."""
    depth: int
    """History depth (``keep_last``)."""
    history: str = "keep_last"

    def to_dict(self) -> dict[str, str | int]:
        """For ``robot-learning bundle info`` and logs."""
        return {
            "reliability": self.reliability,
            "durability": self.durability,
            "history": self.history,
            "depth": self.depth,
        }


#: observation subscriptions: rclpy's ``qos_profile_sensor_data``; a best-effort subscription
#: also receives from reliable publishers (a plain script's default)
OBSERVATION_QOS = QosSpec("best_effort", "volatile", 5)
#: ``/policy/command`` and ``/policy/diagnostics`` publishers (rclpy's default profile, depth 10)
COMMAND_QOS = QosSpec("reliable", "volatile", 10)


class TopicMapError(ValueError):
    """The topic mapping does not fit the feature spec; the message names the keys."""


def default_topic(key: str) -> str:
    """``observation.images.front`` -> ``/robot/images/front``."""
    rest = key[len(OBS_PREFIX) :] if key.startswith(OBS_PREFIX) else key
    return f"{ROBOT_NAMESPACE}/{rest.replace('.', '/')}"


@dataclass(frozen=True)
class TopicBinding:
    """One observation key carried on one topic."""

    key: str
    """Feature key, e.g. ``observation.state``."""
    topic: str
    """ROS topic name, e.g. ``/robot/state``."""
    kind: str
    """``joint_state`` or ``image``."""
    names: tuple[str, ...] = ()
    """For ``joint_state``: the joint names read (in feature element order)."""
    channels: int = 3
    """For ``image``: channels of the feature's frames."""


@dataclass(frozen=True)
class TopicMap:
    """Observation key -> :class:`TopicBinding` for every key a node reads or writes."""

    bindings: dict[str, TopicBinding]
    """Bindings in the order of the keys they were built for."""

    @classmethod
    def build(
        cls,
        features: FeatureSpec,
        keys: Sequence[str],
        input_topics: Sequence[str] = (),
        joint_names: Sequence[str] = (),
    ) -> TopicMap:
        """Defaults for ``keys`` overridden by ``key=topic`` and ``key=j1,j2,...`` entries."""
        missing = [k for k in keys if k not in features]
        if missing:
            raise TopicMapError(f"keys {missing} have no feature; features: {sorted(features)}")
        topics = _parse_entries(input_topics, "input_topics", keys)
        joints = {
            k: tuple(n.strip() for n in v.split(",") if n.strip())
            for k, v in _parse_entries(joint_names, "joint_names", keys).items()
        }
        bindings = {}
        for key in keys:
            feature = features[key]
            topic = topics.get(key, default_topic(key))
            if not topic.startswith("/"):
                topic = "/" + topic
            if feature.is_image:
                if key in joints:
                    raise TopicMapError(f"joint_names given for {key!r}, which is an image")
                bindings[key] = TopicBinding(key, topic, IMAGE, channels=int(feature.shape[2]))
                continue
            names = joints.get(key, element_names(key, feature))
            size = len(element_names(key, feature))
            if len(names) != size:
                raise TopicMapError(
                    f"joint_names for {key!r} lists {len(names)} names {list(names)}; "
                    f"the feature has {size} elements {list(element_names(key, feature))}"
                )
            bindings[key] = TopicBinding(key, topic, JOINT_STATE, names=names)
        used = [b.topic for b in bindings.values()]
        clash = sorted({t for t in used if used.count(t) > 1})
        if clash:
            raise TopicMapError(
                f"topics {clash} would carry more than one observation key; map each key to its own topic"
            )
        return cls(bindings)

    def require(self, keys: Sequence[str]) -> None:
        """Raise naming every key of ``keys`` that has no binding."""
        missing = [k for k in keys if k not in self.bindings]
        if missing:
            raise TopicMapError(
                f"no topic for observation keys {missing}; mapped: {sorted(self.bindings)}"
            )

    def describe(self) -> list[str]:
        """One ``key -> topic (kind)`` line per binding (for logs and docs)."""
        return [
            f"{b.key} -> {b.topic} ({b.kind}{': ' + ','.join(b.names) if b.names else ''})"
            for b in self.bindings.values()
        ]


def _parse_entries(entries: Sequence[str], parameter: str, keys: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict; unknown keys and malformed entries are errors naming them."""
    out = {}
    for entry in entries:
        key, sep, value = str(entry).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise TopicMapError(
                f"{parameter} entry {entry!r} must look like 'observation.state=/robot/state'"
            )
        if key not in keys:
            raise TopicMapError(
                f"{parameter} names {key!r}, which is not one of the observation keys {list(keys)}"
            )
        out[key] = value
    return out


# ---------------------------------------------------------------------- teleop and interventions
#: where ``intervention_mux`` sends the arbitrated command (``sim_robot_node command_topic:=``)
ROBOT_COMMAND_TOPIC = "/robot/command"
#: ``teleop_node``'s answer to each observation: one point = the operator drives, no points = passes
TELEOP_COMMAND_TOPIC = "/teleop/command"
#: ``std_msgs/Bool``: is the operator intervening (published every tick, transient-local depth 1)
INTERVENTION_TOPIC = "/teleop/intervention"
#: ``std_msgs/String`` JSON of the simulator's privileged ``task_state()`` per observation stamp
TASK_STATE_TOPIC = "/robot/task_state"
#: ``std_msgs/String`` JSON per command the mux forwarded: what the recorder writes per frame
MUX_RECORD_TOPIC = "/mux/record"
TELEOP_RESET_SERVICE = "/teleop/reset"
MUX_RESET_SERVICE = "/mux/reset"
MUX_STATUS_SERVICE = "/mux/status"
#: ``/teleop/intervention``: a late subscriber gets the current state at once
INTERVENTION_QOS = QosSpec("reliable", "transient_local", 1)
INSTRUCTION_QOS = QosSpec("reliable", "transient_local", 1)
#: teleop commands, task states, mux output and records: reliable, so lockstep never loses a tick
RELIABLE_QOS = QosSpec("reliable", "volatile", 50)


def rclpy_qos(spec: QosSpec):
    """The rclpy ``QoSProfile`` of a :class:`QosSpec` (imports rclpy lazily)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy[spec.history.upper()],
        depth=spec.depth,
        reliability=ReliabilityPolicy[spec.reliability.upper()],
        durability=DurabilityPolicy[spec.durability.upper()],
    )
