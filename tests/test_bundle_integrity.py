"""A bundle's metadata is covered by its integrity check; a policy never runs at another rate.

* ``policy.json`` carries a SHA-256 of its own (normalised) content: editing it, e.g. widening
  the action bounds, is refused by ``load_bundle`` for every runtime and by the policy node.
* ``eval`` and ``deploy`` (and the nodes' rate parameters) refuse a bundle whose control rate
  differs from the task's or the robot's, naming both rates.
* ``robot-learning bundle info`` prints what the policy node expects on ROS 2.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import toy_policy

from robot_learning.cli import main
from robot_learning.envs import TaskConfig, make_env
from robot_learning.evaluation import (
    ControlRateMismatchError,
    EvalConfig,
    TorchPolicySource,
    checkpoint_control_rate,
    evaluate,
)
from robot_learning.export import ExportConfig, export_checkpoint
from robot_learning.policy import Policy
from robot_learning.runtime import BundleError, load_bundle
from robot_learning.runtime.bundle import BUNDLE_FILE, METADATA_HASH, write_policy_json

REACH = TaskConfig(name="reach", max_episode_steps=5)
STATE = ["ee_x", "ee_y", "ee_z", "gripper_width"] + [f"joint{i}" for i in range(1, 8)]
TARGET = ["target_x", "target_y", "target_z"]
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
TAMPERED = r"policy\.json does not match its SHA-256.*modified after export.*re-export"


@pytest.fixture(scope="module", autouse=True)
def _toy_mlp():
    with toy_policy.registered_one_thread():
        yield


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained toy_mlp for reach, recorded at reach's rate (10 Hz)."""
    env = make_env(REACH)
    spec = env.features.select([*env.features.observation_keys, "action"])
    env.close()
    return toy_policy.untrained_checkpoint(spec, tmp_path_factory.mktemp("ckpt") / "reach")


@pytest.fixture(scope="module")
def bundle(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "reach"
    return export_checkpoint(ExportConfig(checkpoint=str(checkpoint), out=str(out)))


@pytest.fixture(scope="module")
def fast_bundle(checkpoint, tmp_path_factory) -> Path:
    """The same policy exported claiming 20 Hz: reach runs at 10 Hz."""
    out = tmp_path_factory.mktemp("fast") / "reach20"
    return export_checkpoint(
        ExportConfig(checkpoint=str(checkpoint), out=str(out), control_rate_hz=20.0)
    )


def copy_bundle(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "bundle"))


def widen_action_bounds(bundle: Path) -> None:
    """What the issue did: action bounds edited to +-10 directly in policy.json."""
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    spec["features"]["action"]["low"] = [-10.0] * 4
    spec["features"]["action"]["high"] = [10.0] * 4
    (bundle / BUNDLE_FILE).write_text(json.dumps(spec, indent=2))


# ---------------------------------------------------------------------- metadata integrity
def test_export_records_a_hash_of_policy_json_that_survives_reformatting(bundle, tmp_path):
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    assert spec["format_version"] == 2 and len(spec[METADATA_HASH]) == 64
    copy = copy_bundle(bundle, tmp_path)
    # the hash covers the normalised content, not the file's whitespace or key order
    reordered = dict(reversed(list(spec.items())))
    (copy / BUNDLE_FILE).write_text(json.dumps(reordered, separators=(",", ":")))
    assert load_bundle(copy, runtime="onnxruntime").control_rate_hz == 10.0


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_edited_action_bounds_are_refused_by_every_runtime(bundle, tmp_path, runtime):
    copy = copy_bundle(bundle, tmp_path)
    widen_action_bounds(copy)
    with pytest.raises(BundleError, match=TAMPERED):
        load_bundle(copy, runtime=runtime)


