"""Fault injection: a table of bad inputs and faults, each of which must end cleanly.

"Cleanly" means: the documented exit code, one ``error:`` line that names what is wrong (and no
Python traceback), nothing committed lost and no temporaries left behind. The table covers the
config, dataset, bundle, observation and file-system surfaces; every new input surface adds
rows here (BENCHMARKS.md reports the count).

File-system faults are real: the CLI runs in a child process whose file-size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored) makes writes fail with ``EFBIG`` part-way through,
as a full disk would, and a path through a regular file gives ``ENOTDIR``. (Permission bits do
not stop root, which CI runs as, so they are not used.)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from toy_policy import registered_one_thread, train_reach

from robot_learning.cli import main
from robot_learning.datasets import LeRobotDataset, validate_dataset

TESTS = Path(__file__).parent
#: a flow policy small enough to train a few steps in a second
TINY_FLOW = ("policy=flow", "policy.down_dims=[8,16]", "warmup_steps=1", "threads=1")


@pytest.fixture(scope="module", autouse=True)
def _toy_mlp():
    with registered_one_thread():
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A reach dataset, a trained toy checkpoint and its exported bundle (pristine copies)."""
    root = tmp_path_factory.mktemp("faults")
    final = train_reach(root)
    bundle = root / "bundle"
    assert main(["export", f"checkpoint={final}", f"out={bundle}"]) == 0
    return {"dataset": root / "demos", "checkpoint": final, "bundle": bundle}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """One bad input: ``make(world, tmp)`` -> CLI args; the outcome the CLI must produce."""

    name: str
    surface: str
    make: Callable[[dict[str, Path], Path], list[str]]
    exit_code: int
    says: tuple[str, ...]
    """Substrings the output must contain (case-insensitive)."""


def _tamper_fps(world, tmp):
    ds = _copy(world["dataset"], tmp / "ds")
    info = json.loads((ds / "meta/info.json").read_text())
    info["fps"] = 30
    (ds / "meta/info.json").write_text(json.dumps(info))
    return ["train", *TINY_FLOW, f"dataset={ds}", f"out={tmp / 'run'}", "steps=5"]


def _broken_info(world, tmp):
    ds = _copy(world["dataset"], tmp / "ds")
    (ds / "meta/info.json").write_text("{not json")
    return ["train", *TINY_FLOW, f"dataset={ds}", f"out={tmp / 'run'}", "steps=5"]


def _missing_parquet(world, tmp):
    ds = _copy(world["dataset"], tmp / "ds")
    next((ds / "data").rglob("*.parquet")).unlink()
    return ["dataset", "validate", str(ds)]


def _bundle_without(name):
    def make(world, tmp):
        bundle = _copy(world["bundle"], tmp / "b")
        (bundle / name).unlink()
        return ["eval", f"bundle={bundle}", "task=reach", "episodes=1"]

    return make


def _flipped_graph(world, tmp):
    bundle = _copy(world["bundle"], tmp / "b")
    graph = bundle / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    return ["eval", f"bundle={bundle}", "task=reach", "episodes=1"]


def _edited_policy_json(field, value):
    def make(world, tmp):
        bundle = _copy(world["bundle"], tmp / "b")
        spec = json.loads((bundle / "policy.json").read_text())
        target = spec
        *parents, leaf = field
        for key in parents:
            target = target[key]
        target[leaf] = value
        (bundle / "policy.json").write_text(json.dumps(spec, indent=2))
        return ["eval", f"bundle={bundle}", "task=reach", "episodes=1"]

    return make


def _bundle_at_rate(rate):
    def make(world, tmp):
        from robot_learning.runtime.bundle import write_policy_json

        bundle = _copy(world["bundle"], tmp / "b")
        spec = json.loads((bundle / "policy.json").read_text())
        spec["control_rate_hz"] = rate
        write_policy_json(bundle, spec)  # a consistent bundle, exported for another rate
        return ["eval", f"bundle={bundle}", "task=reach", "episodes=1"]

    return make


