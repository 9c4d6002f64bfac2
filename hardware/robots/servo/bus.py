"""The motor-bus layer: one small interface over the vendors' Python SDKs.

:class:`MotorBus` opens a serial port and talks to named motors by register name (from
:mod:`.tables`): ``ping``, ``read``/``write`` one register, ``sync_read``/``sync_write`` one
register of many motors in one packet, ``torque``. Vendor subclasses (:mod:`.feetech`,
:mod:`.dynamixel`) only say which SDK to import and how its packet handler is made; the SDKs'
calls have the same shape for both vendors.

Every failure is a :class:`~hardware.robot.RobotError` that names the fix: a missing SDK, a
missing port (with the ports that do exist), no permission on the port, no status packet from a
motor, a corrupt status packet, an error status, a wrong model at an id.
"""

from __future__ import annotations

import errno
import glob
import importlib
import logging
import os
import select
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from hardware.robot import RobotError
from hardware.robots.servo.tables import Model, Register, decode, encode, model, model_name

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'robot-learning[servo]'"
#: longest wait for the next byte of a status packet before the SDK checks its timeout again
POLL_S = 0.001


@dataclass(frozen=True)
class Motor:
    """One motor on the bus: its name in the arm, its bus id and its model."""

    name: str
    id: int
    model: str

    @property
    def spec(self) -> Model:
        """The model's number, resolution and control table."""
        return model(self.model)


def serial_candidates() -> list[str]:
    """The serial devices an arm's USB adapter usually appears as."""
    found = glob.glob("/dev/ttyACM*") + glob.glob("/dev/ttyUSB*") + glob.glob("/dev/tty.usb*")
    return sorted(found) + sorted(glob.glob("/dev/serial/by-id/*"))


def port_missing_error(port: str) -> RobotError:
    """The error for a serial port that does not exist, listing the ones that do."""
    found = serial_candidates()
    seen = f"serial ports present: {', '.join(found)}" if found else "no /dev/ttyACM*/ttyUSB* found"
    return RobotError(
        f"serial port {port} does not exist ({seen}); plug in the arm's USB cable and power, "
        "then set robot.port=<its device> (unplug and replug to see which one appears), or use "
        "robot.fake=true to run without hardware"
    )


def permission_error(port: str) -> RobotError:
    """The error for a serial port this user may not open."""
    return RobotError(
        f"permission denied on the serial device {port}: add your user to the group that owns it "
        "with `sudo usermod -aG dialout $USER` and log out and in again (or, for this session "
        f"only, `sudo chmod a+rw {port}`)"
    )


def _port_class(sdk_port: type, extra_ms: float) -> type:
    """The SDK's port handler class, extended through its own methods: waits ``extra_ms``
    longer for every status packet, and waits for bytes on the file descriptor instead of
    spinning (the SDKs poll a non-blocking port in a busy loop, which burns a core and, in one
    Python process, starves a fake bus thread of the GIL)."""

    class Port(sdk_port):
        def setPacketTimeout(self, packet_length):  # noqa: N802 (the SDK's names)
            super().setPacketTimeout(packet_length)
            self.packet_timeout += extra_ms

        def setPacketTimeoutMillis(self, msec):  # noqa: N802
            super().setPacketTimeoutMillis(msec + extra_ms)

        def readPort(self, length):  # noqa: N802
            data = super().readPort(length)
            if not data and length > 0:
                select.select([self.ser.fileno()], [], [], POLL_S)
            return data

    return Port


