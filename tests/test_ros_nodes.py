"""ROS 2 nodes over real rclpy/DDS: conversions, closed loop == in-process eval, safety, recorder, plain script.

Nodes run as separate processes (``python -m ros_nodes.<node>``); this process talks to them
through a plain rclpy node (:class:`Probe`). Each group of processes gets its own
ROS_DOMAIN_ID (random per module run) so tests never hear each other or other runs.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

import toy_policy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_probe import ProbeNode  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from robot_learning.cli import main  # noqa: E402
from robot_learning.datasets import LeRobotDataset, validate_dataset  # noqa: E402
from robot_learning.envs import TaskConfig  # noqa: E402
from robot_learning.evaluation import EvalConfig, evaluate, wilson_interval  # noqa: E402
from robot_learning.policy import Policy  # noqa: E402
from robot_learning.runtime import load_bundle  # noqa: E402
from ros_nodes.conversions import (  # noqa: E402
    ConversionError,
    chunk_to_trajectory,
    image_to_msg,
    joint_state_to_state,
    msg_to_image,
    state_to_joint_state,
    trajectory_to_chunk,
)
from ros_nodes.policy_node import qos_profile  # noqa: E402
from ros_nodes.processes import NodeProcess, ros_environment, stop_all  # noqa: E402
from ros_nodes.topics import (  # noqa: E402
    INSTRUCTION_QOS,
    TopicMap,
    TopicMapError,
    default_topic,
)
from sim.arm_common import observation_bounds as arm_bounds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = random.SystemRandom().randint(
    100, 220
)  # +0 safety node, +1 deploy, +2 clamp node, +3 recorder, +4 rate node (mod 233)
STATE = ["ee_x", "ee_y", "ee_z", "gripper_width"] + [f"joint{i}" for i in range(1, 8)]
TARGET = ["target_x", "target_y", "target_z"]


def domain(offset: int) -> int:
    return (DOMAIN + offset) % 233


@pytest.fixture(scope="module", autouse=True)
def _toy_mlp_one_thread():
    with toy_policy.registered_one_thread():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The toy reach policy of tests/test_evaluation.py (solves most reach episodes)."""
    return toy_policy.train_reach(tmp_path_factory.mktemp("ros"))