def _out_through_a_file(command):
    def make(world, tmp):
        blocker = tmp / "a_file"
        blocker.write_text("not a folder")
        out = blocker / "sub"
        if command == "collect":
            return ["collect", "task=reach", "episodes=1", f"out={out}"]
        if command == "export":
            return ["export", f"checkpoint={world['checkpoint']}", f"out={out}"]
        if command == "eval":
            return ["eval", f"checkpoint={world['checkpoint']}", "episodes=1", f"out={out}"]
        return ["train", *TINY_FLOW, f"dataset={world['dataset']}", f"out={out}", "steps=5"]

    return make


CASES = [
    Case("unknown command", "config", lambda w, t: ["frobnicate"], 2, ("frobnicate",)),
    Case(
        "unknown task", "config", lambda w, t: ["collect", "task=nope", f"out={t}/d"], 2, ("nope",)
    ),
    Case(
        "zero episodes",
        "config",
        lambda w, t: ["collect", "task=reach", "episodes=0", f"out={t}/d"],
        2,
        ("episodes",),
    ),
    Case(
        "missing checkpoint",
        "config",
        lambda w, t: ["eval", f"checkpoint={t}/nothing", "task=reach"],
        2,
        ("nothing",),
    ),
    Case(
        "missing dataset",
        "dataset",
        lambda w, t: ["train", *TINY_FLOW, f"dataset={t}/none", f"out={t}/r"],
        2,
        ("none",),
    ),
    Case("info.json not JSON", "dataset", _broken_info, 2, ("info.json",)),
    Case("fps disagrees with timestamps", "dataset", _tamper_fps, 2, ("fps=30", "fix-fps")),
    Case("data file missing", "dataset", _missing_parquet, 1, (".parquet",)),
    Case("bundle without graph", "bundle", _bundle_without("model.onnx"), 2, ("model.onnx",)),
    Case(
        "bundle without policy.json", "bundle", _bundle_without("policy.json"), 2, ("policy.json",)
    ),
    Case("bundle graph byte flipped", "bundle", _flipped_graph, 2, ("model.onnx",)),
    Case(
        "bundle is a dataset folder",
        "bundle",
        lambda w, t: ["eval", f"bundle={w['dataset']}", "task=reach"],
        2,
        ("policy.json",),
    ),
    Case(
        "policy.json action bounds widened",
        "bundle",
        _edited_policy_json(("features", "action", "high"), [10.0] * 4),
        2,
        ("modified after export",),
    ),
    Case(
        "policy.json control rate edited",
        "bundle",
        _edited_policy_json(("control_rate_hz",), 50),
        2,
        ("modified after export",),
    ),
    Case("bundle at another control rate", "bundle", _bundle_at_rate(20), 2, ("20", "10 hz")),
    Case(
        "teleop unknown device",
        "teleop",
        lambda w, t: ["teleop", "task=reach", "device=nope", f"out={t}/d", "episodes=1"],
        2,
        ("nope", "expert"),
    ),
    Case(
        "teleop keyboard without a terminal",
        "teleop",
        lambda w, t: ["teleop", "task=reach", "device=keyboard", f"out={t}/d", "episodes=1"],
        2,
        ("not a tty", "device=browser"),
    ),
    Case(
        "teleop gamepad with none connected",
        "teleop",
        lambda w, t: ["teleop", "task=reach", "device=gamepad", f"out={t}/d", "episodes=1"],
        2,
        ("gamepad",),
    ),
    Case(
        "teleop unknown device option",
        "teleop",
        lambda w, t: [
            "teleop",
            "task=reach",
            "device=expert",
            "device.reaction_stpes=1",
            f"out={t}/d",
        ],
        2,
        ("reaction_stpes",),
    ),
    *(
        Case(f"{cmd} out= through a file", "filesystem", _out_through_a_file(cmd), 2, ("a_file",))
        for cmd in ("collect", "train", "export", "eval")
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_ends_cleanly(case, world, tmp_path, capsys, monkeypatch):
    args = case.make(world, tmp_path)
    with open(os.devnull) as no_terminal:  # as in CI
        monkeypatch.setattr("sys.stdin", no_terminal)
        code = main(args)
    out = capsys.readouterr()
    text = (out.out + out.err).lower()
    assert code == case.exit_code, f"{args}: exit {code}\n{out.out}\n{out.err}"
    assert "traceback" not in text
    if case.surface == "teleop":  # a device that cannot start leaves no dataset behind
        assert not (tmp_path / "d").exists()
    for expected in case.says:
        assert expected.lower() in text, f"{args}: {expected!r} not in\n{out.out}\n{out.err}"


def test_table_covers_every_surface():
    assert {c.surface for c in CASES} >= {"config", "dataset", "bundle", "filesystem"}
    assert len(ROS_CASES) >= 5  # ROS messages: the rows of test_policy_node_decoding_rejects_...


# --------------------------------------------------------------------------- real write failures
def _limited(max_bytes: int) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited across exec: EFBIG, not death
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def _cli_with_file_limit(args: list[str], max_bytes: int) -> subprocess.CompletedProcess:
    """Run the CLI (with ``toy_mlp`` registered) in a child whose files cannot grow past ``max_bytes``."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import toy_policy; toy_policy.register(); "
        "from robot_learning.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, str(TESTS), *args],
        preexec_fn=_limited(max_bytes),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _one_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return errors[0]


def test_collect_on_a_full_disk_keeps_committed_episodes_and_says_so(tmp_path):
    out = tmp_path / "d"
    proc = _cli_with_file_limit(["collect", "task=reach", "episodes=50", f"out={out}"], 6_000)
    line = _one_clean_error(proc, "File too large", str(out))
    assert "disk" in line or "limit" in line
    report = json.loads((out / "collect.json").read_text())
    assert report["interrupted"] is True
    assert "File too large" in report["error"]
    assert report["episodes"] < 50
    assert validate_dataset(out) == []  # whatever was committed is intact
    assert LeRobotDataset(out).num_episodes == report["episodes"]
    assert not list(out.glob(".staging/*"))


def test_train_checkpoint_write_failure_leaves_no_temporaries(world, tmp_path):
    out = tmp_path / "run"
    args = ["train", *TINY_FLOW, f"dataset={world['dataset']}", f"out={out}"]
    args += ["steps=4", "save_every=2"]
    proc = _cli_with_file_limit(args, 30_000)
    _one_clean_error(proc, "File too large", str(out / "checkpoints"))
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    summary = json.loads((out / "train.json").read_text())  # the failure is on record
    assert summary["stopped"] == "error" and "File too large" in summary["error"]
    assert summary["final"] is None


def test_export_write_failure_leaves_nothing(world, tmp_path):
    out = tmp_path / "bundle"
    proc = _cli_with_file_limit(
        ["export", f"checkpoint={world['checkpoint']}", f"out={out}"], 8_000
    )
    _one_clean_error(proc, "File too large")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


# --------------------------------------------------------------------------- resume semantics
def test_collect_resume_counts_the_whole_dataset(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["collect", "task=reach", "episodes=2", f"out={out}"]) == 0
    assert main(["collect", "task=reach", "episodes=3", f"out={out}", "resume=true"]) == 0
    report = json.loads((out / "collect.json").read_text())
    assert LeRobotDataset(out).num_episodes == 3  # episodes= is the size, as steps= is for train
    assert report["episodes"] == 3 and report["this_run"]["episodes"] == 1
    assert report["frames"] == LeRobotDataset(out).num_frames
    assert report["attempts"] == 3
    # asking for what is already there collects nothing and is not a failure
    assert main(["collect", "task=reach", "episodes=3", f"out={out}", "resume=true"]) == 0
    assert LeRobotDataset(out).num_episodes == 3
    assert json.loads((out / "collect.json").read_text())["episodes"] == 3


def test_fix_fps_repairs_a_dataset_train_refused(world, tmp_path, capsys):
    from robot_learning.datasets.timing import check_timing

    args = _tamper_fps(world, tmp_path)
    ds = tmp_path / "ds"
    assert main(args) == 2
    assert main(["dataset", "validate", str(ds)]) == 1
    capsys.readouterr()
    assert main(["dataset", "fix-fps", str(ds)]) == 0
    assert "fps 30 -> 10" in capsys.readouterr().out
    check_timing(LeRobotDataset(ds))  # no longer raises
    assert main(["dataset", "validate", str(ds)]) == 0
    assert np.isclose(LeRobotDataset(ds).fps, 10)


def test_finetune_checkpoint_write_failure_is_recorded(tmp_path):
    out = tmp_path / "rl"
    args = ["finetune", "algo=td3", "task=reach", "task.max_episode_steps=20", f"out={out}"]
    args += ["env_steps=60", "warmup_steps=20", "batch_size=8", "algo.hidden=[16,16]"]
    args += ["eval_episodes=1", "buffer_size=20000", "threads=1", "save_every=40"]
    proc = _cli_with_file_limit(args, 40_000)  # the replay buffer outgrows it
    _one_clean_error(proc, "File too large", str(out / "checkpoints"))
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["stopped"] == "error" and "File too large" in summary["error"]


# --------------------------------------------------------------------------- ROS messages
def _joint_state_cases():
    """(name, build(names, good values) -> JointState, expected rejection substring or None)."""
    from ros_nodes.conversions import state_to_joint_state

    def msg(names, values):
        return state_to_joint_state(values, names, stamp_ns=1)

    def with_value(i, v):
        def build(names, good):
            bad = good.copy()
            bad[i] = v
            return msg(names, bad)

        return build

    def missing_joint(names, good):
        return msg(names[1:], good[1:])

    def length_mismatch(names, good):
        m = msg(names, good)
        m.position = list(m.position[:-1])
        return m

    def shuffled_with_extras(names, good):  # selected by name: accepted
        order = list(range(len(names)))[::-1]
        return msg([names[i] for i in order] + ["extra_joint"], [*good[order], 0.0])

    return [
        ("NaN position", with_value(0, float("nan")), "nan"),
        ("1e6 position", with_value(0, 1e6), "bound"),
        ("-1e6 last element", with_value(-1, -1e6), "bound"),
        ("missing joint", missing_joint, "lacks joints"),
        ("names/positions length mismatch", length_mismatch, "positions"),
        ("shuffled order with an extra joint", shuffled_with_extras, None),
    ]


ROS_CASES = _joint_state_cases()


@pytest.mark.parametrize(("name", "build", "says"), ROS_CASES, ids=[c[0] for c in ROS_CASES])
def test_policy_node_decoding_rejects_bad_joint_states(world, name, build, says):
    """The node's decode + check path on real ``sensor_msgs/JointState`` messages."""
    from robot_learning.envs import make_env
    from robot_learning.runtime import load_bundle
    from ros_nodes.control import PolicyController
    from ros_nodes.conversions import ConversionError, element_names, joint_state_to_state

    policy = load_bundle(world["bundle"], runtime="onnxruntime")
    controller = PolicyController(policy, period_s=0.1, stale_after_s=1.0)
    env = make_env("reach")
    obs, _ = env.reset(seed=3)
    env.close()
    key = "observation.state"
    names = element_names(key, policy.features[key])
    try:
        value = joint_state_to_state(build(list(names), np.asarray(obs[key], np.float64)), names)
        reason = controller.offer(key, value, 1, 0.0)
    except ConversionError as exc:
        reason = str(exc)
    if says is None:
        assert reason is None
        assert np.allclose(controller.latest[key].value, obs[key])
    else:
        assert reason is not None and says in reason.lower(), reason
        assert key not in controller.latest  # nothing unusable is kept for the policy
