"""Fake servo buses on a pseudo-terminal, answering the real packet protocols.

A fake opens a pseudo-terminal (``os.openpty``); the unmodified vendor SDK opens its slave path
(:attr:`FakeServoBus.path`) as if it were ``/dev/ttyACM0``. A daemon thread reads the bytes the SDK
writes, frames and checks them exactly as a servo would, and writes status packets from the
simulated motors (:class:`~hardware.robots.servo.fake_motor.FakeMotor`) back.

Wrong packets are caught and recorded in :attr:`FakeServoBus.errors` (never raised in the
thread): a bad checksum (Feetech: dropped, no status, as the servos do) or bad CRC (Dynamixel 2.0:
a status packet with the CRC error, as X-series servos do), an id no motor has (no status: the
SDK times out), an address that is not a register or a write to a read-only one (an error
status), an unsupported instruction, a truncated packet, and a baud rate that differs from the
motors' (no status).

- :class:`FakeFeetechBus`: the SCS/STS protocol, ``FF FF id len instr params ~sum``; error status
  bit 0x40 for an invalid access (the instruction-error bit of the Dynamixel 1.0 framing the STS
  protocol derives from).
- :class:`FakeDynamixelBus`: protocol 2.0, ``FF FF FD 00 id len_l len_h instr params crc16``
  with byte stuffing; error numbers 3 (CRC) and 7 (access).
"""

from __future__ import annotations

import contextlib
import logging
import os
import termios
import threading
import time
import tty
from abc import ABC, abstractmethod

from hardware.robots.servo.fake_motor import DYNAMIXEL, FEETECH, FakeMotor

log = logging.getLogger(__name__)

PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST = 0xFE
#: a packet left incomplete this long is dropped as truncated
TRUNCATED_S = 0.2

_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000)
_SPEED_OF = {getattr(termios, f"B{b}"): b for b in _BAUDS if hasattr(termios, f"B{b}")}