@pytest.fixture(scope="module")
def bundle(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "reach"
    assert main(["export", f"checkpoint={trained}", f"out={out}", "include_torch=false"]) == 0
    return out


@pytest.fixture(scope="module")
def tight_bundle(trained, tmp_path_factory) -> Path:
    """The same policy exported with action bounds of +-0.05: its raw actions exceed them."""
    root = tmp_path_factory.mktemp("tight")
    checkpoint = root / "checkpoint"
    shutil.copytree(trained, checkpoint)
    meta = json.loads((checkpoint / "config.json").read_text())
    meta["features"]["action"]["low"] = [-0.05] * 4
    meta["features"]["action"]["high"] = [0.05] * 4
    (checkpoint / "config.json").write_text(json.dumps(meta))
    assert (
        main(
            ["export", f"checkpoint={checkpoint}", f"out={root / 'bundle'}", "include_torch=false"]
        )
        == 0
    )
    return root / "bundle"


# ---------------------------------------------------------------------- a plain rclpy node in this process
class Probe(ProbeNode):
    """Publishes observations, records commands/diagnostics/summaries, calls services (one domain)."""

    def __init__(self, domain_id: int) -> None:
        super().__init__(domain_id, "test_probe")
        self.state_pub = self.node.create_publisher(JointState, "/robot/state", 10)
        self.target_pub = self.node.create_publisher(JointState, "/robot/environment_state", 10)
        self.commands: list[tuple[float, JointTrajectory]] = []
        self.diagnostics: list[dict[str, str]] = []
        self.summaries: list[dict] = []
        self.node.create_subscription(
            JointTrajectory,
            "/policy/command",
            lambda m: self.commands.append((time.monotonic(), m)),
            50,
        )
        self.node.create_subscription(
            DiagnosticArray, "/policy/diagnostics", self._on_diagnostics, 10
        )
        self.node.create_subscription(
            String, "/robot/episode", lambda m: self.summaries.append(json.loads(m.data)), 10
        )

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.append({kv.key: kv.value for kv in msg.status[0].values})

    def publish(
        self, state=None, target=None, stamp_ns: int | None = None, only_state: bool = False
    ) -> int:
        """One observation of the reach policy (random values inside the bounds unless given); returns its stamp."""
        stamp_ns = stamp_ns or self.node.get_clock().now().nanoseconds
        rng = np.random.default_rng(stamp_ns % 2**32)
        state = rng.uniform(*arm_bounds(tuple(STATE))) if state is None else state
        target = rng.uniform(*arm_bounds(tuple(TARGET))) if target is None else target
        self.state_pub.publish(state_to_joint_state(state, STATE, stamp_ns))
        if not only_state:
            self.target_pub.publish(state_to_joint_state(target, TARGET, stamp_ns))
        return stamp_ns

    def stream(self, seconds: float, rate_hz: float = 20.0, **kwargs) -> list[int]:
        """Publish observations at ``rate_hz`` for ``seconds`` while spinning; returns the stamps."""
        stamps, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            stamps.append(self.publish(**kwargs))
            self.spin(1.0 / rate_hz)
        return stamps

    def latest_diagnostics(self, after: int) -> dict[str, str]:
        self.wait_for(lambda: len(self.diagnostics) > after, 5.0, "diagnostics")
        return self.diagnostics[-1]


def start_nodes(
    nodes: list[NodeProcess], probe: Probe, services: list[str], timeout: float = 60.0
) -> None:
    for n in nodes:
        n.start()
    end = time.monotonic() + timeout
    for service in services:
        client = probe.node.create_client(Trigger, service)
        while not client.wait_for_service(timeout_sec=0.2):
            dead = [n.describe_exit() for n in nodes if not n.alive]
            assert not dead, dead
            assert time.monotonic() < end, f"{service} did not come up"
        probe.clients[service] = client
    probe.spin(0.5)  # let the topics' endpoints match


def policy_process(bundle: Path, log_dir: Path, domain_id: int, **params) -> NodeProcess:
    parameters = {"bundle": str(bundle), "runtime": "onnxruntime", **params}
    return NodeProcess(
        "policy_node", "ros_nodes.policy_node", parameters, log_dir, ros_environment(domain_id)
    )


@pytest.fixture(scope="module")
def safety(bundle, tmp_path_factory):
    """A timer-driven policy node (20 Hz, stale after 0.3 s) and a probe on its domain.

    The bundle's rate is 10 Hz: 20 Hz halves the tests' waiting, so the mismatch is allowed.
    """
    probe = Probe(domain(0))
    node = policy_process(
        bundle,
        tmp_path_factory.mktemp("logs"),
        domain(0),
        trigger="timer",
        control_rate_hz=20.0,
        allow_rate_mismatch=True,
        stale_after_s=0.3,
        diagnostics_hz=10.0,
    )
    try:
        start_nodes([node], probe, ["/policy/reset", "/policy/emergency_stop"])
        yield probe, node
    finally:
        stop_all([node], grace_s=5.0)
        probe.close()
    assert node.process.returncode == 0, node.tail()  # SIGINT is a clean shutdown


# ---------------------------------------------------------------------- (a) conversions
def test_joint_state_is_read_by_name_in_any_order():
    values = np.arange(11, dtype=np.float32) / 10
    msg = state_to_joint_state(values, STATE, 123)
    order = np.random.default_rng(0).permutation(11)
    shuffled = JointState(
        name=[STATE[i] for i in order] + ["extra_joint"],
        position=[float(values[i]) for i in order] + [9.0],
    )
    np.testing.assert_array_equal(joint_state_to_state(shuffled, STATE), values)
    np.testing.assert_array_equal(joint_state_to_state(msg, STATE), values)
    assert msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 123
    with pytest.raises(ConversionError, match="joint3"):
        joint_state_to_state(
            JointState(name=[n for n in STATE if n != "joint3"], position=[0.0] * 10), STATE
        )


def test_images_round_trip_and_bgr_mono_are_accepted():
    frame = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    msg = image_to_msg(frame, 5)
    assert msg.encoding == "rgb8" and msg.step == 24
    np.testing.assert_array_equal(msg_to_image(msg), frame)
    bgr = Image(height=6, width=8, encoding="bgr8", step=24, data=frame[..., ::-1].tobytes())
    np.testing.assert_array_equal(msg_to_image(bgr), frame)
    padded = Image(
        height=6,
        width=8,
        encoding="rgb8",
        step=32,
        data=np.concatenate([frame.reshape(6, 24), np.zeros((6, 8), np.uint8)], 1).tobytes(),
    )
    np.testing.assert_array_equal(msg_to_image(padded), frame)
    mono = Image(height=6, width=8, encoding="mono8", step=8, data=frame[..., 0].tobytes())
    np.testing.assert_array_equal(msg_to_image(mono), np.repeat(frame[..., :1], 3, axis=2))
    with pytest.raises(ConversionError, match="16UC1"):
        msg_to_image(Image(height=1, width=1, encoding="16UC1", step=2, data=b"\0\0"))


def test_action_chunks_round_trip_as_joint_trajectories():
    chunk = np.random.default_rng(0).uniform(-1, 1, (3, 4)).astype(np.float32)
    msg = chunk_to_trajectory(chunk, ["dx", "dy", "dz", "gripper"], 7, dt=0.05)
    assert [p.time_from_start.nanosec for p in msg.points] == [0, 50_000_000, 100_000_000]
    np.testing.assert_array_equal(trajectory_to_chunk(msg, ["dx", "dy", "dz", "gripper"]), chunk)
    np.testing.assert_array_equal(trajectory_to_chunk(msg, ["gripper", "dx"]), chunk[:, [3, 0]])


def test_topic_map_defaults_overrides_and_errors(bundle):
    features = load_bundle(bundle, runtime="onnxruntime").features
    assert default_topic("observation.images.front") == "/robot/images/front"
    keys = ["observation.state", "observation.environment_state"]
    topics = TopicMap.build(
        features,
        keys,
        ["observation.state=/arm/joint_states"],
        ["observation.environment_state=goal_x,goal_y,goal_z"],
    )
    assert topics.bindings["observation.state"].topic == "/arm/joint_states"
    assert topics.bindings["observation.environment_state"].names == ("goal_x", "goal_y", "goal_z")
    with pytest.raises(TopicMapError, match="observation.wrist"):
        TopicMap.build(features, keys, ["observation.wrist=/x"])
    with pytest.raises(
        TopicMapError, match=r"no topic for observation keys \['observation.state'\]"
    ):
        TopicMap.build(features, keys[1:]).require(keys)


# ---------------------------------------------------------------------- (b) closed loop == in-process eval
def test_deploy_over_dds_matches_in_process_evaluation(bundle, tmp_path, capsys):
    """sim_robot_node + policy_node as processes, lockstep: the same episodes as eval on the same seeds."""
    out = tmp_path / "deploy"
    assert (
        main(
            [
                "deploy",
                f"bundle={bundle}",
                "robot=sim",
                "task=reach",
                "episodes=6",
                "runtime=onnxruntime",
                "realtime=false",
                f"domain_id={domain(1)}",
                f"out={out}",
            ]
        )
        == 0
    )
    assert "observation->command latency" in capsys.readouterr().out
    report = json.loads((out / "deploy.json").read_text())
    assert {
        "episodes",
        "success_rate",
        "success_ci95",
        "latency_ms_p50",
        "latency_ms_p99",
        "control_rate_hz",
        "missed_deadlines",
    } <= set(report)
    policy = load_bundle(bundle, runtime="onnxruntime")
    policy.reseed(100000)
    result = evaluate(policy, EvalConfig(task=TaskConfig(name="reach"), episodes=6, num_envs=1))
    assert report["seeds"] == result.seeds == [100000 + i for i in range(6)]
    low, high = report["success_ci95"]
    assert low <= result.success_rate <= high
    # toy_mlp is deterministic and lockstep replays evaluation exactly: identical episodes
    assert report["successes"] == result.successes and report["episode_lengths"] == result.lengths
    assert report["max_rewards"] == pytest.approx(result.max_rewards, abs=1e-6)
    assert (
        report["latency_samples"] == sum(result.lengths)
        and 0 < report["latency_ms_p50"] <= report["latency_ms_p99"]
    )
    assert report["policy_node"]["rejected_observations"] == 0
    assert not any(p for p in (out / "logs").glob("*.log") if "Traceback" in p.read_text())


def test_deploy_with_asynchronous_inference_runs_every_episode(bundle, tmp_path):
    """inference=async: the node computes chunks in a background thread; deploy.json says so."""
    out = tmp_path / "deploy_async"
    args = ["deploy", f"bundle={bundle}", "robot=sim", "task=reach", "episodes=3",
            "runtime=onnxruntime", "inference=async", f"domain_id={domain(7)}", f"out={out}"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "deploy.json").read_text())
    assert report["inference"] == "async" and report["config"]["inference"] == "async"
    assert not report["stalled_episodes"] and report["steps"] == report["latency_samples"] > 0
    node = report["policy_node"]
    assert node["inferences"] >= report["steps"] / 8 and node["rejected_observations"] == 0
    assert "inference_stalls" in node
    log = (out / "logs" / "policy_node.log").read_text()
    assert "Traceback" not in log


