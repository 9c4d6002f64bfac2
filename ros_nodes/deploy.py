"""``robot-learning deploy``: a bundle and a robot as separate ROS 2 processes, N episodes over DDS.

:func:`run_deploy` first refuses (:func:`check_rates`) a bundle whose control rate differs from
the task's ``env.fps`` or from a ``control_rate_hz`` override, naming both rates, then starts
``sim_robot_node`` and ``policy_node`` as child processes
(:mod:`ros_nodes.processes`) on a fresh random ``ROS_DOMAIN_ID`` (unless the config or the
environment sets one) with localhost-only discovery, then an in-process orchestrator node runs
each episode through the nodes' own interfaces: ``/policy/reset``, ``/robot/reset``, then waits
for the episode summary on ``/robot/episode``. A node that dies is reported by name with the
tail of its log. The nodes are always stopped (SIGINT, then SIGKILL after a grace period), also
on Ctrl-C.

An episode that does not end within ``episode_timeout_s`` (a lockstep robot waiting for a
command the policy node withholds, e.g. on an out-of-range observation) is counted as a failure
(``stalled_episodes``) and the deployment goes on with the next one.

``deploy.json`` stable keys: ``episodes``, ``success_rate``, ``success_ci95``,
``latency_ms_p50`` / ``latency_ms_p99`` (observation stamp -> command received by the robot,
over every step), ``control_rate_hz`` (achieved: steps / episode time), ``missed_deadlines``
(the policy node's count), ``interventions`` / ``intervention_frames`` (operator take-overs and
operator-driven steps, 0 without ``teleop``); the rest (per-episode results, the policy node's
counters, config) is informational.

``teleop=<device>`` also starts ``teleop_node`` (the device, :mod:`ros_nodes.teleop_node`) and
``intervention_mux`` (:mod:`ros_nodes.intervention_mux`) between the policy and the robot:
``policy_node`` still publishes ``/policy/command``, the mux forwards the policy's or the
operator's command to ``/robot/command``, which ``sim_robot_node`` follows; at every hand-back
the mux resets the policy. ``teleop=expert`` (the scripted expert as a simulated operator) makes
``sim_robot_node`` publish its privileged task state for the teleop node.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_learning.envs import TaskConfig
from robot_learning.evaluation import (
    EVAL_SEED_OFFSET,
    check_control_rate,
    task_rate_hz,
)
from robot_learning.runtime.bundle import read_bundle
from ros_nodes.deploy_report import deploy_report, intervention_report, stalled_episode
from ros_nodes.processes import NodeProcess, ros_environment, stop_all
from ros_nodes.topics import (
    MUX_RESET_SERVICE,
    RESET_SERVICE,
    ROBOT_COMMAND_TOPIC,
    TELEOP_RESET_SERVICE,
)

log = logging.getLogger(__name__)
NODES = ("policy_node", "sim_robot_node", "teleop_node", "intervention_mux")
#: service -> the node that offers it
SERVICE_OWNERS = {
    RESET_SERVICE: "policy_node",
    "/robot/reset": "sim_robot_node",
    TELEOP_RESET_SERVICE: "teleop_node",
    MUX_RESET_SERVICE: "intervention_mux",
}


class DeployError(RuntimeError):
    """A node died, did not come up or did not answer in time; the message names it."""


@dataclass
class DeployConfig:
    """Settings of one deployment (``configs/deploy.yaml``)."""

    bundle: str
    """Exported bundle folder."""
    task: TaskConfig
    """The task the simulated robot runs."""
    out: str
    """Folder for deploy.json and the nodes' logs."""
    episodes: int = 10
    """Episodes to run."""
    robot: str = "sim"
    """``sim`` (the task as a robot, ``sim_robot_node``) or a registered robot driven through the
    robot contract inside that node (``robot-learning robot list``)."""
    robot_settings: dict[str, Any] = field(default_factory=dict)
    """The ``robot.*`` settings of a robot other than ``sim`` (its safety layer included)."""
    runtime: str = "auto"
    """Runtime of the policy node."""
    inference: str = "sync"
    """``sync``: the policy node computes a chunk inside the control step that needs it;
    ``async``: in a background thread ahead of time (overlap crossfaded, delay skipped)."""
    threads: int = 1
    """CPU threads of the runtime."""
    seed: int = EVAL_SEED_OFFSET
    """Episode ``i`` resets with ``seed + i``; also the policy's sampler seed (as ``eval``)."""
    control_rate_hz: float | None = None
    """Control rate of policy and robot; None: the bundle's. Another rate than the bundle's and
    the task's is refused (see :func:`check_rates`)."""
    lockstep: bool = True
    """The robot waits for the command answering each observation (reproduces ``eval``)."""
    realtime: bool = True
    """With lockstep: pace at the control rate; false runs as fast as the loop allows."""
    stale_after_s: float | None = None
    """Policy watchdog; None: the node's default (3 control periods)."""
    domain_id: int | None = None
    """ROS_DOMAIN_ID; None: $ROS_DOMAIN_ID if set, else a random one (isolation from other runs)."""
    startup_timeout_s: float = 60.0
    """How long the nodes may take to come up."""
    episode_timeout_s: float = 300.0
    """How long one episode may take."""
    grace_s: float = 5.0
    """Time between SIGINT and SIGKILL at shutdown."""
    allow_rate_mismatch: bool = False
    """Benchmarks only: run at ``control_rate_hz`` even if it differs from the bundle's or the
    task's rate (the episodes then say nothing about the policy)."""
    teleop: str | None = None
    """A teleop device (``expert``, ``keyboard``, ...): also start ``teleop_node`` and
    ``intervention_mux`` so the operator can take over from the policy; None: the policy alone."""
    teleop_options: dict[str, Any] = field(default_factory=dict)
    """Options of the teleop device (``device.<key>=value``), e.g. ``{"hold_steps": 10}``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More parameters per node: ``{"policy_node": {...}, "sim_robot_node": {...}, ...}``."""

    def __post_init__(self) -> None:
        from hardware.robot import ROBOTS

        if self.robot not in ROBOTS:
            raise ValueError(f"robot={self.robot!r} is not available; robots: {ROBOTS.names()}")
        if self.episodes < 1:
            raise ValueError(f"episodes={self.episodes} must be >= 1")
        if self.control_rate_hz is not None and self.control_rate_hz <= 0:
            raise ValueError(f"control_rate_hz={self.control_rate_hz} must be positive")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise ValueError(f"domain_id={self.domain_id} must be in 0..232")
        if self.threads < 1:
            raise ValueError(f"threads={self.threads} must be >= 1")
        if self.inference not in ("sync", "async"):
            raise ValueError(f"inference={self.inference!r} must be sync or async")
        positive = ("startup_timeout_s", "episode_timeout_s", "stale_after_s")
        values = {k: getattr(self, k) for k in positive}
        bad = [f"{k}={v}" for k, v in values.items() if v is not None and v <= 0]
        if bad or self.grace_s < 0:
            raise ValueError(
                f"{', '.join(bad) or f'grace_s={self.grace_s}'}: timeouts must be > 0 and grace_s >= 0"
            )
        unknown = sorted(set(self.extra) - set(NODES))
        if unknown:
            raise ValueError(f"extra has unknown nodes {unknown}; nodes: {list(NODES)}")
        if self.teleop is not None:
            from ros_nodes.teleop_node import device_class

            try:
                device_class(self.teleop)
            except KeyError as exc:
                raise ValueError(f"teleop={self.teleop!r}: {exc.args[0]}") from None
        elif self.teleop_options:
            raise ValueError("teleop_options given without teleop=<device>; set teleop too")