def test_edited_control_rate_is_refused(bundle, tmp_path):
    copy = copy_bundle(bundle, tmp_path)
    spec = json.loads((copy / BUNDLE_FILE).read_text())
    spec["control_rate_hz"] = 30
    (copy / BUNDLE_FILE).write_text(json.dumps(spec))
    with pytest.raises(BundleError, match=TAMPERED):
        load_bundle(copy, runtime="onnxruntime")


def test_bundles_without_a_metadata_hash_are_refused_with_advice(bundle, tmp_path):
    copy = copy_bundle(bundle, tmp_path)
    spec = json.loads((copy / BUNDLE_FILE).read_text())
    del spec[METADATA_HASH]
    (copy / BUNDLE_FILE).write_text(json.dumps({**spec, "format_version": 1}))
    with pytest.raises(
        BundleError, match=r"format_version=1.*no SHA-256 of policy.json.*Re-export"
    ):
        load_bundle(copy, runtime="onnxruntime")
    (copy / BUNDLE_FILE).write_text(json.dumps(spec))
    with pytest.raises(BundleError, match=r"lacks its SHA-256 \(policy_sha256\).*re-export"):
        load_bundle(copy, runtime="onnxruntime")


def test_write_policy_json_is_the_legitimate_way_to_edit(bundle, tmp_path):
    copy = copy_bundle(bundle, tmp_path)
    spec = json.loads((copy / BUNDLE_FILE).read_text())
    spec["notes"] = "re-hashed through the one helper"
    write_policy_json(copy, spec)
    assert load_bundle(copy, runtime="onnxruntime").spec["notes"].startswith("re-hashed")


def test_policy_node_refuses_a_tampered_bundle(bundle, tmp_path):
    pytest.importorskip("rclpy")
    from ros_nodes.processes import NodeProcess, ros_environment

    copy = copy_bundle(bundle, tmp_path)
    widen_action_bounds(copy)
    node = NodeProcess(
        "policy_node",
        "ros_nodes.policy_node",
        {"bundle": str(copy), "runtime": "onnxruntime"},
        tmp_path,
        ros_environment(231),
    )
    node.start()
    try:
        node.process.wait(timeout=60)
    finally:
        node.stop(grace_s=2.0)
    assert node.process.returncode == 2, node.tail()
    assert "modified after export" in node.tail(50) and "BundleError" in node.tail(50)


# ---------------------------------------------------------------------- control rate
def test_evaluation_refuses_a_bundle_at_another_rate(fast_bundle, capsys):
    policy = load_bundle(fast_bundle, runtime="onnxruntime")
    with pytest.raises(ControlRateMismatchError, match=r"20 Hz but task 'reach'.* 10 Hz"):
        evaluate(policy, EvalConfig(task=REACH, episodes=1))
    code = main(["eval", f"bundle={fast_bundle}", "task=reach", "episodes=1", "num_envs=1"])
    err = capsys.readouterr().err
    assert code == 2 and "20 Hz" in err and "10 Hz" in err and "re-export" in err
    assert not (fast_bundle / "eval.json").exists()


def test_evaluation_refuses_a_checkpoint_at_another_rate(checkpoint, tmp_path):
    assert checkpoint_control_rate(checkpoint) == 10.0
    source = TorchPolicySource(Policy.load(checkpoint), control_rate_hz=20.0)
    with pytest.raises(ControlRateMismatchError, match="20 Hz"):
        evaluate(source, EvalConfig(task=REACH, episodes=1))
    same = TorchPolicySource(
        Policy.load(checkpoint), control_rate_hz=checkpoint_control_rate(checkpoint)
    )
    assert len(evaluate(same, EvalConfig(task=REACH, episodes=1)).successes) == 1