def test_deploy_on_ros2_control_with_the_fake_arm_matches_in_process_evaluation(bundle, tmp_path):
    """``robot=ros2_control robot.fake=true``: policy_node -> the robot node (ros2_control driver:
    IK, joint trajectories) -> the MuJoCo-backed fake controller, over DDS; the same episodes'
    success rate as ``eval`` (within its confidence interval)."""
    out = tmp_path / "deploy"
    args = [f"bundle={bundle}", "robot=ros2_control", "robot.fake=true", "task=reach"]
    args += ["episodes=6", "runtime=onnxruntime", "realtime=false", f"domain_id={domain(6)}"]
    assert main(["deploy", *args, f"out={out}"]) == 0
    report = json.loads((out / "deploy.json").read_text())
    policy = load_bundle(bundle, runtime="onnxruntime")
    policy.reseed(100000)
    result = evaluate(policy, EvalConfig(task=TaskConfig(name="reach"), episodes=6, num_envs=1))
    low, high = wilson_interval(int(sum(result.successes)), len(result.successes))
    assert low <= report["success_rate"] <= high
    assert result.success_rate > 0  # the comparison is not between two zeros
    assert report["episodes"] == 6 and report["config"]["robot"] == "ros2_control"
    assert not any("Traceback" in p.read_text() for p in (out / "logs").glob("*.log"))


