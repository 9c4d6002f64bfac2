"""Shared plumbing of the nodes: typed configs from ROS parameters and the process entry point.

Every node has a dataclass config whose fields are its ROS parameters (``-p name:=value``):
:func:`read_config` declares each field with its default and type and builds the dataclass,
so the parameters a node accepts are written down once. ``None`` is not a ROS parameter value,
so configs use ``0``/``""``/``[]`` for "use the default" and say so in the field's docstring.

:func:`run_node` is every node's ``main()``: init, build, :meth:`activate` (nodes have no
publishers, subscriptions or timers before it), spin until Ctrl-C / SIGTERM / shutdown, destroy.
When ``ROBOT_LEARNING_PARENT_PID`` is set (``robot-learning deploy`` sets it) the node also
exits when that process dies, so a killed deploy never leaves nodes running.
``ROBOT_LEARNING_ROS_EXECUTOR=events`` swaps the default ``SingleThreadedExecutor`` for rclpy's
experimental ``EventsExecutor``.
"""

from __future__ import annotations

import gc
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ros_nodes.topics import QosSpec

PARENT_ENV = "ROBOT_LEARNING_PARENT_PID"
#: ``events`` selects rclpy's experimental EventsExecutor (about 1 ms lower latency here; less proven)
EXECUTOR_ENV = "ROBOT_LEARNING_ROS_EXECUTOR"
C = TypeVar("C")


def read_config(node: Node, cls: type[C]) -> C:
    """Declare one ROS parameter per field of dataclass ``cls`` and build it from their values."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        kind = hints[f.name]
        default = (
            f.default
            if f.default is not MISSING
            else (f.default_factory() if f.default_factory is not MISSING else None)
        )
        description = ParameterDescriptor(description=f.name, dynamic_typing=kind is float)
        if kind in (list[str], tuple[str, ...]):
            node.declare_parameter(f.name, Parameter.Type.STRING_ARRAY, description)
            try:
                value = node.get_parameter(f.name).value
            except ParameterUninitializedException:
                value = default
            values[f.name] = list(value or [])
            continue
        value = node.declare_parameter(f.name, default, description).value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind):
            raise ValueError(f"parameter {f.name}:={value!r} must be a {kind.__name__}")
        values[f.name] = value
    return cls(**values)


@dataclass
class TaskParams:
    """The task parameters shared by the nodes that build a task (simulated robot, recorder)."""

    task: str = ""
    """Registered task name, e.g. ``lift``; required."""
    backend: str = "mujoco"
    """Simulator backend."""
    obs: str = "state"
    """``state`` or ``pixels``."""
    cameras: list[str] = field(default_factory=list)
    """Cameras for ``obs:=pixels`` (empty: the task's defaults)."""
    image_size: int = 96
    """Square camera resolution."""
    max_episode_steps: int = 0
    """Episode limit in steps; 0 = the task's default."""
    reward: str = "dense"
    """``dense`` or ``sparse`` reward (reported as ``max_reward`` in episode summaries)."""
    instruction: str = ""
    """Every episode's language instruction (empty: drawn per episode by the task)."""
    paraphrases: str = "train"
    """Pool the per-episode instructions are drawn from (``train``, ``heldout``, ``all``,
    ``canonical``)."""
    env_state_slots: int = 0
    """Arm tasks: environment state in this many shared xyz slots (multi-task bundles); 0: the
    task's own layout."""

    def task_config(self):
        """The :class:`~robot_learning.envs.TaskConfig` these parameters describe."""
        from robot_learning.envs import TaskConfig  # the policy node never needs the simulators

        if not self.task:
            raise ValueError("needs -p task:=<name> (a registered task, e.g. lift)")
        return TaskConfig(
            name=self.task,
            backend=self.backend,
            obs=self.obs,
            image_size=self.image_size,
            cameras=tuple(self.cameras) or None,
            max_episode_steps=self.max_episode_steps or None,
            reward=self.reward,
            instruction=self.instruction or None,
            paraphrases=self.paraphrases,
            env_state_slots=self.env_state_slots or None,
        )


def qos_profile(spec: QosSpec) -> QoSProfile:
    """The rclpy profile of a :class:`~ros_nodes.topics.QosSpec`."""
    return QoSProfile(
        history=HistoryPolicy[spec.history.upper()],
        depth=spec.depth,
        reliability=ReliabilityPolicy[spec.reliability.upper()],
        durability=DurabilityPolicy[spec.durability.upper()],
    )


def run_node(build: Callable[[], Node], args: list[str] | None = None) -> int:
    """Init rclpy, build and activate the node, spin until shutdown; returns the exit code."""
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        node = build()
        node.activate()  # type: ignore[attr-defined]
        gc.collect()
        gc.freeze()  # start-up objects (models, message types) leave the collector's scans
        executor = (
            EventsExecutor()
            if os.environ.get(EXECUTOR_ENV) == "events"
            else SingleThreadedExecutor()
        )
        executor.add_node(node)
        parent = os.environ.get(PARENT_ENV)
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.25)
            if parent and os.getppid() != int(parent):
                node.get_logger().warning(f"parent process {parent} is gone; shutting down")
                break
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except (
        ValueError,
        KeyError,
        FileNotFoundError,
        RuntimeError,
    ) as exc:  # configuration problems: one clear line
        message = f"{type(exc).__name__}: {exc}"
        (node.get_logger() if node is not None else rclpy.logging.get_logger("ros_nodes")).fatal(
            message
        )
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
