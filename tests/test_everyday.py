"""Everyday use: one truth per number, deep validation from the CLI, clean interpreter exit, run estimates."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from robot_learning.cli import main
from robot_learning.training.progress import RunEstimate


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("everyday") / "reach"
    assert main(["collect", "task=reach", "episodes=3", f"out={out}"]) == 0
    return out


def test_final_loss_is_one_number(reach_demos, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "policy=flow", "policy.down_dims=[8,16]", f"dataset={reach_demos}"]
    args += [f"out={out}", "steps=12", "log_every=5", "threads=1"]
    assert main(args) == 0
    line = capsys.readouterr().out
    printed = float(re.search(r"final loss ([0-9.]+)", line).group(1))
    summary = json.loads((out / "train.json").read_text())
    assert printed == pytest.approx(summary["final_loss"], abs=5e-5)
    assert f"mean of the last {summary['final_loss_window']} steps" in " ".join(line.split())


def test_dataset_validate_deep_decodes_video(tmp_path, capsys):
    out = tmp_path / "px"
    assert (
        main(
            [
                "collect",
                "task=reach",
                "obs=pixels",
                "task.image_size=32",
                "episodes=1",
                f"out={out}",
            ]
        )
        == 0
    )
    video = next(out.rglob("*.mp4"))
    data = bytearray(video.read_bytes())
    mdat = data.find(b"mdat")  # zero the coded frames; the index (moov) still lists every packet
    size = int.from_bytes(data[mdat - 4 : mdat], "big")
    data[mdat + 4 : mdat - 4 + size] = bytes(size - 8)
    video.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["dataset", "validate", str(out)]) == 0  # the cheap check counts frames only
    assert main(["dataset", "validate", str(out), "deep=true"]) == 1
    assert ".mp4" in capsys.readouterr().out
    assert main(["dataset", "validate", str(out), "deep=maybe"]) == 2


def test_readme_make_env_snippet_exits_cleanly():
    snippet = (
        "from robot_learning.envs import make_env, make_expert\n"
        "env = make_env('lift', obs='pixels', image_size=32)\n"
        "expert = make_expert(env)\n"
        "obs, info = env.reset(seed=0)\n"
        "env.step(expert.act(obs))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr


def test_run_estimate_points_long_cpu_runs_to_the_cpu_recipe(monkeypatch):
    clock = iter([0.0, 100.0, 100.0])
    monkeypatch.setattr("robot_learning.training.progress.time.monotonic", lambda: next(clock))
    estimate = RunEstimate(total=20_000, start=0, device="cpu", probe_steps=10)
    assert estimate.check(1) is None  # the first step is not timed
    message = estimate.check(11)  # 10 steps in 100 s: 0.1 steps/s
    assert "0.10 steps/s" in message and "55.5 h" in message and "recipe=cpu" in message
    assert estimate.check(12) is None  # said once
    short = RunEstimate(total=50, start=0, device="cpu", probe_steps=2)
    clock2 = iter([0.0, 1.0])
    monkeypatch.setattr("robot_learning.training.progress.time.monotonic", lambda: next(clock2))
    short.check(1)
    assert "recipe=cpu" not in short.check(3)


def _lerobot_schema(root):
    """Strip what LeRobot's info.json features cannot carry (bounds, control mode)."""
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    for entry in info["features"].values():
        for key in ("low", "high", "control_mode"):
            entry.pop(key, None)
    path.write_text(json.dumps(info, indent=4))


def test_lerobot_schema_dataset_trains_and_evaluates_on_our_task(tmp_path, capsys):
    from robot_learning.datasets import LeRobotDataset, validate_dataset
    from robot_learning.envs import make_env
    from robot_learning.policy import Policy

    data = tmp_path / "lerobot_lift"
    assert (
        main(["collect", "task=lift", "episodes=2", "task.max_episode_steps=30", f"out={data}"])
        == 0
    )
    _lerobot_schema(data)
    assert LeRobotDataset(data).features["action"].control_mode is None
    tiny = ["policy=flow", "policy.down_dims=[8,16]", "steps=3", "threads=1"]
    # with task=: bounds and control mode come from the task, and the run says so
    assert (
        main(
            [
                "train",
                *tiny,
                f"dataset={data}",
                f"out={tmp_path / 'a'}",
                "task=lift",
                "eval_every=0",
            ]
        )
        == 0
    )
    assert "set-spec" in capsys.readouterr().err
    trained = Policy.load(tmp_path / "a" / "final")
    env = make_env("lift")
    assert trained.features["action"] == env.features["action"]
    # without task=: the checkpoint lacks them, and eval on the task still runs
    assert main(["train", *tiny, f"dataset={data}", f"out={tmp_path / 'b'}"]) == 0
    args = [
        "eval",
        f"checkpoint={tmp_path / 'b' / 'final'}",
        "task=lift",
        "episodes=1",
        "num_envs=1",
    ]
    args.append("task.max_episode_steps=5")
    assert main(args) == 0
    # the documented fix stores them in the dataset, in a form LeRobot's loader reads
    capsys.readouterr()
    before = json.loads((data / "meta" / "info.json").read_text())
    assert main(["dataset", "set-spec", str(data), "task=lift"]) == 0
    assert "action: control_mode, high, low" in capsys.readouterr().out
    info = json.loads((data / "meta" / "info.json").read_text())
    assert {k: v for k, v in info.items() if k != "features"} == {
        k: v for k, v in before.items() if k != "features"
    }
    assert list(info["features"]) == list(before["features"])
    for key, entry in info[
        "features"
    ].items():  # what LeRobot reads is untouched; only extras added
        old = before["features"][key]
        assert {k: entry[k] for k in old if k != "names"} == {
            k: v for k, v in old.items() if k != "names"
        }
        assert set(entry) - set(old) <= {"low", "high", "control_mode"}
        assert isinstance(entry["dtype"], str) and isinstance(entry["shape"], list), key
    assert info["codebase_version"] == "v3.0" and isinstance(info["fps"], int)
    assert validate_dataset(data) == []
    assert (
        LeRobotDataset(data).features.diff(env.features, keys=["action", "observation.state"]) == []
    )
    assert main(["dataset", "set-spec", str(data), "task=lift"]) == 0  # idempotent
    assert "already carries" in capsys.readouterr().out
    assert (
        main(["dataset", "set-spec", str(data), "task=reach"]) == 2
    )  # another task's spec: refused