def test_eval_on_robots_replays_the_simulated_episodes(bundle, tmp_path):
    """``eval robot=sim`` and ``eval robot=ros2_control robot.fake=true`` (the driver's IK against
    the MuJoCo-backed fake controller) give the in-process evaluation's episodes."""
    runs = {
        "task": [],
        "sim": ["robot=sim"],
        "ros2_control": ["robot=ros2_control", "robot.fake=true", f"robot.domain_id={domain(7)}"],
    }
    results = {}
    for name, extra in runs.items():
        out = tmp_path / name
        args = [f"bundle={bundle}", "task=reach", "episodes=4", "runtime=onnxruntime"]
        assert main(["eval", *args, *extra, f"out={out}"]) == 0
        results[name] = json.loads((out / "eval.json").read_text())
    reference = results["task"]
    assert any(reference["successes"])
    for name in ("sim", "ros2_control"):
        assert results[name]["successes"] == reference["successes"], name
        assert results[name]["episode_lengths"] == reference["episode_lengths"], name


def test_deploy_applies_the_robot_safety_limits_in_the_policy_node(bundle, tmp_path):
    """``robot.safety.max_delta`` reaches policy_node: its commands are rate-limited (counted)."""
    out = tmp_path / "deploy"
    args = [f"bundle={bundle}", "robot=sim", "task=reach", "episodes=1", "runtime=onnxruntime"]
    args += ["realtime=false", f"domain_id={domain(5)}", f"out={out}"]
    assert main(["deploy", *args, "robot.safety.max_delta=0.01"]) == 0
    report = json.loads((out / "deploy.json").read_text())
    assert report["policy_node"]["clamped_actions"] > 0


