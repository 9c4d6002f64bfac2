"""ROS 2 teleop and interventions over real rclpy/DDS: the mux's arbitration and hand-back,
``teleop_node device:=expert`` against ``sim_robot_node``, the recorder's intervention columns and
``deploy teleop=expert``.

Nodes run as separate processes (``python -m ros_nodes.<node>``) on their own random
ROS_DOMAIN_ID; this process talks to them through a plain rclpy node (:class:`Probe`).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

import toy_policy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_probe import ProbeNode  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from robot_learning.cli import main  # noqa: E402
from robot_learning.datasets import LeRobotDataset, validate_dataset  # noqa: E402
from robot_learning.envs import TaskConfig  # noqa: E402
from robot_learning.interventions import (  # noqa: E402
    INTERVENTION_START,
    IS_INTERVENTION,
    POLICY_ACTION,
)
from ros_nodes.conversions import chunk_to_trajectory, stamp_to_ns  # noqa: E402
from ros_nodes.deploy import (  # noqa: E402
    DeployConfig,
    intervention_report,
    node_processes,
)
from ros_nodes.processes import NodeProcess, ros_environment, stop_all  # noqa: E402

DOMAIN = random.SystemRandom().randint(100, 220)  # +0 mux, +1 recorder, +2 deploy (mod 233)
NAMES = ["dx", "dy", "dz", "gripper"]
#: an eager simulated operator: takes over when the toy policy differs a little from the expert
#: and hands back after 2 ticks, so short reach episodes see interventions and hand-backs
EXPERT = {"drift_threshold": 0.25, "drift_steps": 1, "hold_steps": 2, "reaction_steps": 0}


def domain(offset: int) -> int:
    return (DOMAIN + offset) % 233


@pytest.fixture(scope="module", autouse=True)
def _toy_mlp_one_thread():
    with toy_policy.registered_one_thread():
        yield


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("teleop")
    trained = toy_policy.train_reach(root)
    out = root / "bundle"
    assert main(["export", f"checkpoint={trained}", f"out={out}", "include_torch=false"]) == 0
    return out


class Probe(ProbeNode):
    """Publishes fake policy/operator commands, records what the mux and robot send, calls services."""

    def __init__(self, domain_id: int) -> None:
        super().__init__(domain_id, "teleop_probe")
        self.policy_pub = self.node.create_publisher(JointTrajectory, "/policy/command", 50)
        self.teleop_pub = self.node.create_publisher(JointTrajectory, "/teleop/command", 50)
        self.robot: list[JointTrajectory] = []
        self.records: list[dict] = []
        self.diagnostics: list[dict[str, str]] = []
        self.summaries: list[dict] = []
        sub = self.node.create_subscription
        sub(JointTrajectory, "/robot/command", self.robot.append, 50)
        sub(String, "/mux/record", lambda m: self.records.append(json.loads(m.data)), 50)
        sub(String, "/robot/episode", lambda m: self.summaries.append(json.loads(m.data)), 10)
        sub(
            DiagnosticArray,
            "/policy/diagnostics",
            lambda m: self.diagnostics.append({kv.key: kv.value for kv in m.status[0].values}),
            10,
        )


def start(nodes: list[NodeProcess], probe: Probe, services: list[str]) -> None:
    for n in nodes:
        n.start()
    end = time.monotonic() + 60.0
    for service in services:
        client = probe.node.create_client(Trigger, service)
        while not client.wait_for_service(timeout_sec=0.2):
            dead = [n.describe_exit() for n in nodes if not n.alive]
            assert not dead, dead
            assert time.monotonic() < end, f"{service} did not come up"
        probe.clients[service] = client


def command(stamp: int, *actions: float | list[float]) -> JointTrajectory:
    """A JointTrajectory stamped ``stamp``: one point per action (none: the operator passes)."""
    rows = np.asarray([np.full(4, a) if np.isscalar(a) else a for a in actions], np.float32)
    return chunk_to_trajectory(rows.reshape(-1, 4), NAMES, stamp, 0.1)


# ---------------------------------------------------------------------- (a) the mux
def test_mux_forwards_policy_or_operator_per_stamp_and_resets_the_policy_at_hand_back(
    bundle, tmp_path
):
    probe = Probe(domain(0))
    env = ros_environment(domain(0))
    nodes = [
        NodeProcess(
            "policy_node",
            "ros_nodes.policy_node",
            {"bundle": str(bundle), "runtime": "onnxruntime", "diagnostics_hz": 20.0},
            tmp_path,
            env,
        ),
        NodeProcess("intervention_mux", "ros_nodes.intervention_mux", {}, tmp_path, env),
    ]
    try:
        start(nodes, probe, ["/policy/reset", "/policy/emergency_stop", "/mux/status"])
        probe.wait_for(
            lambda: (
                probe.policy_pub.get_subscription_count() >= 1
                and probe.teleop_pub.get_subscription_count() >= 1
                and probe.node.count_publishers("/robot/command") >= 1
            ),
            30.0,
            "mux matched",
        )
        probe.spin(0.3)

        def step(first, second, n: int) -> None:
            """Publish two answers (publisher, message) to one observation, the second 0.2 s
            later (a mux forwarding on arrival would have sent the first by then); wait until
            the robot has ``n`` commands."""
            first[0].publish(first[1])
            probe.spin(0.2)
            second[0].publish(second[1])
            probe.wait_for(lambda: len(probe.robot) >= n, 10.0, f"command {n}")

        s = [10**9 * (k + 1) for k in range(6)]
        pol, tel = probe.policy_pub, probe.teleop_pub
        policies = {t: command(t, 0.1 * (i + 1), 0.2 * (i + 1)) for i, t in enumerate(s)}
        operator = {t: command(t, -0.5 - 0.1 * i) for i, t in enumerate(s)}
        passes = {t: command(t) for t in s}
        # stamp 1: the operator passes (its answer first): the policy's whole chunk goes through
        step((tel, passes[s[0]]), (pol, policies[s[0]]), 1)
        # stamp 2: the policy first, then the operator intervenes: the operator's command wins
        step((pol, policies[s[1]]), (tel, operator[s[1]]), 2)
        # stamp 3: still intervening
        step((tel, operator[s[2]]), (pol, policies[s[2]]), 3)
        # the policy is e-stopped while the operator drives; the hand-back must reset it
        assert probe.call("/policy/emergency_stop").success
        probe.wait_for(
            lambda: probe.diagnostics and probe.diagnostics[-1]["estop"] == "true", 5.0, "estop"
        )
        # stamp 4: hand-back (the operator passes again): policy reset, then its command
        step((pol, policies[s[3]]), (tel, passes[s[3]]), 4)
        probe.wait_for(
            lambda: probe.diagnostics[-1]["estop"] == "false", 5.0, "policy reset at hand-back"
        )
        # stamp 5: only the policy answered: nothing goes to the robot until the operator does
        probe.policy_pub.publish(policies[s[4]])
        probe.spin(0.5)
        assert len(probe.robot) == 4, "the mux forwarded before the operator answered"
        probe.teleop_pub.publish(passes[s[4]])
        probe.wait_for(lambda: len(probe.robot) >= 5, 10.0, "command 5")
        # a re-sent policy command (the robot re-sent its observation): re-published once more
        probe.policy_pub.publish(policies[s[4]])
        probe.wait_for(lambda: len(probe.robot) >= 6, 10.0, "re-sent command 5")
        # stamp 6: the operator takes over and the policy stays silent (e.g. e-stopped): the
        # operator's command goes through alone after policy_wait_s
        probe.teleop_pub.publish(operator[s[5]])
        probe.wait_for(lambda: len(probe.robot) >= 7, 10.0, "operator command without policy")
        probe.wait_for(lambda: len(probe.records) >= 6, 5.0, "records")
        status = probe.status("/mux/status")
    finally:
        stop_all(nodes, grace_s=5.0)
        probe.close()
    expected = [policies[s[0]], operator[s[1]], operator[s[2]], policies[s[3]], policies[s[4]]]
    got = probe.robot[:5]
    assert [stamp_to_ns(m.header.stamp) for m in got] == s[:5]
    for m, e in zip(got, expected, strict=True):
        assert [list(p.positions) for p in m.points] == [list(p.positions) for p in e.points]
    assert list(probe.robot[5].points[0].positions) == list(policies[s[4]].points[0].positions)
    assert list(probe.robot[6].points[0].positions) == list(operator[s[5]].points[0].positions)
    sources = ["policy", "teleop", "teleop", "policy", "policy", "teleop"]
    assert [r["source"] for r in probe.records] == sources
    assert [r["intervention_start"] for r in probe.records] == [0, 1, 0, 0, 0, 1]
    assert probe.records[5]["policy_action"] == probe.records[5]["action"]  # no proposal came
    np.testing.assert_allclose(probe.records[1]["policy_action"], [0.2] * 4, rtol=1e-6)
    np.testing.assert_allclose(probe.records[1]["action"], [-0.6] * 4, rtol=1e-6)
    assert status["handbacks"] == 1 and status["policy_resets"] == 1
    assert status["interventions"] == 2 and status["teleop_commands"] == 3
    assert status["policy_commands"] == 3 and status["policy_timeouts"] == 1
    assert "reset: latch cleared" in nodes[0].tail(50)


# ---------------------------------------------------------------------- (b) expert operator + recorder
def test_expert_operator_interventions_are_recorded_with_consistent_flags(bundle, tmp_path):
    probe = Probe(domain(1))
    env = ros_environment(domain(1))
    dataset = tmp_path / "recorded"
    cfg = DeployConfig(
        bundle=str(bundle),
        task=TaskConfig(name="reach", max_episode_steps=40),
        out=str(tmp_path),
        runtime="onnxruntime",
        realtime=False,
        teleop="expert",
        teleop_options=EXPERT,
    )
    nodes = node_processes(cfg, 10.0, tmp_path, env)
    nodes.append(
        NodeProcess(
            "recorder_node",
            "ros_nodes.recorder_node",
            {"task": "reach", "out": str(dataset), "record_interventions": True},
            tmp_path,
            env,
        )
    )
    services = ["/robot/reset", "/policy/reset", "/teleop/reset", "/mux/reset", "/recorder/stop"]
    episodes = 3
    try:
        start(nodes, probe, services)

        def recorder() -> dict:
            return probe.status("/recorder/status")

        probe.wait_for(
            lambda: min(recorder()["publishers"].values()) >= 1, 30.0, "recorder matched"
        )
        assert set(recorder()["publishers"]) == {
            "/robot/state",
            "/robot/environment_state",
            "/mux/record",
        }
        for i in range(episodes):
            probe.call("/mux/reset")
            probe.call("/teleop/reset")
            assert probe.call("/recorder/start").success
            probe.call("/policy/reset")
            probe.call("/robot/reset")
            probe.wait_for(lambda i=i: len(probe.summaries) > i, 30.0, f"episode {i}")
            length = probe.summaries[i]["length"]
            probe.wait_for(
                lambda n=length: (s := recorder())["frames"] + s["waiting_commands"] >= n,
                10.0,
                f"recorder heard episode {i}",
            )
            stop = probe.call("/recorder/stop")
            assert stop.success, stop.message
        mux = probe.status("/mux/status")
    finally:
        stop_all(nodes, grace_s=5.0)
        probe.close()
    assert validate_dataset(dataset) == []
    data = LeRobotDataset(dataset)
    assert data.episode_lengths == [s["length"] for s in probe.summaries]
    assert {IS_INTERVENTION, INTERVENTION_START, POLICY_ACTION} <= set(data.features)
    flags, starts, teleop_frames = [], [], 0
    for e in range(episodes):
        ep = data.episode(e)
        flag = ep[IS_INTERVENTION].ravel()
        first = ep[INTERVENTION_START].ravel()
        assert set(np.unique(flag)) <= {0.0, 1.0} and set(np.unique(first)) <= {0.0, 1.0}
        rising = (flag == 1) & (np.concatenate([[0.0], flag[:-1]]) == 0)
        np.testing.assert_array_equal(first == 1, rising)  # first frames exactly at the rises
        policy = flag == 0
        np.testing.assert_allclose(ep["action"][policy], ep[POLICY_ACTION][policy], atol=1e-6)
        teleop_frames += int(flag.sum())
        flags.append(flag)
        starts.append(first)
    assert teleop_frames == mux["teleop_commands"] > 0
    assert sum(int(f.sum()) for f in starts) == mux["interventions"] > 0
    everything = np.concatenate([data.episode(e)["action"] for e in range(episodes)])
    proposals = np.concatenate([data.episode(e)[POLICY_ACTION] for e in range(episodes)])
    operated = np.concatenate(flags) == 1
    # the operator took over because it disagreed: its actions are not the policy's
    assert np.abs(everything[operated] - proposals[operated]).max() > 0.05
    assert mux["handbacks"] == mux["policy_resets"] and mux["reset_failures"] == 0


# ---------------------------------------------------------------------- (c) deploy teleop=expert
def test_deploy_with_expert_operator_reports_interventions(bundle, tmp_path):
    """Through the CLI: ``deploy ... teleop=expert +teleop_options.<key>=...``."""
    from robot_learning.cli import main

    out = tmp_path / "deploy"
    args = ["deploy", f"bundle={bundle}", "task=reach", "task.max_episode_steps=40", f"out={out}"]
    args += ["episodes=3", "runtime=onnxruntime", "realtime=false", f"domain_id={domain(2)}"]
    args += ["teleop=expert", *(f"+teleop_options.{k}={v}" for k, v in EXPERT.items())]
    assert main(args) == 0
    report = json.loads((out / "deploy.json").read_text())
    assert report["episodes"] == 3
    assert report["interventions"] >= 1 and report["intervention_frames"] >= 1
    assert sum(report["interventions_per_episode"]) == report["interventions"]
    assert sum(report["intervention_frames_per_episode"]) == report["intervention_frames"]
    mux = report["intervention_mux"]
    assert mux["teleop_commands"] + mux["policy_commands"] == report["steps"]
    assert mux["handbacks"] == mux["policy_resets"] and mux["reset_failures"] == 0
    logs = out / "logs"
    assert {p.stem for p in logs.glob("*.log")} == {
        "sim_robot_node",
        "policy_node",
        "teleop_node",
        "intervention_mux",
    }
    assert not any("Traceback" in p.read_text() for p in logs.glob("*.log"))
    assert "commands from /robot/command" in (logs / "sim_robot_node.log").read_text()


def test_deploy_teleop_settings_are_checked_and_default_to_no_interventions():
    task = TaskConfig(name="reach")
    with pytest.raises(ValueError, match="no_such_device"):
        DeployConfig(bundle="b", task=task, out="o", teleop="no_such_device")
    with pytest.raises(ValueError, match="set teleop"):
        DeployConfig(bundle="b", task=task, out="o", teleop_options={"hold_steps": 3})
    assert intervention_report([], 2)["interventions"] == 0
    assert intervention_report([], 2)["intervention_frames"] == 0
