"""Servo arms (SO-100/SO-101 Feetech, Koch Dynamixel) against their pty fakes, driven by the
unmodified vendor SDKs: round trips, calibration in LeRobot's format, wrong packets, clear
errors, the leader arm as a teleop device, and the shared robot contract suite."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("dynamixel_sdk")

import test_robot_contract as contract  # noqa: E402

import hardware.robots.servo  # noqa: E402,F401  (registers the arms and leader devices)
from hardware.build import make_robot  # noqa: E402
from hardware.robot import RobotError  # noqa: E402
from hardware.robots.servo.fake_bus import (  # noqa: E402
    FakeDynamixelBus,
    FakeFeetechBus,
    crc16,
    stuff,
    unstuff,
)
from hardware.robots.servo.fake_motor import DYNAMIXEL, FEETECH, FakeMotor  # noqa: E402
from hardware.robots.servo.tables import model  # noqa: E402
from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, make_device  # noqa: E402
from robot_learning.features import Feature, FeatureSpec  # noqa: E402

ARMS = ["so101", "koch"]
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
#: a loaded CI machine may delay the fake thread; keep error tests quick but not flaky
PATIENT = {"extra_timeout_ms": 250.0}


def servo(kind: str, tmp_path, **settings):
    """An unwrapped arm on its fake (no safety layer: these tests check the driver itself)."""
    cfg = {"type": kind, "fake": True, "calibration_dir": str(tmp_path / "calib"), **settings}
    return make_robot(cfg, safe=False)


def fake_bus(vendor: str, ids=(1, 2, 3, 4, 5, 6), models=None, baudrate=1_000_000):
    """A fake bus started by the test (the driver connects to it with fake=false)."""
    default = "sts3215" if vendor == FEETECH else "xl330-m288"
    koch_shoulder = {1: "xl430-w250", 2: "xl430-w250"} if vendor == DYNAMIXEL else {}
    models = {**koch_shoulder, **(models or {})}
    motors = [FakeMotor(i, model(models.get(i, default)), vendor) for i in ids]
    cls = FakeFeetechBus if vendor == FEETECH else FakeDynamixelBus
    return cls(motors, baudrate)


def wait_until(cond, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("kind", ARMS)
def test_goal_reaches_the_fake_and_the_joint_moves(kind, tmp_path):
    robot = servo(kind, tmp_path)
    with robot:
        fake = robot.fake
        assert fake is not None and os.path.exists(fake.path)
        start = robot.get_observation()["observation.state"]
        assert start.dtype == np.float32 and start.shape == (6,)
        goal = np.array([10.0, -20.0, 30.0, 0.0, 45.0, 80.0], np.float32)
        sent = robot.send_action(goal)
        np.testing.assert_allclose(sent, goal)
        expected = robot.units.to_ticks(goal).tolist()
        # a sync write has no status packet: the fake applies it shortly after
        assert wait_until(
            lambda: [fake.motor(m.id).get("Goal_Position") for m in robot.motors] == expected
        )
        assert wait_until(lambda: np.allclose(robot.read_joints(), goal, atol=0.2))
        assert not np.allclose(start, goal, atol=1.0)
        # beyond the calibrated range: clamped, and the clamped goal is what is returned
        sent = robot.send_action(np.array([500, -500, 0, 0, 0, 150], np.float32))
        np.testing.assert_allclose(sent[[0, 1, 5]], [180, -180, 100], atol=1e-4)
        assert fake.packets > 10 and fake.errors == []
        assert all(m.get("Torque_Enable") == 1 for m in fake.motors)
        if kind == "so101":  # Feetech: the EEPROM lock follows the torque, as LeRobot does
            assert all(m.get("Lock") == 1 for m in fake.motors)
    assert robot.fake is None and fake.closed and not os.path.exists(fake.path)


def test_max_relative_target_limits_each_step(tmp_path):
    robot = servo("so101", tmp_path, max_relative_target=5.0)
    with robot:
        here = robot.read_joints()
        sent = robot.send_action(here + 30.0)
        np.testing.assert_allclose(sent, np.minimum(here + 5.0, [180] * 5 + [100]), atol=0.1)


# ---------------------------------------------------------------------- calibration
@pytest.mark.parametrize("kind", ARMS)
def test_calibration_round_trips_in_lerobot_format(kind, tmp_path):
    robot = servo(kind, tmp_path)
    with robot:
        pose = np.array([20, 10, -15, 5, 0, 50], np.float32)  # calibrate away from mid-travel
        assert wait_until(
            lambda: np.allclose(robot.send_action(pose), robot.read_joints(), atol=0.2)
        )
        data = robot.calibrate()
        fake = robot.fake
        path = tmp_path / "calib" / kind / "default.json"
        assert json.loads(path.read_text()) == data
        assert list(data) == JOINTS
        for name, entry in data.items():
            assert set(entry) == {"id", "drive_mode", "homing_offset", "range_min", "range_max"}
            m = fake.motor(entry["id"])
            assert m.get("Homing_Offset") == entry["homing_offset"]
            assert m.get("Min_Position_Limit") == entry["range_min"]
            assert m.get("Max_Position_Limit") == entry["range_max"]
            if name in robot.full_turn_motors:
                assert (entry["range_min"], entry["range_max"]) == (0, 4095)
            else:  # the sweep reached both mechanical stops
                low, high = sorted(m.present_of(t) for t in m.travel)
                assert (entry["range_min"], entry["range_max"]) == (low, high), name
        # the sweep ends mid-travel: the middle of the calibrated range is 0 degrees
        state = robot.read_joints()
        body = [i for i, n in enumerate(JOINTS) if n not in robot.full_turn_motors]
        np.testing.assert_allclose(state[body[:-1]], 0.0, atol=0.1)
        assert state[-1] == pytest.approx(50.0, abs=0.1)

    # a fresh robot loads the file and writes it to a fresh fake's motors
    again = servo(kind, tmp_path)
    with again:
        for entry in data.values():
            m = again.fake.motor(entry["id"])
            assert m.get("Homing_Offset") == entry["homing_offset"]
            assert m.get("Max_Position_Limit") == entry["range_max"]
        again.bus.torque(False, ["gripper"])  # with torque on the motor would pull it back
        gripper = again.fake.motor(data["gripper"]["id"])
        gripper.move_by_hand(gripper.actual_of(data["gripper"]["range_max"]))
        assert again.read_joints()[-1] == pytest.approx(100.0)


def test_a_calibration_file_for_another_arm_names_the_fix(tmp_path):
    robot = servo("so101", tmp_path)
    robot.save_calibration({"shoulder_pan": {"id": 1}})
    with pytest.raises(RobotError, match="robot calibrate robot=so101 robot.id=default"):
        robot.connect()
    assert robot.fake is None and not robot.is_connected


# ---------------------------------------------------------------------- wrong packets
def _read_reply(fd: int, wait: float = 0.3) -> bytes:
    import select

    out = b""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if ready:
            out += os.read(fd, 256)
    return out


def _raw_port(path: str) -> int:
    import termios
    import tty

    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[4] = attrs[5] = termios.B1000000  # the motors' baud rate (the fake checks it)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd


def test_feetech_fake_drops_a_bad_checksum_and_answers_a_good_packet():
    fake = fake_bus(FEETECH)
    fd = _raw_port(fake.path)
    try:
        body = bytes([1, 4, 0x02, 56, 2])  # id 1: read 2 bytes at Present_Position
        good = b"\xff\xff" + body + bytes([~sum(body) & 0xFF])
        os.write(fd, good[:-1] + bytes([good[-1] ^ 0x5A]))
        assert _read_reply(fd) == b""
        assert any("bad checksum" in e for e in fake.errors), fake.errors
        os.write(fd, good)
        reply = _read_reply(fd)
        assert reply[:5] == bytes([0xFF, 0xFF, 1, 4, 0]) and len(reply) == 8
        assert reply[-1] == ~sum(reply[2:-1]) & 0xFF
        present = int.from_bytes(reply[5:7], "little")
        assert present == fake.motor(1).get("Present_Position")
    finally:
        os.close(fd)
        fake.close()


def test_dynamixel_fake_checks_the_crc_and_stuffing():
    assert crc16(b"\xff\xff\xfd\x00\x01\x03\x00\x01") == 0x4E19  # the e-manual's ping example
    assert unstuff(stuff(b"\x55\x00\xff\xff\xfd\x10")) == b"\x55\x00\xff\xff\xfd\x10"
    assert stuff(b"\xff\xff\xfd") == b"\xff\xff\xfd\xfd"
    fake = fake_bus(DYNAMIXEL)
    try:
        ping = b"\xff\xff\xfd\x00\x01\x03\x00\x01\x19\x4e"
        reply = fake.inject(ping)
        assert reply[7:9] == b"\x55\x00" and int.from_bytes(reply[9:11], "little") == 1060
        reply = fake.inject(ping[:-1] + b"\x00")
        assert reply[8] == FakeDynamixelBus.crc_error  # X-series answer a CRC error status
        assert any("bad CRC" in e for e in fake.errors)
    finally:
        fake.close()


@pytest.mark.parametrize("vendor, code", [(FEETECH, "0x40"), (DYNAMIXEL, "0x07")])
def test_an_invalid_register_is_an_error_status(vendor, code, tmp_path):
    kind = "so101" if vendor == FEETECH else "koch"
    robot = servo(kind, tmp_path)
    with robot:
        with pytest.raises(RobotError, match=f"motor 'elbow_flex' \\(id 3\\).*error {code}"):
            robot.bus.read_address("elbow_flex", 100, 2)  # not a register
        present = model(robot.motors[0].model).table["Present_Position"]
        with pytest.raises(RobotError, match="error"):
            robot.bus.write_address("shoulder_pan", present.address, present.size, 0)
        assert any("invalid read" in e for e in robot.fake.errors)
        assert any("read-only" in e for e in robot.fake.errors)
        with pytest.raises(RobotError, match="has no register 'Nope'"):
            robot.bus.read("Nope", "gripper")
        assert robot.get_observation()["observation.state"].shape == (6,)  # bus still fine


# ---------------------------------------------------------------------- clear errors
@pytest.mark.parametrize("vendor", [FEETECH, DYNAMIXEL])
def test_a_silent_motor_is_named_with_the_fix(vendor, tmp_path):
    fake = fake_bus(vendor, ids=(1, 2, 3, 4, 5))
    kind = "so101" if vendor == FEETECH else "koch"
    robot = make_robot(
        {
            "type": kind,
            "port": fake.path,
            "calibration_dir": str(tmp_path),
            "retries": 0,
            **PATIENT,
        },
        safe=False,
    )
    try:
        with pytest.raises(RobotError) as err:
            robot.connect()
        msg = str(err.value)
        assert "no status packet from motor 'gripper' (id 6)" in msg
        assert "power" in msg and "robot.baudrate=1000000" in msg and "id is 6" in msg
        assert any("no motor with id 6" in e for e in fake.errors)
        assert not robot.is_connected
    finally:
        fake.close()


def test_a_wrong_model_at_an_id_is_named(tmp_path):
    fake = fake_bus(FEETECH, models={3: "sts3250"})
    robot = make_robot(
        {"type": "so101", "port": fake.path, "calibration_dir": str(tmp_path), **PATIENT},
        safe=False,
    )
    try:
        with pytest.raises(RobotError, match=r"'elbow_flex' \(id 3\).*sts3250.*expected sts3215"):
            robot.connect()
    finally:
        fake.close()


def test_a_wrong_baudrate_gets_no_answer(tmp_path):
    fake = fake_bus(FEETECH)
    settings = {"type": "so101", "port": fake.path, "baudrate": 115200, "retries": 0}
    robot = make_robot({**settings, "calibration_dir": str(tmp_path), **PATIENT}, safe=False)
    try:
        with pytest.raises(RobotError, match="robot.baudrate=115200"):
            robot.connect()
        assert any("115200 baud" in e for e in fake.errors)
    finally:
        fake.close()


def test_a_missing_port_lists_candidates_and_the_setting(tmp_path):
    robot = make_robot(
        {"type": "so101", "port": "/dev/ttyACM_missing", "calibration_dir": str(tmp_path)}
    )
    with pytest.raises(RobotError, match=r"/dev/ttyACM_missing does not exist.*robot\.port="):
        robot.connect()


def _refused_path(tmp_path) -> str:
    """A path this process exists but may not open read-write (a chmod 000 file, or for root,
    who bypasses file modes, a read-only sysfs attribute the kernel refuses with EACCES)."""
    if os.geteuid() != 0:
        path = tmp_path / "ttyACM9"
        path.write_bytes(b"")
        path.chmod(0)
        return str(path)
    path = "/sys/kernel/uevent_seqnum"
    try:
        os.close(os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
    except PermissionError:
        return path
    except OSError:
        pass
    pytest.skip("running as root with no read-only sysfs attribute: cannot provoke EACCES")


def test_permission_denied_names_the_dialout_group(tmp_path):
    robot = make_robot(
        {"type": "so101", "port": _refused_path(tmp_path), "calibration_dir": str(tmp_path)},
        safe=False,
    )
    with pytest.raises(RobotError, match=r"permission denied.*usermod -aG dialout \$USER"):
        robot.connect()


def test_a_missing_sdk_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dynamixel_sdk", None)  # import fails as if not installed
    robot = servo("koch", tmp_path)
    with pytest.raises(RobotError, match=r"pip install 'robot-learning\[servo\]'"):
        robot.connect()
    assert robot.fake is None


def test_configs_are_checked(tmp_path):
    with pytest.raises(ValueError, match="robot.models"):
        make_robot({"type": "so101", "motors": {"a": 1}})
    with pytest.raises(ValueError, match="robot.motors ids"):
        make_robot({"type": "so101", "motors": dict.fromkeys(JOINTS, 1)})
    with pytest.raises(ValueError, match="unknown servo model"):
        make_robot({"type": "koch", "models": dict.fromkeys(JOINTS, "xl999")})


# ---------------------------------------------------------------------- leader arm
def test_the_leader_arm_yields_the_followers_actions(tmp_path):
    assert {"so101_leader", "so100_leader", "koch_leader"} <= set(DEVICES.names())
    follower = servo("so101", tmp_path)
    ctx = TeleopContext(
        features=follower.features,
        fps=30,
        options={"fake": "true", "calibration_dir": str(tmp_path / "calib"), "intervene": "1"},
    )
    leader = make_device("so101_leader", ctx)
    with follower:
        leader.connect()
        try:
            assert leader.arm.calibration_path.parent.name == "so101_leader"
            fake = leader.arm.fake
            assert all(m.get("Torque_Enable") == 0 for m in fake.motors)  # moved by hand
            wanted = np.array([15.0, -30.0, 45.0, 10.0, -90.0, 60.0], np.float32)
            for m, ticks in zip(leader.arm.motors, leader.arm.units.to_ticks(wanted), strict=True):
                fake.motor(m.id).move_by_hand(fake.motor(m.id).actual_of(int(ticks)))
            step = leader.read(follower.get_observation(), None)
            assert step.intervene
            np.testing.assert_allclose(step.action, wanted, atol=0.1)
            assert step.action.shape == follower.features["action"].shape
            follower.send_action(step.action)
            assert wait_until(lambda: np.allclose(follower.read_joints(), wanted, atol=0.2))
        finally:
            leader.disconnect()
    assert leader.arm.fake is None
    cartesian = FeatureSpec(
        {"action": Feature("float32", (4,), None, -1.0, 1.0, control_mode="ee_delta_pos")}
    )
    with pytest.raises(DeviceError, match="use it with robot=so101"):
        make_device("so101_leader", TeleopContext(features=cartesian, fps=30))


# ---------------------------------------------------------------------- contract suite
SERVO_CASES = ["so101", "so100", "koch"]


@pytest.fixture(params=SERVO_CASES)
def contract_robot(request, tmp_path):
    robot = make_robot({"type": request.param, "fake": True, "calibration_dir": str(tmp_path)})
    yield robot
    robot.disconnect()


def test_servo_arms_pass_the_robot_contract(contract_robot):
    contract.test_features_declare_a_bounded_action_with_a_control_mode(contract_robot)
    contract.test_observations_match_the_features(contract_robot)
    contract.test_send_action_returns_what_was_sent_within_bounds(contract_robot)
    contract.test_calibration_round_trips_and_a_corrupt_file_names_the_fix(contract_robot)
    assert contract_robot.features["action"].control_mode == "joint_pos"