# ---------------------------------------------------------------------- (c) safety
def test_stale_observations_hold_and_commands_resume(safety):
    probe, _ = safety
    probe.call("/policy/reset")
    probe.stream(0.5)
    assert probe.commands, "no commands while observations are fresh"
    before = len(probe.diagnostics)
    stopped = time.monotonic()
    probe.stream(1.0, only_state=True)  # the target stops arriving
    late = [
        t for t, _ in probe.commands if t > stopped + 0.3 + 0.15
    ]  # stale_after_s + one tick + DDS slack
    assert late == [], f"{len(late)} commands while environment_state was stale"
    diagnostics = probe.latest_diagnostics(before)
    assert int(diagnostics["stale_holds"]) > 0 and diagnostics["holding"] == "true"
    resumed = time.monotonic()
    probe.stream(0.5)
    assert [t for t, _ in probe.commands if t > resumed], (
        "commands did not resume with fresh observations"
    )


def test_nan_observation_is_rejected_and_the_node_keeps_running(safety):
    probe, node = safety
    probe.call("/policy/reset")
    probe.stream(0.3)
    rejected = int(probe.latest_diagnostics(len(probe.diagnostics))["rejected_observations"])
    state = np.zeros(11)
    state[4] = math.nan
    bad = probe.publish(state=state, only_state=True)  # no valid message carries this stamp
    probe.spin(0.3)
    assert (
        int(probe.latest_diagnostics(len(probe.diagnostics))["rejected_observations"])
        == rejected + 1
    )
    good = probe.publish()
    probe.wait_for(
        lambda: any(
            m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == good for _, m in probe.commands
        ),
        5.0,
        "a command answering the next valid observation",
    )
    stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in probe.commands}
    assert bad not in stamps and node.alive
    assert "contains NaN/Inf" in node.tail(50) and "observation.state" in node.tail(50)


def test_emergency_stop_latches_until_reset(safety):
    probe, _ = safety
    probe.call("/policy/reset")
    probe.stream(0.3)
    assert probe.commands
    assert probe.call("/policy/emergency_stop").success
    stopped = time.monotonic()
    probe.stream(0.8)
    assert [t for t, _ in probe.commands if t > stopped + 0.1] == [], (
        "commands published while e-stopped"
    )
    assert probe.latest_diagnostics(len(probe.diagnostics))["estop"] == "true"
    probe.call("/policy/reset")
    cleared = time.monotonic()
    probe.stream(0.5)
    assert [t for t, _ in probe.commands if t > cleared], (
        "commands did not resume after /policy/reset"
    )