class FakeServoBus(ABC):
    """A simulated servo bus on a pseudo-terminal (see the module docstring).

    Args:
        motors: the simulated motors.
        baudrate: the motors' baud rate; packets sent at another rate are not answered.
    """

    vendor: str = ""

    def __init__(self, motors: list[FakeMotor], baudrate: int = 1_000_000) -> None:
        self.motors = list(motors)
        self.baudrate = int(baudrate)
        self.errors: list[str] = []
        """Every wrong packet, in order (read it in tests)."""
        self.packets = 0
        """Well-formed instruction packets received."""
        self.lock = threading.RLock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no line discipline: bytes pass unchanged before the SDK opens
        self.path = os.ttyname(self._slave)
        self._buf = bytearray()
        self._last_rx = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.vendor}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public
    def motor(self, motor_id: int) -> FakeMotor | None:
        """The motor answering to ``motor_id`` (ids can be rewritten over the bus)."""
        return next((m for m in self.motors if m.id == motor_id), None)

    def sweep(self, points: int = 6) -> None:
        """Script every motor's joint through its whole travel (see :meth:`FakeMotor.sweep`)."""
        with self.lock:
            for m in self.motors:
                m.sweep(points)

    @property
    def sweeping(self) -> bool:
        """True while a sweep script has points left."""
        with self.lock:
            return any(m.script for m in self.motors)

    def inject(self, data: bytes) -> bytes:
        """Feed raw bytes to the fake as if the host sent them; returns the status bytes it
        answers (returned here, not written to the port; for tests of wrong packets)."""
        with self.lock:
            self._buf.extend(data)
            self._last_rx = time.monotonic()
            replies = self._parse()
        return replies

    def close(self) -> None:
        """Stop the thread and close the pseudo-terminal (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._slave, b"\0")  # wakes the blocking read
        self._thread.join(timeout=1.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._stop.is_set()

    def error(self, message: str) -> None:
        """Record a wrong packet."""
        self.errors.append(message)
        log.debug("fake %s bus: %s", self.vendor, message)

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        # a blocking read (not select + read): every syscall hands the GIL to the SDK's busy
        # receive loop and back, and the SDK only waits ~35 ms for a status packet
        while not self._stop.is_set():
            try:
                data = os.read(self._master, 4096)
            except OSError:  # closed under us
                return
            if self._stop.is_set():
                return
            with self.lock:
                self._drop_truncated()
                self._buf.extend(data)
                self._last_rx = time.monotonic()
                if not self._baud_ok():
                    self._buf.clear()
                    continue
                replies = self._parse()
            if replies:
                try:
                    os.write(self._master, replies)
                except OSError:
                    return

    def _baud_ok(self) -> bool:
        try:
            speed = termios.tcgetattr(self._slave)[5]
        except termios.error:
            return True
        host = _SPEED_OF.get(speed)
        if host is not None and host != self.baudrate:
            self.error(f"host sends at {host} baud, the motors listen at {self.baudrate}: ignored")
            return False
        return True

    def _drop_truncated(self) -> None:
        with self.lock:
            if self._buf and time.monotonic() - self._last_rx > TRUNCATED_S:
                self.error(f"truncated packet dropped: {bytes(self._buf).hex(' ')}")
                self._buf.clear()

    # ------------------------------------------------------------------ protocol
    @abstractmethod
    def _parse(self) -> bytes:
        """Consume complete packets from the buffer; the status packets to send back."""

    def _access(
        self, m: FakeMotor, address: int, size: int, data: bytes | None
    ) -> tuple[int, bytes]:
        """(error, payload) of a read (``data`` None) or write at ``address``."""
        why = m.invalid(address, size, write=data is not None)
        if why is not None:
            kind = "write" if data is not None else "read"
            self.error(f"id {m.id}: invalid {kind} of {size} bytes at address {address}: {why}")
            return self.access_error, b""
        if data is None:
            return 0, m.read(address, size)
        m.write(address, data)
        return 0, b""

    access_error: int = 0

    def _unicast(self, motor_id: int, instr: int, params: bytes) -> bytes:
        """The status packet a motor answers to a unicast instruction (b"" for none)."""
        m = self.motor(motor_id)
        if m is None:
            self.error(f"no motor with id {motor_id}: instruction 0x{instr:02x} not answered")
            return b""
        if instr == PING:
            return self.status(m.id, 0, self.ping_payload(m))
        if instr == READ:
            address, size = self.read_params(params)
            return self.status(m.id, *self._access(m, address, size, None))
        if instr == WRITE:
            address, data = self.write_params(params)
            err, _ = self._access(m, address, len(data), data)
            return self.status(m.id, err, b"")
        self.error(f"id {motor_id}: unsupported instruction 0x{instr:02x}")
        return self.status(m.id, self.instruction_error, b"")

    def _broadcast(self, instr: int, params: bytes) -> bytes:
        if instr == SYNC_WRITE:
            address, size, rest = self.sync_params(params)
            for i in range(0, len(rest) - size, size + 1):
                m = self.motor(rest[i])
                if m is None:
                    self.error(f"sync write to id {rest[i]}: no such motor")
                    continue
                self._access(m, address, size, bytes(rest[i + 1 : i + 1 + size]))
            return b""
        if instr == SYNC_READ:
            address, size, ids = self.sync_params(params)
            out = b""
            for motor_id in ids:
                m = self.motor(motor_id)
                if m is None:
                    self.error(f"sync read from id {motor_id}: no such motor, no status")
                    continue
                out += self.status(m.id, *self._access(m, address, size, None))
            return out
        if instr == PING:
            return b"".join(self.status(m.id, 0, self.ping_payload(m)) for m in self.motors)
        self.error(f"broadcast instruction 0x{instr:02x} is not supported")
        return b""

    def _dispatch(self, motor_id: int, instr: int, params: bytes) -> bytes:
        self.packets += 1
        if motor_id == BROADCAST:
            return self._broadcast(instr, params)
        return self._unicast(motor_id, instr, params)

    instruction_error: int = 0

    @abstractmethod
    def status(self, motor_id: int, error: int, payload: bytes) -> bytes:
        """A status packet."""

    @abstractmethod
    def ping_payload(self, m: FakeMotor) -> bytes:
        """What a ping's status packet carries."""

    @abstractmethod
    def read_params(self, params: bytes) -> tuple[int, int]:
        """(address, size) of a read instruction."""

    @abstractmethod
    def write_params(self, params: bytes) -> tuple[int, bytes]:
        """(address, data) of a write instruction."""

    @abstractmethod
    def sync_params(self, params: bytes) -> tuple[int, int, bytes]:
        """(address, size, rest) of a sync instruction."""