def test_deploy_refuses_rate_mismatches_before_starting_any_node(bundle, fast_bundle, tmp_path):
    pytest.importorskip("rclpy")
    from ros_nodes.deploy import DeployConfig, run_deploy

    with pytest.raises(ControlRateMismatchError, match=r"20 Hz.*task 'reach'.*10 Hz"):
        run_deploy(DeployConfig(bundle=str(fast_bundle), task=REACH, out=str(tmp_path / "a")))
    with pytest.raises(ControlRateMismatchError, match=r"10 Hz.*control_rate_hz=20.*20 Hz"):
        run_deploy(
            DeployConfig(
                bundle=str(bundle), task=REACH, out=str(tmp_path / "b"), control_rate_hz=20.0
            )
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no node started


def test_nodes_refuse_a_rate_other_than_the_bundles_or_the_tasks():
    pytest.importorskip("rclpy")
    from ros_nodes.policy_node import PolicyNodeConfig, control_rate
    from ros_nodes.sim_robot_node import SimRobotConfig, step_rate

    assert control_rate(PolicyNodeConfig(bundle="b"), 10.0) == 10.0
    with pytest.raises(ValueError, match=r"control_rate_hz:=20 differs from the bundle's .* 10 Hz"):
        control_rate(PolicyNodeConfig(bundle="b", control_rate_hz=20.0), 10.0)
    allowed = PolicyNodeConfig(bundle="b", control_rate_hz=20.0, allow_rate_mismatch=True)
    assert control_rate(allowed, 10.0) == 20.0
    assert step_rate(SimRobotConfig(task="reach"), 10.0) == 10.0
    with pytest.raises(ValueError, match=r"rate_hz:=20 differs from task 'reach'.* 10 Hz"):
        step_rate(SimRobotConfig(task="reach", rate_hz=20.0), 10.0)


# ---------------------------------------------------------------------- bundle info
def test_bundle_info_prints_topics_joint_names_bounds_and_rate(bundle, capsys):
    pytest.importorskip("sensor_msgs")
    assert main(["bundle", "info", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "verification: OK" in out and "control rate 10.0 Hz" in out
    assert "observation.state <- /robot/state (sensor_msgs/JointState, position" in out
    assert "observation.environment_state <- /robot/environment_state" in out
    assert "/policy/command (trajectory_msgs/JointTrajectory)" in out
    assert "ee_x [0.15, 0.85], ee_y [-0.45, 0.45]" in out and "target_z" in out
    assert "dx [-1, 1], dy [-1, 1]" in out
    assert "QoS observations: reliability=best_effort, durability=volatile" in out
    assert "status name 'policy_node'" in out and "stale_holds" in out

    assert main(["bundle", "info", str(bundle), "json=true"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is True and info["control_rate_hz"] == 10.0
    topics = {i["key"]: (i["topic"], i["names"]) for i in info["inputs"]}
    assert topics == {
        "observation.state": ("/robot/state", STATE),
        "observation.environment_state": ("/robot/environment_state", TARGET),
    }
    assert info["command"]["topic"] == "/policy/command"
    assert info["command"]["names"] == ACTION_NAMES
    assert info["command"]["low"] == [-1.0] * 4 and info["command"]["high"] == [1.0] * 4
    assert info["qos"]["command"] == {
        "reliability": "reliable",
        "durability": "volatile",
        "history": "keep_last",
        "depth": 10,
    }
    assert set(info["diagnostics"]["levels"]) == {"OK", "WARN", "ERROR"}


def test_bundle_info_flags_a_tampered_bundle(bundle, tmp_path, capsys):
    pytest.importorskip("sensor_msgs")
    copy = copy_bundle(bundle, tmp_path)
    widen_action_bounds(copy)
    started = time.monotonic()
    assert main(["bundle", "info", str(copy), "json=true"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is False and "modified after export" in info["verification"]
    assert info["command"]["high"] == [10.0] * 4  # shown as declared, flagged as unverified
    assert time.monotonic() - started < 10


def test_bundle_info_never_imports_torch_or_rclpy(bundle):
    import subprocess
    import sys

    code = (
        "import sys; from robot_learning.cli import main; "
        f"assert main(['bundle', 'info', {str(bundle)!r}]) == 0; "
        "assert 'torch' not in sys.modules and 'rclpy' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)