def test_out_of_bounds_actions_are_clamped(tight_bundle, tmp_path):
    probe = Probe(domain(2))
    node = policy_process(tight_bundle, tmp_path, domain(2))
    try:
        start_nodes([node], probe, ["/policy/reset"])
        probe.call("/policy/reset")
        probe.stream(1.0)  # commands at the bundle's 10 Hz
        assert len(probe.commands) >= 5
        actions = np.array([p.positions for _, m in probe.commands for p in m.points])
        assert np.all(np.abs(actions) <= 0.05 + 1e-9), actions.max()
        counters = json.loads(probe.call("/policy/reset").message)
        assert counters["clamped_actions"] > 0 and counters["steps"] >= counters["clamped_actions"]
    finally:
        stop_all([node], grace_s=5.0)
        probe.close()


def test_observations_faster_than_the_control_rate_do_not_speed_up_the_policy(bundle, tmp_path):
    """Observations at 3x the bundle's 10 Hz (default trigger): commands stay at 10 Hz."""
    from dataclasses import fields

    from ros_nodes.control import Counters
    from ros_nodes.topics import DIAGNOSTICS_VALUES

    probe = Probe(domain(4))
    node = policy_process(bundle, tmp_path, domain(4), diagnostics_hz=10.0)
    try:
        start_nodes([node], probe, ["/policy/reset"])
        probe.call("/policy/reset")
        probe.stream(0.5, rate_hz=30.0)  # warm-up
        started = time.monotonic()
        stamps = probe.stream(3.0, rate_hz=30.0)
        ended = time.monotonic()
        probe.spin(0.2)
        seconds = ended - started
        commands = [t for t, _ in probe.commands if started <= t <= ended]
        assert len(stamps) / seconds >= 20, "the probe did not publish at 2-3x the control rate"
        assert 8.0 <= len(commands) / seconds <= 12.0, (
            f"{len(commands) / seconds:.1f} commands/s for {len(stamps) / seconds:.1f} observations/s"
        )
        diagnostics = probe.latest_diagnostics(len(probe.diagnostics))
        assert set(diagnostics) == {*DIAGNOSTICS_VALUES, *(f.name for f in fields(Counters))}
        assert float(diagnostics["control_rate_hz"]) == 10.0
        assert diagnostics["trigger"] == "observation"
        assert int(diagnostics["superseded_observations"]) > 0
    finally:
        stop_all([node], grace_s=5.0)
        probe.close()


# ---------------------------------------------------------------------- (d) recorder
def test_recorder_commits_episodes_from_topics(bundle, tmp_path):
    probe = Probe(domain(3))
    env = ros_environment(domain(3))
    dataset = tmp_path / "recorded"
    nodes = [
        NodeProcess(
            "sim_robot_node",
            "ros_nodes.sim_robot_node",
            {"task": "reach", "max_episode_steps": 8, "realtime": False},
            tmp_path,
            env,
        ),
        policy_process(bundle, tmp_path, domain(3)),
        NodeProcess(
            "recorder_node",
            "ros_nodes.recorder_node",
            {"task": "reach", "out": str(dataset)},
            tmp_path,
            env,
        ),
    ]
    try:
        start_nodes(
            nodes,
            probe,
            [
                "/robot/reset",
                "/policy/reset",
                "/recorder/start",
                "/recorder/stop",
                "/recorder/status",
            ],
        )

        def status() -> dict:
            return json.loads(probe.call("/recorder/status").message)

        # DDS matches endpoints asynchronously: an episode run before the recorder hears every
        # topic would lose its first frames
        probe.wait_for(lambda: min(status()["publishers"].values()) >= 1, 30.0, "recorder matched")
        assert set(status()["publishers"]) == {
            "/robot/state",
            "/robot/environment_state",
            "/policy/command",
        }
        saved = []
        for i in range(2):
            assert probe.call("/recorder/start").success
            probe.call("/policy/reset")
            probe.call("/robot/reset")
            probe.wait_for(lambda i=i: len(probe.summaries) > i, 30.0, f"episode {i}")
            length = probe.summaries[i]["length"]
            # the last command may still be on its way to the recorder
            probe.wait_for(
                lambda n=length: (s := status())["frames"] + s["waiting_commands"] >= n,
                10.0,
                f"recorder heard episode {i}'s {length} commands",
            )
            stop = probe.call("/recorder/stop")
            assert stop.success, stop.message
            saved.append(json.loads(stop.message))
    finally:
        stop_all(nodes, grace_s=5.0)
        probe.close()
    assert [s["episode"] for s in saved] == [0, 1]
    assert [s["frames"] for s in saved] == [s["length"] for s in probe.summaries]
    assert validate_dataset(dataset) == []
    data = LeRobotDataset(dataset)
    assert data.num_episodes == 2 and data.episode_lengths == [s["length"] for s in probe.summaries]
    assert set(data.features) >= {"observation.state", "observation.environment_state", "action"}