def pick_domain_id(configured: int | None) -> int:
    """The configured domain, else $ROS_DOMAIN_ID, else a random one away from the default 0."""
    if configured is not None:
        return configured
    if os.environ.get("ROS_DOMAIN_ID", "").strip():
        return int(os.environ["ROS_DOMAIN_ID"])
    return random.SystemRandom().randint(10, 200)


def robot_parameter(cfg: DeployConfig) -> dict[str, str]:
    """``sim_robot_node``'s ``robot`` parameter: none for ``sim``, else the robot's settings as
    JSON (a simulated fake seeds its episodes like evaluation: ``seed + i``)."""
    if cfg.robot == "sim":
        return {}
    from hardware.build import robot_config

    robot = robot_config({**cfg.robot_settings, "type": cfg.robot}).seeded(cfg.seed)
    return {"robot": json.dumps(asdict(robot))}


def node_processes(
    cfg: DeployConfig, rate_hz: float, log_dir: Path, env: dict[str, str]
) -> list[NodeProcess]:
    """The robot and policy node processes of a deployment (not started)."""
    task = cfg.task
    sim = {
        "task": task.name,
        "backend": task.backend,
        "obs": task.obs,
        "cameras": list(task.cameras or []),
        "image_size": task.image_size,
        "max_episode_steps": task.max_episode_steps or 0,
        "reward": task.reward,
        "instruction": task.instruction or "",
        "paraphrases": task.paraphrases,
        "env_state_slots": task.env_state_slots or 0,
        "seed": cfg.seed,
        "rate_hz": float(rate_hz),
        "lockstep": cfg.lockstep,
        "realtime": cfg.realtime,
        "allow_rate_mismatch": cfg.allow_rate_mismatch,
        **robot_parameter(cfg),
        **cfg.extra.get("sim_robot_node", {}),
    }
    policy = {
        "bundle": str(Path(cfg.bundle).resolve()),
        "runtime": cfg.runtime,
        "inference": cfg.inference,
        "threads": cfg.threads,
        "seed": cfg.seed,
        "control_rate_hz": float(rate_hz),
        "stale_after_s": cfg.stale_after_s,
        # a lockstep robot faster than real time: step on every observation, not at the wall-clock rate
        "trigger": "lockstep" if cfg.lockstep and not cfg.realtime else "observation",
        "allow_rate_mismatch": cfg.allow_rate_mismatch,
        "instruction": task.instruction or "",
        **cfg.extra.get("policy_node", {}),
    }
    if cfg.teleop is not None:  # the mux sits between the policy and the robot
        sim["command_topic"] = cfg.extra.get("sim_robot_node", {}).get(
            "command_topic", ROBOT_COMMAND_TOPIC
        )
        sim["publish_task_state"] = cfg.teleop == "expert"
    processes = [
        NodeProcess("sim_robot_node", "ros_nodes.sim_robot_node", sim, log_dir, env),
        NodeProcess("policy_node", "ros_nodes.policy_node", policy, log_dir, env),
    ]
    if cfg.teleop is None:
        return processes
    teleop = {
        **{k: sim[k] for k in ("task", "backend", "obs", "cameras", "image_size", "instruction")},
        **{k: sim[k] for k in ("paraphrases", "env_state_slots")},
        **{k: sim[k] for k in ("max_episode_steps", "reward", "seed")},
        "device": cfg.teleop,
        "options": [f"{k}={v}" for k, v in cfg.teleop_options.items()],
        # lockstep: the robot waits for the policy anyway; read the device with its proposal
        "policy_wait_s": 2.0 if cfg.lockstep else 0.0,
        **cfg.extra.get("teleop_node", {}),
    }
    mux = {
        "robot_topic": sim["command_topic"],
        "sync": cfg.lockstep,
        **cfg.extra.get("intervention_mux", {}),
    }
    return processes + [
        NodeProcess("teleop_node", "ros_nodes.teleop_node", teleop, log_dir, env),
        NodeProcess("intervention_mux", "ros_nodes.intervention_mux", mux, log_dir, env),
    ]


