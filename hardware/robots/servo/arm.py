"""The servo-arm layer: a chain of bus servos as a robot with absolute joint-position control.

:class:`ServoArm` turns a :class:`~hardware.robots.servo.bus.MotorBus` into the robot contract:
``observation.state`` and ``action`` are the joint positions named after the motors, joints in
degrees and the gripper in percent (see :mod:`.calibration`), control mode ``joint_pos``.
Concrete arms (:mod:`.arms`) only fix the vendor, the default motors and which motor is a
gripper or turns fully.

``robot.fake=true`` starts a fake bus (:mod:`.fake_bus`) on a pseudo-terminal and connects the
unmodified vendor SDK to it, so every path below runs without hardware.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hardware.robot import Robot, RobotConfig, RobotError
from hardware.robots.servo.bus import Motor, MotorBus
from hardware.robots.servo.calibration import (
    MotorCalibration,
    UnitConverter,
    calibration_from_json,
    calibration_to_json,
)
from hardware.robots.servo.fake_bus import FAKES, FakeServoBus
from hardware.robots.servo.fake_motor import DYNAMIXEL, FakeMotor
from hardware.robots.servo.tables import model
from robot_learning.envs import TaskConfig
from robot_learning.features import ACTION, Feature, FeatureSpec

log = logging.getLogger(__name__)

STATE = "observation.state"
#: LeRobot records SO-100/SO-101 and Koch arms at 30 frames per second
DEFAULT_HZ = 30.0
#: the fake's default extra status timeout (see ``ServoArmConfig.extra_timeout_ms``)
FAKE_EXTRA_TIMEOUT_MS = 250.0


@dataclass
class ServoArmConfig(RobotConfig):
    """Settings of every servo arm (``robot.<key>=...``)."""

    port: str = "/dev/ttyACM0"
    """Serial device of the arm's USB adapter (``ls /dev/ttyACM* /dev/ttyUSB*``)."""
    baudrate: int = 1_000_000
    """The motors' baud rate."""
    motors: dict[str, int] = field(default_factory=dict)
    """Motor name -> bus id, in joint order (the arm's default when empty)."""
    models: dict[str, str] = field(default_factory=dict)
    """Motor name -> servo model, e.g. ``sts3215``, ``xl330-m288`` (the arm's default when empty)."""
    retries: int = 2
    """Re-sends of a transaction whose status packet is missing or corrupt."""
    extra_timeout_ms: float | None = None
    """Extra wait for a status packet beyond the SDK's (ms); None: 0 on hardware, 250 with
    ``fake`` (the fake shares this process's CPU, which a busy machine may not give it in time)."""
    max_relative_target: float | None = None
    """Largest move per command from the present position (degrees, percent for the gripper);
    None: no limit beyond the calibrated range. Costs one extra read per command."""
    calibration_s: float = 15.0
    """How long ``calibrate()`` records the joints' ranges (move every joint end to end)."""
    disable_torque_on_disconnect: bool = False
    """Let the arm go limp on disconnect (False: it keeps holding its last position)."""
    home_pose: dict[str, float] = field(default_factory=dict)
    """Joint positions ``home()`` moves to (default 0 for joints; the gripper stays)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.baudrate <= 0:
            raise ValueError(f"robot.baudrate={self.baudrate} must be positive")
        if self.models and set(self.models) != set(self.motors):
            raise ValueError(
                f"robot.models names {sorted(self.models)} but robot.motors names "
                f"{sorted(self.motors)}: give every motor a model"
            )
        for name_model in self.models.values():
            model(name_model)  # unknown models list the known ones
        ids = list(self.motors.values())
        if len(set(ids)) != len(ids) or any(not 0 <= i <= 252 for i in ids):
            raise ValueError(f"robot.motors ids {ids} must be distinct and in 0..252")
        if self.extra_timeout_ms is not None and self.extra_timeout_ms < 0:
            raise ValueError(f"robot.extra_timeout_ms={self.extra_timeout_ms} must be >= 0")
        if self.retries < 0:
            raise ValueError(f"robot.retries={self.retries} must be >= 0")
        if self.max_relative_target is not None and not self.max_relative_target > 0:
            raise ValueError(f"robot.max_relative_target={self.max_relative_target} must be > 0")
        if not self.calibration_s > 0:
            raise ValueError(f"robot.calibration_s={self.calibration_s} must be positive")
        unknown = set(self.home_pose) - set(self.motors)
        if unknown:
            raise ValueError(f"robot.home_pose names unknown motors {sorted(unknown)}")


class ServoArm(Robot):
    """A serial chain of bus servos behind the robot contract (see the module docstring)."""

    config_class: ClassVar[type[RobotConfig]] = ServoArmConfig
    extra: ClassVar[str] = "servo"
    bus_class: ClassVar[type[MotorBus]]
    #: motors measured in percent of their range (0..100) instead of degrees
    percent_motors: ClassVar[tuple[str, ...]] = ("gripper",)
    #: motors that turn endlessly: their calibrated range is the whole encoder turn
    full_turn_motors: ClassVar[tuple[str, ...]] = ()
    #: the fake's mechanical travel per motor (actual encoder ticks; default: a wide range)
    fake_travel: ClassVar[dict[str, tuple[int, int]]] = {}
    #: False for a leader arm: a passive input device whose torque stays off
    torque_on_connect: ClassVar[bool] = True

    def __init__(self, cfg: ServoArmConfig, task: TaskConfig | None = None) -> None:
        super().__init__(cfg, task)
        self.cfg: ServoArmConfig = cfg
        self.control_hz = float(cfg.control_hz or DEFAULT_HZ)
        self.motors = [Motor(n, i, cfg.models[n]) for n, i in cfg.motors.items()]
        self.names = [m.name for m in self.motors]
        self.features = self._features()
        self.bus: MotorBus | None = None
        self.fake: FakeServoBus | None = None
        """The fake bus while connected with ``robot.fake=true`` (tests move its joints)."""
        self.calibration: dict[str, MotorCalibration] = {}
        self.units: UnitConverter | None = None

    def _features(self) -> FeatureSpec:
        names = tuple(self.names)
        low = [0.0 if n in self.percent_motors else -180.0 for n in names]
        high = [100.0 if n in self.percent_motors else 180.0 for n in names]
        shape = (len(names),)
        return FeatureSpec(
            {
                STATE: Feature("float32", shape, names, low, high),
                ACTION: Feature("float32", shape, names, low, high, control_mode="joint_pos"),
            }
        )

    @property
    def fix_command(self) -> str:
        """The command that (re)calibrates this arm."""
        return f"robot-learning robot calibrate robot={self.name} robot.id={self.cfg.id}"

    # ------------------------------------------------------------------ lifecycle
    def _start_fake(self) -> str:
        vendor = self.bus_class.vendor.lower()
        fakes = [
            FakeMotor(m.id, model(m.model), vendor, self.fake_travel.get(m.name))
            for m in self.motors
        ]
        self.fake = FAKES[vendor](fakes, self.cfg.baudrate)
        return self.fake.path

    def connect(self) -> None:
        """Open the bus (starting the fake first with ``robot.fake=true``), check every motor
        answers with the configured model, load or read the calibration and hold the pose."""
        if self._connected:
            return
        port = self._start_fake() if self.cfg.fake else self.cfg.port
        extra = self.cfg.extra_timeout_ms
        if extra is None:
            extra = FAKE_EXTRA_TIMEOUT_MS if self.cfg.fake else 0.0
        self.bus = self.bus_class(port, self.cfg.baudrate, self.motors, self.cfg.retries, extra)
        try:
            self.bus.open()
            self.bus.check_models()
            self.bus.torque(False)
            self._apply_calibration()
            if self.torque_on_connect:
                present = self.bus.sync_read("Present_Position")
                self.bus.sync_write("Goal_Position", present)  # no jump when torque comes on
                self.bus.torque(True)
        except BaseException:
            self._close()
            raise
        self._connected = True

    def _apply_calibration(self) -> None:
        data = self.load_calibration()
        if data is None:
            self.calibration = self._read_motor_calibration()
            log.warning(
                "%s %r has no calibration file at %s: using the motors' stored offsets and "
                "limits; run `%s`",
                self.name,
                self.cfg.id,
                self.calibration_path,
                self.fix_command,
            )
        else:
            ids = {m.name: m.id for m in self.motors}
            self.calibration = calibration_from_json(
                data, ids, self.calibration_path, self.fix_command
            )
            self._write_motor_calibration(self.calibration)
        self._set_units()

    def _set_units(self) -> None:
        res = {m.name: model(m.model).resolution for m in self.motors}
        self.units = UnitConverter(self.names, self.calibration, res, self.percent_motors)

    def _read_motor_calibration(self) -> dict[str, MotorCalibration]:
        assert self.bus is not None
        offsets = self.bus.sync_read("Homing_Offset")
        lows, highs = (
            self.bus.sync_read("Min_Position_Limit"),
            self.bus.sync_read("Max_Position_Limit"),
        )
        out = {}
        for m in self.motors:
            drive = self.bus.read("Drive_Mode", m.name) & 1 if self._has("Drive_Mode") else 0
            low, high = lows[m.name], highs[m.name]
            if low >= high:  # no usable limits stored: the whole turn
                low, high = 0, model(m.model).resolution - 1
            out[m.name] = MotorCalibration(m.id, drive, offsets[m.name], low, high)
        return out

    def _write_motor_calibration(self, cal: dict[str, MotorCalibration]) -> None:
        assert self.bus is not None
        self.bus.torque(False)
        for name, c in cal.items():
            self.bus.write("Homing_Offset", name, c.homing_offset)
            self.bus.write("Min_Position_Limit", name, c.range_min)
            self.bus.write("Max_Position_Limit", name, c.range_max)

    def _has(self, register: str) -> bool:
        return all(register in model(m.model).table for m in self.motors)

    def disconnect(self) -> None:
        """Close the bus (and the fake); the arm keeps holding unless
        ``robot.disable_torque_on_disconnect``. Idempotent."""
        if self._connected and self.cfg.disable_torque_on_disconnect and self.bus is not None:
            try:
                self.bus.torque(False)
            except RobotError as exc:
                log.warning("could not disable torque on disconnect: %s", exc)
        self._connected = False
        self._close()

    def _close(self) -> None:
        if self.bus is not None:
            self.bus.close()
            self.bus = None
        if self.fake is not None:
            self.fake.close()
            self.fake = None

    # ------------------------------------------------------------------ I/O
    def read_joints(self) -> np.ndarray:
        """Present joint positions in units (degrees; percent for the gripper)."""
        self._require_connected()
        assert self.bus is not None and self.units is not None
        ticks = self.bus.sync_read("Present_Position")
        return self.units.to_units(np.array([ticks[n] for n in self.names])).astype(np.float32)

    def get_observation(self) -> dict[str, np.ndarray]:
        """``observation.state``: the joint positions."""
        return {STATE: self.read_joints()}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Write goal positions (units) clipped to the calibrated range and, with
        ``robot.max_relative_target``, to that distance from the present position; returns the
        clipped goals (the motors then round them to whole encoder ticks, 0.09 degrees)."""
        self._require_connected()
        assert self.bus is not None and self.units is not None
        goal = np.asarray(action, np.float64).ravel()
        if goal.shape != (len(self.names),) or not np.all(np.isfinite(goal)):
            raise RobotError(
                f"{self.name}: action must be {len(self.names)} finite joint positions "
                f"{self.names}, got {np.asarray(action).tolist()}"
            )
        goal = np.clip(goal, self.units.low, self.units.high)
        if self.cfg.max_relative_target is not None:
            step = self.cfg.max_relative_target
            present = self.read_joints().astype(np.float64)
            goal = np.clip(goal, present - step, present + step)
        ticks = self.units.to_ticks(goal)
        self.bus.sync_write("Goal_Position", dict(zip(self.names, ticks.tolist(), strict=True)))
        return goal.astype(np.float32)

    def home(self) -> None:
        """Move to ``robot.home_pose`` (joints at 0 degrees by default; the gripper stays)."""
        current = self.read_joints()
        target = np.array(
            [
                self.cfg.home_pose.get(n, current[i] if n in self.percent_motors else 0.0)
                for i, n in enumerate(self.names)
            ]
        )
        self.send_action(target)

    # ------------------------------------------------------------------ calibration
    def _homing_offset(self, m: Motor, actual: int) -> int:
        half = (model(m.model).resolution - 1) // 2
        if self.bus_class.vendor.lower() == DYNAMIXEL:
            return half - actual  # Dynamixel: present = actual + offset
        return actual - half  # Feetech: present = actual - offset

    def calibrate(self) -> dict[str, Any]:
        """Measure and save a LeRobot-format calibration (see :mod:`.calibration`).

        Start with the arm in the middle of its range (that pose becomes 0 degrees); then, for
        ``robot.calibration_s`` seconds, move every joint end to end by hand (torque is off).
        On the fake, the fake's joints are swept through their travel instead.
        """
        self._require_connected()
        assert self.bus is not None
        bus = self.bus
        with bus.lock:  # the safety watchdog must not command a half-calibrated arm
            return self._calibrate(bus)

    def _calibrate(self, bus: MotorBus) -> dict[str, Any]:
        bus.torque(False)
        for m in self.motors:
            bus.write("Homing_Offset", m.name, 0)
            bus.write("Min_Position_Limit", m.name, 0)
            bus.write("Max_Position_Limit", m.name, model(m.model).resolution - 1)
        actual = bus.sync_read("Present_Position")
        offsets = {m.name: self._homing_offset(m, actual[m.name]) for m in self.motors}
        for name, offset in offsets.items():
            bus.write("Homing_Offset", name, offset)
        log.info(
            "%s: move every joint through its whole range for %.0f s",
            self.name,
            self.cfg.calibration_s,
        )
        lows, highs = self._record_ranges()
        cal = {}
        for m in self.motors:
            low, high = lows[m.name], highs[m.name]
            if m.name in self.full_turn_motors:
                low, high = 0, model(m.model).resolution - 1
            if low >= high:
                raise RobotError(
                    f"{self.name}: motor {m.name!r} did not move during calibration; move every "
                    f"joint end to end while recording (robot.calibration_s="
                    f"{self.cfg.calibration_s}) and run `{self.fix_command}` again"
                )
            drive = bus.read("Drive_Mode", m.name) & 1 if self._has("Drive_Mode") else 0
            cal[m.name] = MotorCalibration(m.id, drive, offsets[m.name], low, high)
        self.calibration = cal
        self._write_motor_calibration(cal)
        self._set_units()
        if self.torque_on_connect:
            present = bus.sync_read("Present_Position")
            bus.sync_write("Goal_Position", present)
            bus.torque(True)
        data = calibration_to_json(cal)
        self.save_calibration(data)
        return data

    def _record_ranges(self) -> tuple[dict[str, int], dict[str, int]]:
        assert self.bus is not None
        if self.fake is not None:
            self.fake.sweep()
        first = self.bus.sync_read("Present_Position")
        lows, highs = dict(first), dict(first)
        deadline = time.monotonic() + self.cfg.calibration_s
        while time.monotonic() < deadline:
            done = self.fake is not None and not self.fake.sweeping
            now = self.bus.sync_read("Present_Position")
            for n, v in now.items():
                lows[n], highs[n] = min(lows[n], v), max(highs[n], v)
            if done:
                break
            if self.fake is None:
                time.sleep(0.02)
        return lows, highs