# ---------------------------------------------------------------------- (e) the README's plain script
def test_plain_rclpy_script_drives_the_policy_node(safety):
    _, node = safety
    env = ros_environment(domain(0))
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "drive_policy_node.py"),
            "--ticks",
            "5",
            "--rate",
            "20",
            "--timeout",
            "20",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr + node.tail()
    assert "command 5: dx=" in run.stdout


def test_robot_learning_never_imports_rclpy():
    code = (
        "import sys, robot_learning.cli, robot_learning.cli.deploy, robot_learning.cli.bench, robot_learning.runtime; "
        "from robot_learning.cli import COMMANDS; COMMANDS.get('deploy'); assert 'rclpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_stalled_episode_is_a_failure_and_the_report_goes_on(tmp_path):
    from ros_nodes.deploy import DeployConfig, deploy_report, stalled_episode

    cfg = DeployConfig(bundle=str(tmp_path), task=TaskConfig(name="reach"), out=str(tmp_path))
    done = {
        "episode": 0,
        "seed": 100000,
        "success": True,
        "length": 5,
        "max_reward": 2.0,
        "duration_s": 0.5,
        "latencies_ms": [1.0, 2.0],
    }
    report = deploy_report(
        cfg,
        [done, stalled_episode(1, 100001, 60.0)],
        [{"missed_deadlines": 0}] * 3,
        10.0,
        7,
        61.0,
        {"policy": "toy"},
    )
    assert report["successes"] == [True, False] and report["success_rate"] == 0.5
    assert report["stalled_episodes"] == [1] and report["mean_max_reward"] == 2.0
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN for the stalled episode


# ---------------------------------------------------------------------- language bundles
@pytest.fixture(scope="module")
def vla_bundle(trained, tmp_path_factory) -> Path:
    """A tiny untrained VLA on the toy reach policy's features, exported with 2 Euler steps."""
    import torch

    from policies.vla import VLAConfig, VLAPolicy
    from robot_learning.export import ExportConfig, export_checkpoint

    toy = Policy.load(trained)
    torch.manual_seed(0)
    config = VLAConfig(d_model=16, n_heads=2, backbone_layers=1, expert_layers=1, text_layers=1,
                       horizon=8, max_tokens=32)  # fmt: skip
    vla = VLAPolicy(config, toy.features, toy.normalizer.stats_dict())
    root = tmp_path_factory.mktemp("vla")
    vla.save(root / "checkpoint", extra={"train_config": {"fps": 10}})
    out = root / "bundle"
    export_checkpoint(ExportConfig(checkpoint=str(root / "checkpoint"), out=str(out), steps=2,
                                   include_torch=False))  # fmt: skip
    return out


def test_policy_node_follows_the_instruction_parameter_and_topic(vla_bundle, tmp_path):
    probe = Probe(domain(5))
    instruction_pub = probe.node.create_publisher(
        String, "/policy/instruction", qos_profile(INSTRUCTION_QOS)
    )
    node = policy_process(vla_bundle, tmp_path / "logs", domain(5), trigger="timer",
                          control_rate_hz=20.0, allow_rate_mismatch=True, diagnostics_hz=10.0)  # fmt: skip
    try:
        start_nodes([node], probe, ["/policy/reset"])
        probe.stream(0.6)
        assert probe.commands == [], "commands before any instruction"
        assert probe.latest_diagnostics(len(probe.diagnostics))["instruction"] == ""
        instruction_pub.publish(String(data="lift the red cube"))
        probe.wait_for(lambda: probe.publish() and probe.commands, 10.0, "commands")
        seen = len(probe.diagnostics)
        assert probe.latest_diagnostics(seen)["instruction"] == "lift the red cube"
        instruction_pub.publish(String(data="lift " * 10))  # 50 bytes: more than 32 tokens
        probe.spin(0.5)
        diagnostics = probe.latest_diagnostics(len(probe.diagnostics))
        assert diagnostics["rejected_instructions"] == "1"
        assert diagnostics["instruction"] == "lift the red cube"  # the previous one stays
        resumed = time.monotonic()
        probe.stream(0.4)
        assert [t for t, _ in probe.commands if t > resumed] and node.alive
        assert "rejected instruction" in node.tail(50) and "tokens long" in node.tail(50)
    finally:
        stop_all([node], grace_s=5.0)
        probe.close()
    probe = Probe(domain(5))
    node = policy_process(vla_bundle, tmp_path / "logs2", domain(5), trigger="timer",
                          control_rate_hz=20.0, allow_rate_mismatch=True,
                          instruction="lift the blue cube")  # fmt: skip
    try:
        start_nodes([node], probe, ["/policy/reset"])
        probe.wait_for(lambda: probe.publish() and probe.commands, 10.0, "commands")
    finally:
        stop_all([node], grace_s=5.0)
        probe.close()


def test_deploy_sends_each_episodes_instruction_to_the_policy_node(vla_bundle, tmp_path):
    """No fixed instruction: the robot draws one per episode and starts the episode only once
    the policy node follows it."""
    from robot_learning.envs import episode_instruction, make_env

    out = tmp_path / "deploy"
    args = ["deploy", f"bundle={vla_bundle}", "robot=sim", "task=reach", "episodes=4",
            "realtime=false", "max_episode_steps=5", f"domain_id={domain(6)}", f"out={out}"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "deploy.json").read_text())
    env = make_env(TaskConfig(name="reach"))
    expected = []
    for seed in report["seeds"]:
        env.reset(seed=seed)
        expected.append(episode_instruction(env))
    assert [e["instruction"] for e in report["per_episode"]] == expected
    assert len(set(expected)) > 1  # the paraphrases really changed between episodes
    assert all(e["length"] == 5 for e in report["per_episode"])
    log = (out / "logs" / "policy_node.log").read_text()
    assert all(f"instruction: {text!r}" in log for text in expected)


def test_a_new_instruction_drops_the_queued_chunk(vla_bundle):
    from robot_learning.runtime import load_bundle
    from ros_nodes.control import PolicyController

    policy = load_bundle(vla_bundle, runtime="onnxruntime")
    controller = PolicyController(policy, 0.1, 1.0)
    obs = policy.neutral_observation()
    for key in policy.input_keys:
        controller.offer(key, obs[key][0, -1], 1, time.monotonic())
    assert not controller.ready(time.monotonic(), need_new=False)  # no instruction yet
    assert controller.set_instruction("lift the red cube") is None
    controller.step()
    assert controller.queue_depth == policy.n_action_steps - 1
    assert controller.set_instruction("lift the red cube") is None  # unchanged: keep the chunk
    assert controller.queue_depth == policy.n_action_steps - 1
    assert controller.set_instruction("lift the blue cube") is None
    assert controller.queue_depth == 0 and controller.counters.inferences == 1
    controller.step()
    assert controller.counters.inferences == 2
    assert "empty" in controller.set_instruction(" ")
    assert controller.counters.rejected_instructions == 1