class FakeFeetechBus(FakeServoBus):
    """Feetech STS servos on the SCS protocol (see the module docstring)."""

    vendor = FEETECH
    access_error = 0x40
    instruction_error = 0x40

    def _parse(self) -> bytes:
        buf, out = self._buf, b""
        while True:
            start = buf.find(b"\xff\xff")
            if start < 0:
                del buf[: max(0, len(buf) - 1)]  # keep a trailing 0xFF: a header may follow
                return out
            if start:
                self.error(f"{start} bytes of noise before a header: {bytes(buf[:start]).hex(' ')}")
                del buf[:start]
            if len(buf) >= 3 and buf[2] == 0xFF:  # FF FF FF: the header starts one later
                del buf[0]
                continue
            if len(buf) < 4:
                return out
            length = buf[3]
            if length < 2:
                self.error(f"packet length {length} is too short: {bytes(buf[:4]).hex(' ')}")
                del buf[:2]
                continue
            total = length + 4
            if len(buf) < total:
                return out
            packet = bytes(buf[:total])
            del buf[:total]
            expected = ~sum(packet[2:-1]) & 0xFF
            if packet[-1] != expected:
                self.error(
                    f"bad checksum 0x{packet[-1]:02x} (expected 0x{expected:02x}) in packet "
                    f"{packet.hex(' ')}: dropped, no status"
                )
                continue
            out += self._dispatch(packet[2], packet[4], packet[5:-1])

    def status(self, motor_id: int, error: int, payload: bytes) -> bytes:
        body = bytes([motor_id, len(payload) + 2, error]) + payload
        return b"\xff\xff" + body + bytes([~sum(body) & 0xFF])

    def ping_payload(self, m: FakeMotor) -> bytes:
        return b""  # the SDK reads Model_Number with a separate read after a ping

    def read_params(self, params: bytes) -> tuple[int, int]:
        return params[0], params[1]

    def write_params(self, params: bytes) -> tuple[int, bytes]:
        return params[0], bytes(params[1:])

    def sync_params(self, params: bytes) -> tuple[int, int, bytes]:
        return params[0], params[1], bytes(params[2:])


def crc16(data: bytes) -> int:
    """Dynamixel protocol 2.0's CRC-16 (polynomial 0x8005, initial value 0, not reflected)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Protocol 2.0 byte stuffing: an FD after FF FF inside a packet gets another FD."""
    out = bytearray()
    for b in body:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-3:-1] == b"\xff\xff":
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Inverse of :func:`stuff`."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        stuffed = body[i] == 0xFD and len(out) >= 3 and out[-3:-1] == b"\xff\xff"
        if stuffed and i + 1 < len(body) and body[i + 1] == 0xFD:
            i += 1
        i += 1
    return bytes(out)


class FakeDynamixelBus(FakeServoBus):
    """Dynamixel X-series servos on protocol 2.0 (see the module docstring)."""

    vendor = DYNAMIXEL
    access_error = 7
    instruction_error = 2
    crc_error = 3
    header = b"\xff\xff\xfd\x00"

    def _parse(self) -> bytes:
        buf, out = self._buf, b""
        while True:
            start = buf.find(self.header)
            if start < 0:
                del buf[: max(0, len(buf) - 3)]
                return out
            if start:
                self.error(f"{start} bytes of noise before a header: {bytes(buf[:start]).hex(' ')}")
                del buf[:start]
            if len(buf) < 7:
                return out
            length = int.from_bytes(buf[5:7], "little")
            if length < 3:
                self.error(f"packet length {length} is too short: {bytes(buf[:7]).hex(' ')}")
                del buf[:4]
                continue
            total = 7 + length
            if len(buf) < total:
                return out
            packet = bytes(buf[:total])
            del buf[:total]
            motor_id = packet[4]
            crc, expected = int.from_bytes(packet[-2:], "little"), crc16(packet[:-2])
            if crc != expected:
                self.error(
                    f"bad CRC 0x{crc:04x} (expected 0x{expected:04x}) in packet {packet.hex(' ')}"
                )
                m = self.motor(motor_id)
                if m is not None:  # X-series answer a unicast packet with a CRC error status
                    out += self.status(m.id, self.crc_error, b"")
                continue
            body = unstuff(packet[7:-2])
            out += self._dispatch(motor_id, body[0], body[1:])

    def status(self, motor_id: int, error: int, payload: bytes) -> bytes:
        body = stuff(bytes([0x55, error]) + payload)
        head = self.header + bytes([motor_id]) + (len(body) + 2).to_bytes(2, "little")
        packet = head + body
        return packet + crc16(packet).to_bytes(2, "little")

    def ping_payload(self, m: FakeMotor) -> bytes:
        return m.spec.number.to_bytes(2, "little") + bytes([m.get("Firmware_Version") or 52])

    def read_params(self, params: bytes) -> tuple[int, int]:
        return int.from_bytes(params[0:2], "little"), int.from_bytes(params[2:4], "little")

    def write_params(self, params: bytes) -> tuple[int, bytes]:
        return int.from_bytes(params[0:2], "little"), bytes(params[2:])

    def sync_params(self, params: bytes) -> tuple[int, int, bytes]:
        address = int.from_bytes(params[0:2], "little")
        return address, int.from_bytes(params[2:4], "little"), bytes(params[4:])


FAKES: dict[str, type[FakeServoBus]] = {FEETECH: FakeFeetechBus, DYNAMIXEL: FakeDynamixelBus}
