"""The safety layer: each limit clips and logs, the watchdog holds, the e-stop latches until
reset, NaN commands never reach a driver, and the ROS 2 policy node runs the same filter."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from hardware.build import make_robot
from hardware.robot import Robot, RobotConfig, RobotError
from hardware.safe_robot import SafeRobot
from hardware.safety import SafetyConfig, SafetyFilter
from robot_learning.envs import TaskConfig
from robot_learning.features import Feature, FeatureSpec

JOINTS = ("j1", "j2", "gripper")
JOINT_SPEC = FeatureSpec(
    {
        "observation.state": Feature("float32", (3,), JOINTS),
        "action": Feature(
            "float32",
            (3,),
            JOINTS,
            low=(-1.0, -2.0, 0.0),
            high=(1.0, 2.0, 1.0),
            control_mode="joint_pos",
        ),
    }
)


class RecordingArm(Robot):
    """A real-time two-joint arm that records every command its driver receives (the boundary
    the safety layer must protect) and reports the last commanded joints as its state."""

    name = "recording_arm"

    def __init__(self, cfg: RobotConfig) -> None:
        super().__init__(cfg)
        self.features, self.control_hz = JOINT_SPEC, 20.0
        self.sent: list[np.ndarray] = []
        self.state = np.array([0.1, -0.2, 0.5], np.float32)

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def get_observation(self) -> dict[str, np.ndarray]:
        return {"observation.state": self.state.copy()}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        assert np.all(np.isfinite(action)), "a non-finite command reached the driver"
        self.sent.append(np.array(action, copy=True))
        self.state = np.array(action, np.float32)
        return self.sent[-1]

    def forward_kinematics(self, joints: np.ndarray) -> np.ndarray:
        """A planar two-link arm (links 0.5 m) at 0.3 m height."""
        a, b = float(joints[0]), float(joints[0] + joints[1])
        return np.array([0.5 * np.cos(a) + 0.5 * np.cos(b), 0.5 * np.sin(a) + 0.5 * np.sin(b), 0.3])


def _arm(tmp_path=None, **safety) -> SafeRobot:
    log = str(tmp_path / "safety.jsonl") if tmp_path is not None else None
    cfg = RobotConfig(type="recording_arm", safety=SafetyConfig(log_path=log, **safety))
    return SafeRobot(RecordingArm(cfg))


def test_nan_and_wrong_size_commands_never_reach_the_driver():
    with _arm() as arm:
        arm.get_observation()
        for bad in ([np.nan, 0.0, 0.5], [0.0, np.inf, 0.5], [0.0, 0.0]):
            sent = arm.send_action(np.array(bad))
            np.testing.assert_allclose(sent, arm.robot.state)
        np.testing.assert_allclose(arm.robot.sent[0], [0.1, -0.2, 0.5], atol=1e-6)  # held in place
        assert arm.log.counts["nonfinite"] == 3
        assert "NaN/Inf in j1" in arm.log.recent[0].detail


@pytest.mark.parametrize(
    "safety, command, expect, reason",
    [
        ({}, [3.0, 0.0, 0.5], [1.0, 0.0, 0.5], "joint_position"),
        ({"max_delta": 0.1}, [0.6, -0.2, 0.5], [0.2, -0.2, 0.5], "max_delta"),
        ({"max_joint_velocity": 2.0}, [0.1, 0.8, 0.9], [0.1, -0.1, 0.9], "joint_velocity"),
    ],
)
def test_each_joint_limit_clips_and_logs(tmp_path, safety, command, expect, reason):
    with _arm(tmp_path, **safety) as arm:
        arm.get_observation()
        arm.send_action(np.array([0.1, -0.2, 0.5]))  # the previous command for max_delta
        sent = arm.send_action(np.array(command))
        np.testing.assert_allclose(sent, expect, atol=1e-6)
        np.testing.assert_allclose(arm.robot.sent[-1], expect, atol=1e-6)
        assert list(arm.log.counts) == [reason]
    lines = [json.loads(x) for x in (tmp_path / "safety.jsonl").read_text().splitlines()]
    assert lines[-1]["reason"] == reason and lines[-1]["requested"] == command


def test_joint_workspace_box_holds_a_target_outside_it():
    box = {"workspace_low": (0.2, -0.5, 0.0), "workspace_high": (1.1, 0.5, 0.5)}
    with _arm(**box) as arm:
        arm.get_observation()
        inside = arm.send_action(np.array([0.0, 0.3, 0.5]))
        np.testing.assert_allclose(inside, [0.0, 0.3, 0.5], atol=1e-6)
        arm.get_observation()
        outside = arm.send_action(np.array([1.0, 1.5, 0.5]))  # the hand swings behind x=0.2
        np.testing.assert_allclose(outside, [0.0, 0.3, 0.5], atol=1e-6)
        assert arm.log.counts["workspace"] == 1


def test_cartesian_workspace_box_clips_the_delta_on_a_simulated_arm():
    low, high = [0.3, -0.3, 0.0], [0.7, 0.3, 0.33]  # the lift start is ~0.295 m high
    robot = make_robot(
        {"type": "sim", "safety": {"workspace_low": low, "workspace_high": high}},
        TaskConfig(name="lift"),
    )
    with robot:
        for _ in range(6):
            obs = robot.get_observation()
            sent = robot.send_action(np.array([0.0, 0.0, 1.0, -1.0]))
        ee = robot.get_observation()["observation.state"][:3]
        assert ee[2] <= high[2] + 0.01 and robot.log.counts["workspace"] >= 1
        assert sent[2] < 1.0 and obs is not None


class NoModelArm(RecordingArm):
    forward_kinematics = Robot.forward_kinematics  # no description of the arm


def test_workspace_box_without_a_model_is_refused_at_connect():
    box = SafetyConfig(workspace_low=(0, 0, 0), workspace_high=(1, 1, 1))
    arm = SafeRobot(NoModelArm(RobotConfig(safety=box)))
    with pytest.raises(ValueError, match="no forward kinematics"):
        arm.connect()
    assert not arm.robot.is_connected
    with pytest.raises(ValueError, match="workspace_low and workspace_high go together"):
        SafetyConfig(workspace_low=(0, 0, 0))


def test_hold_keeps_the_joints_where_they_are_and_deltas_at_zero():
    joints = SafetyFilter(JOINT_SPEC, SafetyConfig(), 20.0)
    held = joints.hold({"observation.state": np.array([0.3, 0.2, 0.9])})
    np.testing.assert_allclose(held, [0.3, 0.2, 0.9], atol=1e-6)
    with pytest.raises(RuntimeError, match="cannot hold"):
        joints.hold(None)
    robot = make_robot("sim", TaskConfig(name="reach"))
    with robot:
        robot.send_action(np.array([0.5, 0.5, 0.5, -1.0]))
        np.testing.assert_allclose(robot.filter.hold(), [0.0, 0.0, 0.0, -1.0])  # gripper kept


def test_watchdog_holds_when_commands_stop():
    with _arm(watchdog_s=0.1) as arm:
        arm.get_observation()
        arm.send_action(np.array([0.4, 0.1, 0.5]))
        time.sleep(0.5)
        assert arm.log.counts["watchdog"] == 1  # one hold per silence, not one per check
        np.testing.assert_allclose(arm.robot.sent[-1], [0.4, 0.1, 0.5], atol=1e-6)
        assert len(arm.robot.sent) == 2
        arm.send_action(np.array([0.5, 0.1, 0.5]))
        time.sleep(0.5)
        assert arm.log.counts["watchdog"] == 2


def test_no_watchdog_on_a_simulator_that_waits_for_commands():
    robot = make_robot({"type": "sim", "safety": {"watchdog_s": 0.05}}, TaskConfig(name="reach"))
    with robot:
        time.sleep(0.3)
        assert robot.log.counts["watchdog"] == 0 and robot._watchdog is None


def test_estop_latches_until_reset():
    with _arm() as arm:
        arm.get_observation()
        arm.send_action(np.array([0.3, 0.0, 0.5]))
        arm.estop("operator pressed the button")
        for _ in range(3):
            held = arm.send_action(np.array([0.9, 1.5, 0.0]))
            np.testing.assert_allclose(held, [0.3, 0.0, 0.5], atol=1e-6)
        with pytest.raises(RobotError, match="reset_estop"):
            arm.home()
        assert arm.log.counts["estop"] == 1 and arm.log.counts["estop_hold"] == 3
        arm.reset_estop()
        np.testing.assert_allclose(arm.send_action(np.array([0.4, 0.0, 0.5])), [0.4, 0.0, 0.5])


def test_bad_safety_settings_name_the_setting():
    with pytest.raises(ValueError, match="max_delta=0.0 must be positive"):
        SafetyConfig(max_delta=0.0)
    with pytest.raises(ValueError, match="low < high"):
        SafetyConfig(workspace_low=(0, 0, 1), workspace_high=(1, 1, 0))


def test_policy_node_safety_parameter_is_checked():
    from ros_nodes.policy_node import PolicyNodeConfig, safety_filter

    features = JOINT_SPEC
    assert safety_filter(PolicyNodeConfig(bundle="b"), features, 20.0) is None
    built = safety_filter(PolicyNodeConfig(bundle="b", safety='{"max_delta": 0.2}'), features, 20.0)
    assert built.cfg.max_delta == 0.2
    with pytest.raises(ValueError, match="is not JSON"):
        safety_filter(PolicyNodeConfig(bundle="b", safety="{max_delta"), features, 20.0)
    with pytest.raises(ValueError, match="safety.max_dleta"):
        safety_filter(PolicyNodeConfig(bundle="b", safety='{"max_dleta": 1}'), features, 20.0)
