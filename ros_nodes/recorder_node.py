"""``recorder_node``: record observation and command topics into a LeRobotDataset v3.0, episode by episode.

Run: ``python -m ros_nodes.recorder_node --ros-args -p out:=DIR -p task:=lift [-p name:=value ...]``
(parameters: :class:`RecorderConfig`). The task gives the feature spec (its observation keys and
``action``); ``keys`` picks which observation keys to record and ``topics`` overrides their
topics (defaults as everywhere: :mod:`ros_nodes.topics`). Services (``std_srvs/Trigger``):
``/recorder/start`` begins an episode, ``/recorder/stop`` commits it atomically through
:class:`~robot_learning.datasets.LeRobotDatasetWriter` (response: JSON with the episode index and
frame count), ``/recorder/status`` reports (JSON) whether it records, the frames so far and how many
publishers each recorded topic has matched (start only once every count is >= 1, or the first
frames are lost). A crash mid-episode loses that episode only; committed ones are never touched.

A frame is written per command on the ``action`` topic (``points[0]``, the executed action),
with the observations it answered: those with the command's ``header.stamp``, whichever arrives
first (:mod:`ros_nodes.frame_pairing`). Re-sent commands (same stamp) are written once.

``record_interventions:=true`` (behind ``intervention_mux``): frames come from the mux's records
on ``interventions_topic`` (default ``/mux/record``, one JSON message per forwarded command, see
:mod:`ros_nodes.intervention_mux`) instead of the ``action`` topic, and the dataset gains the
LeRobot-style columns of :mod:`robot_learning.interventions`:
``complementary_info.is_intervention`` (1.0 on frames the operator drove),
``complementary_info.intervention_start`` (1.0 on the first frame of each intervention, also when
an episode starts mid-intervention) and ``complementary_info.policy_action`` (the policy's
proposal; ``action`` is what was executed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_learning.datasets import LeRobotDatasetWriter
from robot_learning.envs import make_env
from robot_learning.features import ACTION, FeatureSpec
from robot_learning.interventions import (
    INTERVENTION_START,
    IS_INTERVENTION,
    POLICY_ACTION,
    intervention_features,
)
from ros_nodes.base import TaskParams, read_config, run_node
from ros_nodes.conversions import (
    ConversionError,
    element_names,
    joint_state_to_state,
    msg_to_image,
    stamp_to_ns,
    trajectory_to_chunk,
)
from ros_nodes.frame_pairing import FramePairer, PairedFrame
from ros_nodes.topics import COMMAND_TOPIC, IMAGE, MUX_RECORD_TOPIC, TopicMap


@dataclass
class RecorderConfig(TaskParams):
    """Parameters of ``recorder_node`` (``-p name:=value``): the task's features plus where to write."""

    out: str = ""
    """Dataset folder (created; with ``resume:=true`` an existing dataset is appended to)."""
    keys: list[str] = field(default_factory=list)
    """Observation keys to record; empty: all of the task's."""
    topics: list[str] = field(default_factory=list)
    """``key=topic`` overrides of the observation topics."""
    action: str = COMMAND_TOPIC
    """Command topic recorded as ``action``."""
    fps: int = 0
    """Frames per second written to the dataset; 0 = the task's control rate."""
    resume: bool = False
    """Append to an existing dataset at ``out``."""
    record_interventions: bool = False
    """Record frames from ``intervention_mux``'s records, with the ``complementary_info.*``
    intervention columns (the ``action`` topic is then not used)."""
    interventions_topic: str = MUX_RECORD_TOPIC
    """The mux's per-command records (with ``record_interventions``)."""

    def __post_init__(self) -> None:
        if not self.out:
            raise ValueError("recorder_node needs -p out:=/path/to/dataset")


