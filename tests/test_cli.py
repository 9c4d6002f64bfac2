"""End to end through the console entry point: collect -> validate -> info -> visualize, bench."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from robot_learning.cli import main
from robot_learning.datasets import LeRobotDataset, validate_dataset


def test_collect_validate_info_visualize(tmp_path, capsys):
    out = tmp_path / "reach"
    assert main(["collect", "task=reach", "episodes=3", f"out={out}", "seed=5"]) == 0
    printed = capsys.readouterr().out
    assert "success rate" in printed
    report = json.loads((out / "collect.json").read_text())
    assert report["episodes"] == 3 and report["attempts"] == 3
    assert 0.0 <= report["success_rate"] <= 1.0
    assert report["successes"] == report["attempt_successes"]
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 3 and ds.num_frames == report["frames"]
    assert ds.info["robot_type"] == "franka_panda"
    assert {"observation.state", "observation.environment_state", "action", "next.reward"} <= set(
        ds.features
    )
    assert validate_dataset(out) == []
    assert main(["dataset", "validate", str(out)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["dataset", "info", str(out), "json=true"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 3
    sheet = tmp_path / "sheet.png"
    assert main(["dataset", "visualize", str(out), f"out={sheet}"]) == 0
    assert sheet.stat().st_size > 0


def test_collect_only_success_pixels_resume(tmp_path):
    out = tmp_path / "lift_px"
    args = [
        "collect",
        "task=lift",
        "obs=pixels",
        "task.image_size=32",
        "only_success=true",
        f"out={out}",
    ]
    assert main([*args, "episodes=1"]) == 0
    assert main([*args, "episodes=2", "resume=true"]) == 0  # episodes= is the total
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 2
    assert ds.features["observation.images.wrist"].shape == (32, 32, 3)
    ep = ds.episode(1)
    assert ep["observation.images.front"].shape[1:] == (32, 32, 3)
    assert bool(ep["next.success"][-1].item())  # only successful episodes kept


def test_validate_reports_problems_with_exit_code(tmp_path, capsys):
    out = tmp_path / "reach"
    assert main(["collect", "task=reach", "episodes=1", f"out={out}"]) == 0
    (out / "meta" / "info.json").write_text("{not json")
    assert main(["dataset", "validate", str(out)]) == 1
    assert "info.json" in capsys.readouterr().out


def test_killed_collector_leaves_valid_dataset(tmp_path):
    """SIGKILL the CLI mid-run: every committed episode survives and the dataset validates."""
    out = tmp_path / "killed"
    env = {**os.environ, "MUJOCO_GL": "osmesa"}
    cmd = [
        sys.executable,
        "-m",
        "robot_learning.cli",
        "collect",
        "task=reach",
        "obs=pixels",
        "task.image_size=32",
        "episodes=200",
        f"out={out}",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = out / "meta" / "info.json"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if info.exists() and json.loads(info.read_text()).get("total_episodes", 0) >= 2:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("collector never committed 2 episodes")
        time.sleep(0.3)  # land somewhere inside a later episode or commit
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert validate_dataset(out) == []
    ds = LeRobotDataset(out)
    assert ds.num_episodes >= 2
    assert sum(ds.episode_lengths) == ds.num_frames
    assert (
        len(ds.episode(ds.num_episodes - 1)["observation.images.front"]) == ds.episode_lengths[-1]
    )


def test_bench_sim_writes_json(tmp_path):
    out = tmp_path / "bench"
    args = [
        "bench",
        "sim",
        "tasks=[reach]",
        "backends=[mujoco]",
        "obs_modes=[state]",
        "state_steps=20",
        f"out={out}",
    ]
    assert main(args) == 0
    result = json.loads((Path(out) / "bench.json").read_text())
    (row,) = result["results"]
    assert (
        row["task"] == "reach" and row["steps_per_s_single"] > 0 and row["steps_per_s_vector_2"] > 0
    )
