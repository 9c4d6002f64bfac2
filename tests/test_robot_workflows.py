"""``collect``, ``teleop`` and ``eval`` with ``robot=``: the same commands on a robot as on a task."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from robot_learning.cli import main


def _actions(root) -> np.ndarray:
    files = sorted(root.glob("data/*/*.parquet"))
    return np.concatenate([np.array(pq.read_table(f).to_pydict()["action"]) for f in files])


def test_collect_on_the_sim_robot_records_the_simulators_episodes(tmp_path):
    args = ["task=reach", "episodes=2"]
    assert main(["collect", *args, "robot=sim", f"out={tmp_path / 'robot'}"]) == 0
    assert main(["collect", *args, f"out={tmp_path / 'task'}"]) == 0
    np.testing.assert_array_equal(_actions(tmp_path / "robot"), _actions(tmp_path / "task"))
    info = json.loads((tmp_path / "robot" / "meta" / "info.json").read_text())
    assert info["robot_type"] == "franka_panda"


def test_collect_refuses_a_robot_without_privileged_state_before_writing(tmp_path, capsys):
    out = tmp_path / "arm"
    assert main(["collect", "task=reach", "robot=so101", "robot.fake=true", f"out={out}"]) == 1
    assert "teleop device=" in capsys.readouterr().err
    assert not out.exists()


def test_teleop_records_a_servo_arm_driven_by_its_leader_arm(tmp_path):
    out = tmp_path / "so101"
    args = ["task=reach", "robot=so101", "robot.fake=true", "device=so101_leader"]
    args += ["device.fake=true", "episodes=1", "realtime=false", f"out={out}"]
    assert main(["teleop", *args]) == 0
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["features"]["action"]["names"][0] == "shoulder_pan"
    assert info["robot_type"] == "so101" and info["total_frames"] == 50
    actions = _actions(out)
    assert actions.shape == (50, 6) and np.all(np.isfinite(actions))
