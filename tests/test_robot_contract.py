"""One contract suite for every robot: simulated tasks as robots now, each driver's fake as it lands.

``ROBOT_CASES`` lists (id, robot settings, task); a new driver adds its fake here and inherits
every test below.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from hardware.build import make_robot, robot_config
from hardware.robot import ROBOTS, RobotError
from robot_learning.cli import main
from robot_learning.datasets.video import VideoEncoder
from robot_learning.envs import TaskConfig
from robot_learning.features import ACTION, OBS_PREFIX

#: a ROS domain of its own, so parallel test runs do not hear each other's fake arms
ROS_DOMAIN = random.SystemRandom().randint(1, 99)

ROBOT_CASES = [
    ("sim-lift", {"type": "sim"}, TaskConfig(name="lift")),
    (
        "sim-peg_insert-pixels",
        {"type": "sim"},
        TaskConfig(name="peg_insert", obs="pixels", image_size=16),
    ),
    ("sim-pusht", {"type": "sim"}, TaskConfig(name="pusht")),
    ("sim-reach-pybullet", {"type": "sim"}, TaskConfig(name="reach", backend="pybullet")),
    (
        "sim-lift+file-camera",
        {
            "type": "sim",
            "cameras": {
                "side": {"type": "file", "path": "{video}", "width": 32, "height": 24, "fps": 20}
            },
        },
        TaskConfig(name="lift"),
    ),
    (
        "ros2_control-fake-lift",
        {"type": "ros2_control", "fake": True, "domain_id": ROS_DOMAIN},
        TaskConfig(name="lift"),
    ),
    ("so101-fake", {"type": "so101", "fake": True}, None),
    ("so100-fake", {"type": "so100", "fake": True}, None),
    ("koch-fake", {"type": "koch", "fake": True}, None),
    ("ur-fake", {"type": "ur", "fake": True}, None),
    ("franka-fake", {"type": "franka", "fake": True}, None),
]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    """A short recording for the file-backed fake camera."""
    path = tmp_path_factory.mktemp("camera") / "side.mp4"
    encoder = VideoEncoder(path, fps=20, shape=(24, 32, 3))
    for i in range(10):
        encoder.add(np.full((24, 32, 3), 20 * i, np.uint8))
    encoder.close()
    return str(path)


def _with_video(value, video: str):
    if isinstance(value, dict):
        return {k: _with_video(v, video) for k, v in value.items()}
    return video if value == "{video}" else value


@pytest.fixture(params=ROBOT_CASES, ids=[c[0] for c in ROBOT_CASES])
def robot(request, tmp_path, video):
    _, settings, task = request.param
    settings = _with_video(settings, video)
    robot = make_robot({**settings, "calibration_dir": str(tmp_path / "calib")}, task)
    yield robot
    robot.disconnect()


def test_every_registered_robot_has_a_contract_case():
    covered = {settings["type"] for _, settings, _ in ROBOT_CASES}
    assert set(ROBOTS.names()) <= covered, "add the new robot's fake to ROBOT_CASES"


def test_features_declare_a_bounded_action_with_a_control_mode(robot):
    act = robot.features[ACTION]
    assert act.control_mode is not None
    assert act.low is not None and np.all(np.asarray(act.low) < np.asarray(act.high))
    assert all(k == ACTION or k.startswith(OBS_PREFIX) for k in robot.features)
    assert robot.control_hz > 0


def test_observations_match_the_features(robot):
    with pytest.raises(RobotError, match="not connected"):
        robot.get_observation()
    with robot:
        assert robot.is_connected
        obs = robot.get_observation()
        assert set(obs) == set(robot.features.observation_keys)
        for key, value in obs.items():
            feat = robot.features[key]
            assert value.shape == feat.shape, key
            assert value.dtype == (np.uint8 if feat.is_image else feat.numpy_dtype), key
    assert not robot.is_connected
    robot.disconnect()  # idempotent


def test_send_action_returns_what_was_sent_within_bounds(robot):
    act = robot.features[ACTION]
    low, high = np.asarray(act.low, np.float32), np.asarray(act.high, np.float32)
    with robot:
        middle = (low + high) / 2
        np.testing.assert_allclose(robot.send_action(middle), middle, atol=1e-6)
        sent = robot.send_action(high + 10 * (high - low))
        assert sent.shape == act.shape
        np.testing.assert_allclose(sent, high, atol=1e-6)
        first = robot.get_observation()
        robot.home()
        assert set(robot.get_observation()) == set(first)


def test_calibration_round_trips_and_a_corrupt_file_names_the_fix(robot):
    assert robot.load_calibration() is None
    path = robot.save_calibration({"offsets": [1, 2, 3]})
    assert path.name == "default.json" and path.parent.name == robot.name
    assert robot.load_calibration() == {"offsets": [1, 2, 3]}
    path.write_text("{not json")
    with pytest.raises(RobotError, match="robot calibrate robot="):
        robot.load_calibration()


def test_robot_settings_are_typed_and_checked():
    with pytest.raises(ValueError, match="robot.control_hz"):
        robot_config({"type": "sim", "control_hz": "fast"})
    with pytest.raises(ValueError, match="robot.id"):
        robot_config({"type": "sim", "id": "../x"})
    with pytest.raises(KeyError, match="Unknown robot 'nope'"):
        robot_config({"type": "nope"})
    with pytest.raises(RobotError, match="task=<name>"):
        make_robot("sim")
    with pytest.raises(RobotError, match="steps at 10 Hz"):
        make_robot({"type": "sim", "control_hz": 50.0}, TaskConfig(name="lift"))


def test_robot_check_reports_the_cameras(tmp_path, video):
    out = tmp_path / "check.json"
    cam = ["robot.cameras.side.type=file", f"robot.cameras.side.path={video}"]
    cam += ["robot.cameras.side.width=32", "robot.cameras.side.height=24"]
    assert main(["robot", "check", "robot=sim", "task=reach", "steps=3", f"out={out}", *cam]) == 0
    report = json.loads(out.read_text())
    assert report["features"]["observation.images.side"]["shape"] == [24, 32, 3]
    assert report["cameras"]["side"]["frames"] >= 1


def test_robot_cli_lists_checks_and_calibrates(tmp_path, capsys):
    assert main(["robot", "list"]) == 0
    assert "sim" in capsys.readouterr().out
    out = tmp_path / "check.json"
    args = ["robot=sim", "task=lift", "steps=5", f"out={out}", "robot.safety.max_delta=0.5"]
    assert main(["robot", "check", *args]) == 0
    report = json.loads(out.read_text())
    assert report["robot"] == "sim" and report["control_hz"] == 10
    assert report["limits"]["control_mode"] == "ee_delta_pos"
    low, high = (
        report["observed"]["observation.state"]["min"],
        report["observed"]["observation.state"]["max"],
    )
    assert len(low) == 11 and all(a <= b for a, b in zip(low, high, strict=True))
    assert report["safety_events"] == {}  # holds never need clipping
    assert main(["robot", "calibrate", "robot=sim", "task=lift"]) == 0
    assert "needs no calibration" in capsys.readouterr().out
    assert main(["robot", "check", "robot=sim"]) == 1
    assert "choose one with task=<name>" in capsys.readouterr().err
    assert main(["robot", "check", "robot=sim", "task=lift", "robot.safety.max_dleta=1"]) == 2
    assert "did you mean 'robot.safety.max_delta'" in capsys.readouterr().err