class MotorBus(ABC):
    """The motors of one serial bus, addressed by name (see the module docstring).

    Args:
        port: the serial device (``/dev/ttyACM0``) or a fake's pseudo-terminal.
        baudrate: the motors' baud rate.
        motors: the motors on this bus.
        retries: re-sends of a transaction whose status packet is missing or corrupt (noise on
            a real bus; scheduling delays on a loaded machine for the fake).
        extra_timeout_ms: added to the SDK's wait for a status packet (which assumes a 16 ms
            USB latency timer); for slow adapters, and for fakes sharing a busy CPU.
    """

    vendor: ClassVar[str] = ""
    sdk_module: ClassVar[str] = ""
    #: SDK result codes (set from the SDK on open)
    _ok: int = 0
    _timeout: int = -1
    _corrupt: int = -1

    def __init__(
        self,
        port: str,
        baudrate: int,
        motors: Iterable[Motor],
        retries: int = 2,
        extra_timeout_ms: float = 0.0,
    ) -> None:
        self.port, self.baudrate, self.retries = port, int(baudrate), int(retries)
        self.extra_timeout_ms = float(extra_timeout_ms)
        self.motors = {m.name: m for m in motors}
        self.sdk: ModuleType | None = None
        self._port: Any = None
        self._ph: Any = None
        # one transaction at a time: the safety watchdog reads and writes from its own thread
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle
    @abstractmethod
    def _packet_handler(self, sdk: ModuleType) -> Any:
        """The SDK's packet handler for this vendor's protocol."""

    def open(self) -> None:
        """Import the SDK, open the port at the baud rate; raises :class:`RobotError`."""
        try:
            sdk = importlib.import_module(self.sdk_module)
        except ImportError:
            raise RobotError(
                f"the {self.vendor} SDK ({self.sdk_module}) is not installed: {INSTALL_HINT}"
            ) from None
        if not os.path.exists(self.port):
            raise port_missing_error(self.port)
        if not os.access(self.port, os.R_OK | os.W_OK):
            raise permission_error(self.port)
        self.sdk, self._ph = sdk, self._packet_handler(sdk)
        self._ok, self._timeout = sdk.COMM_SUCCESS, sdk.COMM_RX_TIMEOUT
        self._corrupt = sdk.COMM_RX_CORRUPT
        handler = _port_class(sdk.PortHandler, self.extra_timeout_ms)(self.port)
        try:
            opened = handler.openPort()
            if opened:
                opened = handler.setBaudRate(self.baudrate)
        except Exception as exc:  # serial.SerialException carries the OS errno
            code = getattr(exc, "errno", None)
            if code in (errno.EACCES, errno.EPERM):
                raise permission_error(self.port) from None
            if code == errno.ENOENT:
                raise port_missing_error(self.port) from None
            if code == errno.ENOTTY:
                raise RobotError(
                    f"{self.port} is not a serial device; set robot.port to the arm's "
                    f"/dev/ttyACM*/ttyUSB* device (present: {serial_candidates() or 'none'})"
                ) from None
            raise RobotError(
                f"cannot open serial port {self.port}: {exc}; is another program (another "
                "robot-learning process, ModemManager, a serial monitor) using it?"
            ) from None
        if not opened:
            raise RobotError(
                f"the {self.vendor} SDK refused baud rate {self.baudrate} on {self.port}; set "
                "robot.baudrate to one the motors use (1000000 unless you changed it)"
            )
        self._port = handler

    def close(self) -> None:
        """Close the port (idempotent)."""
        with self.lock:
            self._close_port()

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.closePort()
            finally:
                self._port = None

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._port is not None

    # ------------------------------------------------------------------ errors
    def _where(self, motor: Motor) -> str:
        return f"motor {motor.name!r} (id {motor.id}) on {self.port}"

    def _check(self, motor: Motor, what: str, result: int, error: int) -> None:
        """Raise the clear error for an SDK result code and a status packet's error byte."""
        if result == self._timeout:
            raise RobotError(
                f"no status packet from {self._where(motor)} ({what}): check that the arm's power "
                f"supply is on (USB alone does not power the motors), the cable to this motor, "
                f"that its id is {motor.id} (robot.motors) and that robot.baudrate={self.baudrate} "
                "is the motors' baud rate"
            )
        if result == self._corrupt:
            raise RobotError(
                f"corrupt status packet from {self._where(motor)} ({what}): two motors may share "
                f"id {motor.id}, or the cable is loose or noisy; check ids and connectors"
            )
        if result != self._ok:
            raise RobotError(
                f"{what} failed on {self._where(motor)}: {self._ph.getTxRxResult(result)}"
            )
        if error:
            detail = self._ph.getRxPacketError(error) or "error status"
            raise RobotError(
                f"{self._where(motor)} answered {what} with error 0x{error:02x} ({detail}); "
                "an invalid register or value for this model, or a hardware alarm: check "
                "robot.models and power-cycle the arm if it persists"
            )

    def _tries(self) -> Iterator[int]:
        """Attempt numbers of one transaction (call under :attr:`lock`); stale status packets
        (late answers to an attempt that timed out) are flushed before each."""
        for attempt in range(self.retries + 1):
            self._flush_input()
            yield attempt

    def _flush_input(self) -> None:
        ser = getattr(self._port, "ser", None)  # both SDKs keep the pyserial port here
        if ser is not None:
            ser.reset_input_buffer()

    def _retry(self, result: int) -> bool:
        return result in (self._timeout, self._corrupt)

    def _motor(self, name: str) -> Motor:
        try:
            return self.motors[name]
        except KeyError:
            raise RobotError(
                f"no motor {name!r} on this bus; motors: {list(self.motors)}"
            ) from None

    def _register(self, motor: Motor, reg_name: str) -> Register:
        table = motor.spec.table
        if reg_name not in table:
            raise RobotError(
                f"{motor.model} has no register {reg_name!r} ({self._where(motor)}); "
                f"registers: {sorted(table)}"
            )
        return table[reg_name]

    def _require_open(self) -> None:
        if self._port is None:
            raise RobotError(f"the {self.vendor} bus on {self.port} is not open")

    # ------------------------------------------------------------------ single motor
    def ping(self, name: str) -> int:
        """The model number ``name`` reports (raises when it does not answer)."""
        self._require_open()
        motor = self._motor(name)
        with self.lock:
            for _ in self._tries():
                number, result, error = self._ph.ping(self._port, motor.id)
                if not self._retry(result):
                    break
        self._check(motor, "ping", result, error)
        return int(number)

    def check_models(self) -> None:
        """Ping every motor and compare its model number with the configured model."""
        for motor in self.motors.values():
            number = self.ping(motor.name)
            if number != motor.spec.number:
                raise RobotError(
                    f"{self._where(motor)} is a {model_name(number)} (model number {number}), "
                    f"expected {motor.model} ({motor.spec.number}): another motor has id "
                    f"{motor.id}; fix the ids or robot.models"
                )

    def _read_raw(self, motor: Motor, address: int, size: int, what: str) -> int:
        self._require_open()
        with self.lock:
            for _ in self._tries():
                data, result, error = self._ph.readTxRx(self._port, motor.id, address, size)
                if not self._retry(result):
                    break
        self._check(motor, what, result, error)
        return int.from_bytes(bytes(data[:size]), "little")

    def _write_raw(self, motor: Motor, address: int, size: int, raw: int, what: str) -> None:
        self._require_open()
        data = list(int(raw).to_bytes(size, "little"))
        with self.lock:
            for _ in self._tries():
                result, error = self._ph.writeTxRx(self._port, motor.id, address, size, data)
                if not self._retry(result):
                    break
        self._check(motor, what, result, error)

    def read_address(self, name: str, address: int, size: int) -> int:
        """Raw unsigned read of ``size`` bytes at ``address`` (diagnostics and tests)."""
        what = f"read of {size} bytes at address {address}"
        return self._read_raw(self._motor(name), address, size, what)

    def write_address(self, name: str, address: int, size: int, raw: int) -> None:
        """Raw write of ``size`` bytes at ``address``; waits for the status packet."""
        what = f"write of {size} bytes at address {address}"
        self._write_raw(self._motor(name), address, size, raw, what)

    def read(self, reg_name: str, name: str) -> int:
        """The value of register ``reg_name`` of motor ``name`` (sign decoded)."""
        motor = self._motor(name)
        reg = self._register(motor, reg_name)
        return decode(reg, self._read_raw(motor, reg.address, reg.size, f"read of {reg_name}"))

    def write(self, reg_name: str, name: str, value: int) -> None:
        """Write ``value`` (sign encoded) to register ``reg_name`` of motor ``name``."""
        motor = self._motor(name)
        reg = self._register(motor, reg_name)
        if not reg.writable:
            raise RobotError(f"register {reg_name!r} of {motor.model} is read-only")
        self._write_raw(motor, reg.address, reg.size, encode(reg, value), f"write of {reg_name}")

    # ------------------------------------------------------------------ many motors
    def _group(self, reg_name: str, names: Iterable[str] | None) -> tuple[list[Motor], Register]:
        motors = [self._motor(n) for n in (names if names is not None else self.motors)]
        regs = {self._register(m, reg_name) for m in motors}
        if len(regs) != 1:
            raise RobotError(
                f"{reg_name!r} differs between the models of {[m.name for m in motors]}"
            )
        return motors, regs.pop()

    def sync_read(self, reg_name: str, names: Iterable[str] | None = None) -> dict[str, int]:
        """Register ``reg_name`` of several motors (default: all) in one sync-read packet."""
        self._require_open()
        motors, reg = self._group(reg_name, names)
        group = self.sdk.GroupSyncRead(self._port, self._ph, reg.address, reg.size)
        for m in motors:
            group.addParam(m.id)
        with self.lock:
            for _ in self._tries():
                result = group.txRxPacket()
                if not self._retry(result):
                    break
        if result != self._ok:
            # the SDK stops at the first motor that did not answer: name it
            silent = next(
                (m for m in motors if not group.isAvailable(m.id, reg.address, reg.size)),
                motors[0],
            )
            self._check(silent, f"sync read of {reg_name}", result, 0)
        out = {}
        for m in motors:
            if not group.isAvailable(m.id, reg.address, reg.size):
                self._check(m, f"sync read of {reg_name}", self._timeout, 0)
            out[m.name] = decode(reg, group.getData(m.id, reg.address, reg.size))
        return out

    def sync_write(self, reg_name: str, values: dict[str, int]) -> None:
        """Write ``values`` (motor name -> value) to ``reg_name`` in one sync-write packet (no
        status packets come back: a silent motor is only noticed by the next read)."""
        self._require_open()
        motors, reg = self._group(reg_name, values)
        if not reg.writable:
            raise RobotError(f"register {reg_name!r} is read-only")
        group = self.sdk.GroupSyncWrite(self._port, self._ph, reg.address, reg.size)
        for m in motors:
            raw = encode(reg, values[m.name])
            group.addParam(m.id, list(int(raw).to_bytes(reg.size, "little")))
        with self.lock:
            self._flush_input()  # no status packets come back to a sync write
            result = group.txPacket()
        if result != self._ok:
            raise RobotError(
                f"sync write of {reg_name} on {self.port} failed: {self._ph.getTxRxResult(result)}"
            )

    def torque(self, enable: bool, names: Iterable[str] | None = None) -> None:
        """Enable or disable the torque of several motors (default: all)."""
        for name in names if names is not None else list(self.motors):
            self.write("Torque_Enable", name, int(enable))