class RecorderNode(Node):
    """The recorder (see the module docstring); it opens the dataset and subscribes in :meth:`activate`."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("recorder_node", **node_kwargs)
        self.config = cfg = read_config(self, RecorderConfig)
        env = make_env(cfg.task_config())
        try:
            keys = cfg.keys or env.features.observation_keys
            self.features = env.features.select([*keys, ACTION])
            if cfg.record_interventions:
                self.features = FeatureSpec(
                    {**self.features, **intervention_features(self.features)}
                )
            self.fps = cfg.fps or int(env.fps)
            self.robot_type, self.task_description = env.unwrapped.robot_type, env.task_description
        finally:
            env.close()
        self.keys = list(keys)
        self.topics = TopicMap.build(self.features, self.keys, cfg.topics)
        self.action_names = element_names(ACTION, self.features[ACTION])
        self.writer: LeRobotDatasetWriter | None = None
        self.recording = False
        self.frames = 0
        self.pairer = FramePairer(self.keys)
        self._subscriptions_by_topic: dict = {}

    def activate(self) -> None:
        """Open the dataset writer, subscribe to the topics, offer the services."""
        cfg = self.config
        self.writer = LeRobotDatasetWriter.create(
            cfg.out, self.features, fps=self.fps, robot_type=self.robot_type, resume=cfg.resume
        )
        qos = QoSProfile(depth=50)  # reliable and deep: a recording should not lose frames
        self._subscriptions_by_topic = {
            b.topic: self.create_subscription(
                Image if b.kind == IMAGE else JointState,
                b.topic,
                lambda msg, b=b: self._on_observation(msg, b),
                qos,
            )
            for b in self.topics.bindings.values()
        }
        if cfg.record_interventions:
            self._subscriptions_by_topic[cfg.interventions_topic] = self.create_subscription(
                String, cfg.interventions_topic, self._on_record, qos
            )
            self._in_intervention = False
        else:
            self._subscriptions_by_topic[cfg.action] = self.create_subscription(
                JointTrajectory, cfg.action, self._on_command, qos
            )
        self.create_service(Trigger, "/recorder/start", self._on_start)
        self.create_service(Trigger, "/recorder/stop", self._on_stop)
        self.create_service(Trigger, "/recorder/status", self._on_status)
        source = cfg.interventions_topic if cfg.record_interventions else cfg.action
        self.get_logger().info(
            f"recording {self.keys} + action from {source} into {cfg.out} at {self.fps} fps: "
            + "; ".join(self.topics.describe())
        )

    def destroy_node(self) -> None:
        """Close the writer: an unsaved episode is discarded, committed ones stay."""
        if self.writer is not None:
            self.writer.close()
        super().destroy_node()

    def _on_observation(self, msg, binding) -> None:
        try:
            value = (
                msg_to_image(msg, binding.channels)
                if binding.kind == IMAGE
                else joint_state_to_state(msg, binding.names)
            )
        except ConversionError as exc:
            self.get_logger().warning(f"ignored {binding.topic}: {exc}", throttle_duration_sec=1.0)
            return
        self._write(self.pairer.observe(binding.key, stamp_to_ns(msg.header.stamp), value))

    def _on_command(self, msg: JointTrajectory) -> None:
        if not self.recording:
            return
        try:
            action = trajectory_to_chunk(msg, self.action_names)[0]
        except ConversionError as exc:
            self.get_logger().warning(f"ignored command: {exc}", throttle_duration_sec=1.0)
            return
        self._write(self.pairer.command(stamp_to_ns(msg.header.stamp), action))

    def _on_record(self, msg: String) -> None:
        """A mux record: the executed action plus the intervention columns, as one pairer action."""
        if not self.recording:
            return
        try:
            record = json.loads(msg.data)
            index = {n: i for i, n in enumerate(record["joint_names"])}
            order = [index[n] for n in self.action_names]
            action = np.asarray(record["action"], np.float32)[order]
            proposal = np.asarray(record["policy_action"], np.float32)[order]
            teleop = record["source"] == "teleop"
            start = bool(record["intervention_start"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.get_logger().warning(f"ignored mux record: {exc!r}", throttle_duration_sec=1.0)
            return
        # the first recorded frame of an intervention starts it, even if the mux's did not
        start = teleop and (start or not self._in_intervention)
        self._in_intervention = teleop
        packed = np.concatenate([action, [float(teleop), float(start)], proposal])
        self._write(self.pairer.command(int(record["stamp"]), packed.astype(np.float32)))

    def _write(self, frames: list[PairedFrame]) -> None:
        width = len(self.action_names)
        for frame in frames:
            values = {ACTION: frame.action}
            if self.config.record_interventions:  # unpack _on_record's concatenation
                packed = frame.action
                values = {
                    ACTION: packed[:width],
                    IS_INTERVENTION: packed[width : width + 1],
                    INTERVENTION_START: packed[width + 1 : width + 2],
                    POLICY_ACTION: packed[width + 2 :],
                }
            self.writer.add_frame({**frame.observation, **values}, task=self.task_description)
        self.frames += len(frames)

    def _on_start(self, request, response):
        if self.recording:
            response.success, response.message = (
                False,
                "already recording; call /recorder/stop first",
            )
            return response
        self.writer.discard_episode()
        self.recording, self.frames = True, 0
        self._in_intervention = False
        self.pairer.reset()
        publishers = self.publisher_counts()
        silent = [topic for topic, n in publishers.items() if n == 0]
        if silent:
            self.get_logger().warning(
                f"recording started but nothing publishes on {silent} yet; frames need all of them"
            )
        response.success = True
        response.message = json.dumps(
            {"episode": self.writer.num_episodes, "publishers": publishers}
        )
        return response

    def publisher_counts(self) -> dict[str, int]:
        """Matched publishers per recorded topic (observations and the command topic)."""
        return {t: sub.get_publisher_count() for t, sub in self._subscriptions_by_topic.items()}

    def _on_status(self, request, response):
        response.success = True
        response.message = json.dumps(
            {
                "recording": self.recording,
                "episodes": self.writer.num_episodes,
                "frames": self.frames,
                "waiting_commands": self.pairer.waiting,
                "publishers": self.publisher_counts(),
            }
        )
        return response

    def _on_stop(self, request, response):
        if not self.recording:
            response.success, response.message = False, "not recording; call /recorder/start first"
            return response
        self._write(self.pairer.flush())
        self.recording = False
        if self.pairer.skipped:
            self.get_logger().warning(
                f"{self.pairer.skipped} commands came before any observation of some key; not recorded"
            )
        if self.frames == 0:
            self.writer.discard_episode()
            response.success, response.message = False, "no frames were recorded; nothing saved"
            return response
        index = self.writer.save_episode()
        self.get_logger().info(f"saved episode {index} ({self.frames} frames)")
        response.success, response.message = (
            True,
            json.dumps({"episode": index, "frames": self.frames}),
        )
        return response


def main(args: list[str] | None = None) -> int:
    """Entry point: ``python -m ros_nodes.recorder_node --ros-args -p out:=DIR -p task:=lift ...``."""
    return run_node(RecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
