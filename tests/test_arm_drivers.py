"""UR (ur_rtde) and Franka (franky) drivers at the SDK boundary.

The SDKs are replaced by the recording fakes in ``hardware/robots/fakes`` (``robot.fake=true``),
so every assertion is on the vendor call the driver made. Where the real ``franky`` is installed
its connection error is checked for real, and where ``franky-sim`` (a libfranka protocol server)
is installed the Franka driver also drives it over loopback. The shared contract suite
(``tests/test_robot_contract.py``) runs on both fakes.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
import test_robot_contract as contract

from hardware.build import make_robot, robot_config
from hardware.robot import RobotError
from hardware.robots import franka, ur  # noqa: F401 (registers robot=ur and robot=franka)
from hardware.robots.fakes import franky as fake_franky
from hardware.robots.fakes import ur_rtde as fake_ur
from robot_learning.config import ConfigError

ARM_CASES = [
    ("ur-fake", {"type": "ur", "fake": True}),
    ("franka-fake", {"type": "franka", "fake": True}),
]


@pytest.fixture(autouse=True)
def fresh_fakes():
    """Every test starts with new fake controllers and nothing refusing connections."""
    for mod in (fake_ur, fake_franky):
        mod.ARMS.clear()
        mod.REFUSE.clear()
    yield
    for mod in (fake_ur, fake_franky):
        mod.ARMS.clear()
        mod.REFUSE.clear()


def build(tmp_path, safe: bool = False, **settings):
    """A driver (not connected) with calibration under ``tmp_path``."""
    return make_robot({"calibration_dir": str(tmp_path / "calib"), **settings}, safe=safe)


# --------------------------------------------------------------------------- contract
CONTRACT_CHECKS = [
    contract.test_features_declare_a_bounded_action_with_a_control_mode,
    contract.test_observations_match_the_features,
    contract.test_send_action_returns_what_was_sent_within_bounds,
    contract.test_calibration_round_trips_and_a_corrupt_file_names_the_fix,
]


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda f: f.__name__[5:])
@pytest.mark.parametrize("settings", [c[1] for c in ARM_CASES], ids=[c[0] for c in ARM_CASES])
def test_contract_suite(check, settings, tmp_path):
    robot = build(tmp_path, safe=True, **settings)
    try:
        check(robot)
    finally:
        robot.disconnect()


def test_features_have_the_arm_tasks_form(tmp_path):
    for settings, joints in (
        ({"type": "ur", "fake": True}, 6),
        ({"type": "franka", "fake": True}, 7),
    ):
        robot = build(tmp_path, **settings)
        state, act = robot.features["observation.state"], robot.features["action"]
        assert state.names[:4] == ("ee_x", "ee_y", "ee_z", "gripper_width")
        assert state.names[4:] == tuple(f"joint{i}" for i in range(1, joints + 1))
        assert act.names == ("dx", "dy", "dz", "gripper") and act.control_mode == "ee_delta_pos"
        assert robot.control_hz == 10.0 and robot.ee_action_scale == 0.03


# --------------------------------------------------------------------------- UR
@pytest.mark.parametrize(("control_hz", "period"), [(None, 0.1), (25.0, 0.04)])
def test_ur_ee_delta_becomes_one_servoL_per_period(tmp_path, control_hz, period):
    robot = build(
        tmp_path, type="ur", fake=True, control_hz=control_hz, servo_gain=500, servo_lookahead=0.05
    )
    with robot:
        arm = fake_ur.arm("127.0.0.1")
        tcp0 = arm.tcp.copy()
        arm.tcp[3:] += 0.01  # the measured orientation drifts: the latched one is commanded
        action = np.array([0.5, -1.0, 0.2, 0.0], np.float32)
        sent = robot.send_action(action)
        np.testing.assert_array_equal(sent, action)
        (call,) = arm.calls.named("servoL")
        pose, _speed, _acc, t, lookahead, gain = call.args
        np.testing.assert_allclose(pose[:3], tcp0[:3] + action[:3] * 0.03, atol=1e-7)
        np.testing.assert_allclose(pose[3:], tcp0[3:], atol=1e-12)
        assert (t, lookahead, gain) == (period, 0.05, 500)
        obs = robot.get_observation()["observation.state"]
        np.testing.assert_allclose(obs[:3], tcp0[:3] + action[:3] * 0.03, atol=1e-6)
        robot.send_action(np.array([0.0, 0.0, 1.0, 0.0]))  # from the new measured TCP
        pose2 = arm.calls.named("servoL")[-1].args[0]
        np.testing.assert_allclose(pose2[2], pose[2] + 0.03, atol=1e-7)


def test_ur_digital_out_gripper_follows_the_command(tmp_path):
    robot = build(tmp_path, type="ur", fake=True, gripper="digital_out", gripper_output=3)
    with robot:
        arm = fake_ur.arm("127.0.0.1")
        for g in (0.7, 0.9, -0.2, -1.0, 0.1):
            robot.send_action(np.array([0.0, 0.0, 0.0, g]))
        calls = [c.args for c in arm.calls.named("setStandardDigitalOut")]
        assert calls == [(3, True), (3, False), (3, True)]  # changes only
        assert arm.digital_out[3] is True
        assert robot.get_observation()["observation.state"][3] == 0.0
        robot.send_action(np.array([0.0, 0.0, 0.0, -0.5]))
        assert robot.get_observation()["observation.state"][3] == pytest.approx(0.085)


def test_ur_without_gripper_opens_no_io_and_returns_the_command(tmp_path):
    with build(tmp_path, type="ur", fake=True) as robot:
        sent = robot.send_action(np.array([0.0, 0.0, 0.0, 2.0]))
        assert sent[3] == 1.0
        arm = fake_ur.arm("127.0.0.1")
        assert not any(c.interface == "RTDEIOInterface" for c in arm.calls)


def test_ur_home_leaves_servo_mode_and_moves_the_joints(tmp_path):
    home = (0.1, -1.4, 1.5, -1.6, -1.5, 0.2)
    robot = build(tmp_path, type="ur", fake=True, home_joints=home, home_speed=0.3)
    with robot:
        robot.send_action(np.zeros(4))
        robot.home()
        arm = fake_ur.arm("127.0.0.1")
        methods = arm.calls.methods()
        i = methods.index("moveJ")
        assert methods[i - 1] == "servoStop"  # a moveJ while servoing is refused by the arm
        assert arm.calls.named("moveJ")[0].args == (list(home), 0.3, 0.5, False)
        np.testing.assert_allclose(
            robot.get_observation()["observation.state"][4:], home, atol=1e-6
        )


def test_ur_disconnect_stops_servo_and_script(tmp_path):
    robot = build(tmp_path, type="ur", fake=True, stop_deceleration=3.0)
    robot.connect()
    robot.send_action(np.zeros(4))
    arm = fake_ur.arm("127.0.0.1")
    assert arm.script_running
    robot.disconnect()
    tail = [(c.interface, c.method) for c in arm.calls[-4:]]
    assert tail == [
        ("RTDEControlInterface", "servoStop"),
        ("RTDEControlInterface", "stopScript"),
        ("RTDEControlInterface", "disconnect"),
        ("RTDEReceiveInterface", "disconnect"),
    ]
    assert arm.calls.named("servoStop")[-1].args == (3.0,)
    assert not arm.script_running and not robot.is_connected
    n = len(arm.calls)
    robot.disconnect()  # idempotent
    assert len(arm.calls) == n
    with pytest.raises(RobotError, match="not connected"):
        robot.send_action(np.zeros(4))


# --------------------------------------------------------------------------- Franka
def test_franka_ee_delta_becomes_an_absolute_cartesian_motion(tmp_path):
    robot = build(tmp_path, type="franka", fake=True, relative_dynamics_factor=0.3)
    with robot:
        arm = fake_franky.arm("127.0.0.1")
        xyz0, quat0 = arm.ee.translation.copy(), arm.ee.quaternion.copy()
        arm.ee.quaternion = np.array([0.99, 0.1, 0.0, 0.0])  # measured orientation drifts
        action = np.array([-0.4, 0.6, -1.0, -1.0], np.float32)
        np.testing.assert_array_equal(robot.send_action(action), action)
        (call,) = arm.calls.named("move")
        motion = call.args[0]
        assert isinstance(motion, fake_franky.CartesianMotion)
        assert call.kwargs == {"asynchronous": True}  # preempted by the next period's motion
        assert motion.reference_type is fake_franky.ReferenceType.Absolute
        assert motion.relative_dynamics_factor == 0.3
        np.testing.assert_allclose(motion.target.translation, xyz0 + action[:3] * 0.03, atol=1e-7)
        np.testing.assert_allclose(motion.target.quaternion, quat0)
        obs = robot.get_observation()["observation.state"]
        np.testing.assert_allclose(obs[:3], xyz0 + action[:3] * 0.03, atol=1e-6)


def test_franka_gripper_maps_width_and_grasps_with_force(tmp_path):
    robot = build(tmp_path, type="franka", fake=True, gripper_force=30.0, gripper_speed=0.05)
    with robot:
        arm = fake_franky.arm("127.0.0.1")
        for g in (-1.0, 0.0, 0.05, 0.6, 0.9, -1.0):
            robot.send_action(np.array([0.0, 0.0, 0.0, g]))
        hand = [(c.method, c.args) for c in arm.calls if c.interface == "Gripper"][1:]
        assert hand == [
            ("move_async", (0.08, 0.05)),
            ("move_async", (0.04, 0.05)),  # 0.05 -> 0.038 m is inside the 5 mm deadband
            ("grasp_async", (0.0, 0.05, 30.0, 0.005, 0.08)),  # 0.9: still grasping
            ("move_async", (0.08, 0.05)),
        ]
        assert robot.get_observation()["observation.state"][3] == pytest.approx(0.08)


def test_franka_home_recovers_and_moves_the_joints(tmp_path):
    home = (0.1, -0.7, 0.0, -2.3, 0.0, 1.6, 0.8)
    robot = build(tmp_path, type="franka", fake=True, home_joints=home, home_dynamics_factor=0.2)
    with robot:
        arm = fake_franky.arm("127.0.0.1")
        arm.errors = True  # a collision reflex
        with pytest.raises(RobotError, match=r"call home\(\)"):
            robot.send_action(np.zeros(4))
        robot.home()
        methods = arm.calls.methods()
        assert methods[-3:-1] == ["recover_from_errors", "move"]
        move = arm.calls.named("move")[-1]
        assert isinstance(move.args[0], fake_franky.JointMotion)
        assert move.kwargs == {"asynchronous": False}
        assert move.args[0].relative_dynamics_factor == 0.2
        assert arm.calls[-1].method == "move_async" and arm.calls[-1].args[0] == 0.08
        np.testing.assert_allclose(
            robot.get_observation()["observation.state"][4:], home, atol=1e-6
        )
        robot.send_action(np.zeros(4))  # moves again after the recovery


def test_franka_disconnect_stops_the_motion(tmp_path):
    robot = build(tmp_path, type="franka", fake=True)
    robot.connect()
    robot.send_action(np.array([1.0, 0.0, 0.0, 0.0]))
    arm = fake_franky.arm("127.0.0.1")
    assert arm.moving
    robot.disconnect()
    assert arm.calls[-1].method == "stop" and not arm.moving
    robot.disconnect()
    assert arm.calls[-1].method == "stop" and len(arm.calls.named("stop")) == 1


# --------------------------------------------------------------------------- safety layer
@pytest.mark.parametrize("settings", [c[1] for c in ARM_CASES], ids=[c[0] for c in ARM_CASES])
def test_safety_layer_shortens_a_step_out_of_the_workspace_before_the_sdk(tmp_path, settings):
    fake = fake_ur if settings["type"] == "ur" else fake_franky
    start = (
        fake.START_TCP[:3] if settings["type"] == "ur" else fake_franky.START_TRANSLATION
    )  # where the fake arm starts
    low = [start[0] - 0.2, start[1] - 0.2, start[2] - 0.2]
    high = [start[0] + 0.01, start[1] + 0.2, start[2] + 0.2]
    safety = {"workspace_low": low, "workspace_high": high, "watchdog_s": None}
    robot = build(tmp_path, safe=True, **settings, safety=safety)
    with robot:
        robot.get_observation()
        sent = robot.send_action(np.array([1.0, 0.0, 0.0, 0.0]))  # +3 cm, 1 cm allowed
        assert sent[0] == pytest.approx(0.01 / 0.03, abs=1e-5)
        arm = fake.arm("127.0.0.1")
        if settings["type"] == "ur":
            x = arm.calls.named("servoL")[-1].args[0][0]
        else:
            x = arm.calls.named("move")[-1].args[0].target.translation[0]
        assert x == pytest.approx(high[0], abs=1e-6)
        assert robot.log.counts["workspace"] == 1


# --------------------------------------------------------------------------- errors
def test_host_is_required_unless_fake():
    for kind, hint in (("ur", "robot.host=192.168.1.10"), ("franka", "robot.host=172.16.0.2")):
        with pytest.raises(ConfigError, match=f"robot.host is not set.*{hint}"):
            robot_config({"type": kind})
    with pytest.raises(ConfigError, match="servo_gain"):
        robot_config({"type": "ur", "fake": True, "servo_gain": 5000})
    with pytest.raises(ConfigError, match="home_joints needs 7"):
        robot_config({"type": "franka", "fake": True, "home_joints": [0.0] * 6})


@pytest.mark.parametrize(
    ("kind", "modules", "fix"),
    [
        ("ur", ("rtde_control", "rtde_receive", "rtde_io"), r"'robot-learning\[ur\]'.*ur-rtde"),
        ("franka", ("franky",), r"'robot-learning\[franka\]'.*franky-control"),
    ],
)
def test_missing_sdk_names_the_install_command(tmp_path, monkeypatch, kind, modules, fix):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    robot = build(tmp_path, type=kind, host="192.0.2.1")
    with pytest.raises(RobotError, match=fix):
        robot.connect()
    assert not robot.is_connected


@pytest.mark.parametrize(
    ("kind", "fix"), [("ur", "Remote Control mode"), ("franka", "FCI activated in Desk")]
)
def test_refused_connection_names_the_host_and_the_fix(tmp_path, kind, fix):
    fake = fake_ur if kind == "ur" else fake_franky
    fake.REFUSE.add("192.0.2.7")
    robot = build(tmp_path, type=kind, fake=True, host="192.0.2.7")
    with pytest.raises(RobotError, match=f"192.0.2.7.*{fix}") as info:
        robot.connect()
    assert "refused" in str(info.value).lower() or "could not connect" in str(info.value).lower()
    assert not robot.is_connected


def test_real_franky_refused_connection_names_the_host_and_the_fix(tmp_path):
    pytest.importorskip("franky", reason="franky-control not installed")
    robot = build(tmp_path, type="franka", host="127.0.0.254", realtime_kernel=False)
    with pytest.raises(RobotError, match=r"127\.0\.0\.254 \(libfranka.*FCI activated in Desk"):
        robot.connect()


# --------------------------------------------------------------------------- franky-sim
def test_franka_drives_franky_sim_over_loopback(tmp_path):
    pytest.importorskip("franky", reason="franky-control not installed")
    pytest.importorskip("franky_sim", reason="franky-sim not installed")
    from franky_sim import SimulationServer
    from franky_sim.mujoco_simulator import MujocoSimulator

    with MujocoSimulator(enable_visualization=False) as sim:
        model = sim.add_robot()
        with SimulationServer(sim) as server:
            server.run_async()
            # franky-sim starts at (0, 0, 0, -1.57, 0, 1.57, 0.785): home close by, at full speed
            home = (0.0, 0.1, 0.0, -1.57, 0.0, 1.67, 0.785)
            robot = build(
                tmp_path,
                type="franka",
                host=model.hostname,
                realtime_kernel=False,
                home_joints=home,
                home_dynamics_factor=1.0,
            )
            with robot:
                robot.home()
                state = robot.get_observation()["observation.state"]
                np.testing.assert_allclose(state[4:], home, atol=0.02)
                assert state[3] > 0.07  # home opens the hand
                for _ in range(3):
                    robot.send_action(np.array([0.0, 0.0, -1.0, -1.0]))
                    time.sleep(0.1)
                robot.arm.join_motion(5.0)
                moved = robot.get_observation()["observation.state"][:3] - state[:3]
            assert moved[2] < -0.02, moved  # down, in the base frame
            assert np.all(np.abs(moved[:2]) < 0.005), moved