class Orchestrator:
    """An in-process node that drives episodes through the nodes' services and topics."""

    def __init__(self, domain_id: int, processes: list[NodeProcess]) -> None:
        self.processes = processes
        running = {p.name for p in processes}
        self.services = [s for s, owner in SERVICE_OWNERS.items() if owner in running]
        self.context = rclpy.Context()
        # no rclpy signal handlers here: Ctrl-C must raise KeyboardInterrupt so deploy cleans up
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node("deploy_orchestrator", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.summaries: dict[int, dict] = {}
        self.node.create_subscription(String, "/robot/episode", self._on_summary, 10)
        self.clients = {
            name: self.node.create_client(Trigger, name)
            for name in (*self.services, "/policy/emergency_stop")
        }

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def _on_summary(self, msg: String) -> None:
        summary = json.loads(msg.data)
        self.summaries[int(summary["episode"])] = summary

    def _check_alive(self) -> None:
        for p in self.processes:
            if not p.alive:
                raise DeployError(p.describe_exit())

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until every node serves its reset service."""
        deadline = time.monotonic() + timeout_s
        for name in self.services:
            while not self.clients[name].wait_for_service(timeout_sec=0.2):
                self._check_alive()
                if time.monotonic() > deadline:
                    owner = SERVICE_OWNERS[name]
                    raise DeployError(
                        f"{owner} did not offer {name} within {timeout_s:.0f} s; its log: "
                        f"{next(p for p in self.processes if p.name == owner).tail()}"
                    )

    def call(self, name: str, timeout_s: float = 30.0) -> str:
        """Call a Trigger service; returns its response message."""
        future = self.clients[name].call_async(Trigger.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done():
            self.executor.spin_once(timeout_sec=0.05)
            self._check_alive()
            if time.monotonic() > deadline:
                raise DeployError(f"{name} did not answer within {timeout_s:.0f} s")
        response = future.result()
        if not response.success:
            raise DeployError(f"{name} failed: {response.message}")
        return response.message

    def wait_episode(self, index: int, timeout_s: float) -> dict:
        """The summary of episode ``index`` from ``/robot/episode``."""
        deadline = time.monotonic() + timeout_s
        while index not in self.summaries:
            self.executor.spin_once(timeout_sec=0.05)
            self._check_alive()
            if time.monotonic() > deadline:
                raise EpisodeStalled(
                    f"episode {index} did not end within {timeout_s:.0f} s (raise episode_timeout_s?); "
                    + " | ".join(f"{p.name}: {p.tail(3)}" for p in self.processes)
                )
        return self.summaries[index]


class EpisodeStalled(DeployError):
    """An episode did not end within ``episode_timeout_s`` (e.g. the policy node kept rejecting
    an out-of-range observation of a lockstep robot, which then waits for a command forever)."""


def run_deploy(cfg: DeployConfig, progress=None) -> dict[str, Any]:
    """Run ``cfg.episodes`` episodes through real ROS 2 nodes; returns the deploy.json payload.

    ``progress(done, total, success_rate)`` hears about every finished episode.
    """
    spec = read_bundle(cfg.bundle)
    rate = check_rates(cfg, float(spec["control_rate_hz"]), task_control_rate(cfg.task))
    domain = pick_domain_id(cfg.domain_id)
    out = Path(cfg.out)
    processes = node_processes(cfg, rate, out / "logs", ros_environment(domain))
    previous_range = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    started = time.monotonic()
    episodes, counters, mux = [], [], []
    orchestrator = None
    try:
        for p in processes:
            p.start()
        orchestrator = Orchestrator(domain, processes)
        orchestrator.wait_ready(cfg.startup_timeout_s)
        for i in range(cfg.episodes):
            if cfg.teleop is not None:  # before the policy: a hand-back must not follow
                mux.append(json.loads(orchestrator.call(MUX_RESET_SERVICE)))
                orchestrator.call(TELEOP_RESET_SERVICE)
            counters.append(json.loads(orchestrator.call("/policy/reset")))
            orchestrator.call("/robot/reset")
            try:
                episodes.append(orchestrator.wait_episode(i, cfg.episode_timeout_s))
            except EpisodeStalled as exc:  # a failure of this episode, not of the deployment
                log.warning("%s; counted as a failure, going on with the next episode", exc)
                episodes.append(stalled_episode(i, cfg.seed + i, cfg.episode_timeout_s))
            if progress is not None:
                progress(i + 1, cfg.episodes, float(np.mean([e["success"] for e in episodes])))
        counters.append(json.loads(orchestrator.call("/policy/reset")))
        if cfg.teleop is not None:
            mux.append(json.loads(orchestrator.call(MUX_RESET_SERVICE)))
    finally:
        if orchestrator is not None:
            orchestrator.close()
        stop_all(processes, cfg.grace_s)
        if previous_range is None:
            os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    report = deploy_report(cfg, episodes, counters, rate, domain, time.monotonic() - started, spec)
    return {**report, **intervention_report(mux, len(episodes))}


def task_control_rate(task: TaskConfig) -> float | None:
    """The task's control rate (``env.fps``; builds the env once and closes it)."""
    from robot_learning.envs import make_env

    env = make_env(task)
    try:
        return task_rate_hz(env)
    finally:
        env.close()


def check_rates(cfg: DeployConfig, bundle_hz: float, task_hz: float | None) -> float:
    """The deployment's control rate; refuses (naming both rates) a bundle, an override or a task
    that disagree, unless ``cfg.allow_rate_mismatch``."""
    rate = cfg.control_rate_hz or bundle_hz
    if cfg.allow_rate_mismatch:
        return rate
    policy = f"bundle {cfg.bundle} (policy.json control_rate_hz)"
    check_control_rate(bundle_hz, task_hz, policy, f"task {cfg.task.name!r} ({cfg.task.backend})")
    check_control_rate(
        bundle_hz, rate, policy, f"this deployment (control_rate_hz={rate:g}; leave it unset)"
    )
    return rate
