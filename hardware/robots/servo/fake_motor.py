"""A simulated servo for the fake buses: its control table as bytes, and a joint that moves.

The motor keeps the *actual* (mechanical) encoder position of its joint and derives the reported
``Present_Position`` from it with the vendor's homing convention (the facts LeRobot's calibration
relies on): Feetech ``present = actual - Homing_Offset`` (wrapped to one turn), Dynamixel
``present = actual + Homing_Offset``. With torque on, the joint moves toward ``Goal_Position``
(clipped to the position limits) at ``speed`` ticks per second; with torque off it stays where a
hand put it: :meth:`FakeMotor.move_by_hand` or a :meth:`FakeMotor.sweep` script that advances one
point per position read, so calibration can be tested deterministically. The joint cannot leave
its mechanical ``travel``.
"""

from __future__ import annotations

import time

import numpy as np

from hardware.robots.servo.tables import Model, Register, decode, encode

FEETECH, DYNAMIXEL = "feetech", "dynamixel"


class FakeMotor:
    """One simulated servo (see the module docstring).

    Args:
        motor_id: its bus id.
        spec: its model (number, resolution, control table).
        vendor: ``"feetech"`` or ``"dynamixel"`` (homing convention).
        travel: the joint's mechanical range in actual encoder ticks.
        speed: how fast the joint follows its goal with torque on (ticks per second).
    """

    def __init__(
        self,
        motor_id: int,
        spec: Model,
        vendor: str,
        travel: tuple[int, int] | None = None,
        speed: float = 20000.0,
    ) -> None:
        self.id, self.spec, self.vendor, self.speed = motor_id, spec, vendor, float(speed)
        res = spec.resolution
        self.travel = travel or (0, res - 1)
        self.mem = bytearray(max(r.address + r.size for r in spec.table.values()) + 1)
        self._owner: dict[int, tuple[str, Register]] = {}
        for name, reg in spec.table.items():
            for a in range(reg.address, reg.address + reg.size):
                self._owner[a] = (name, reg)
        self.set("Model_Number", spec.number)
        self.set("ID", motor_id)
        self.set("Min_Position_Limit", 0)
        self.set("Max_Position_Limit", res - 1)
        self.actual = float(sum(self.travel) / 2)
        self.target = self.actual
        self.script: list[float] = []
        self._t = time.monotonic()
        self.set("Goal_Position", self.present_of(self.actual))

    # ------------------------------------------------------------------ registers
    def get(self, name: str) -> int:
        """Register ``name`` decoded (no refresh)."""
        reg = self.spec.table[name]
        raw = int.from_bytes(self.mem[reg.address : reg.address + reg.size], "little")
        return decode(reg, raw)

    def set(self, name: str, value: int) -> None:
        """Store ``value`` in register ``name`` (no side effects)."""
        reg = self.spec.table[name]
        raw = encode(reg, int(value)) & ((1 << (8 * reg.size)) - 1)
        self.mem[reg.address : reg.address + reg.size] = raw.to_bytes(reg.size, "little")

    def invalid(self, address: int, size: int, write: bool) -> str | None:
        """Why ``size`` bytes at ``address`` cannot be read/written, or None if they can."""
        if size <= 0 or address not in self._owner or self._owner[address][1].address != address:
            return f"address {address} is not the start of a register of {self.spec.name}"
        for a in range(address, address + size):
            if a not in self._owner:
                return f"bytes {address}..{address + size - 1} run past the registers at {a}"
            name, reg = self._owner[a]
            if write and not reg.writable:
                return f"register {name} (address {reg.address}) is read-only"
        return None

    def read(self, address: int, size: int) -> bytes:
        """The bytes of a (validated) read, with the present values refreshed."""
        self.step(reading=address <= self.spec.table["Present_Position"].address < address + size)
        return bytes(self.mem[address : address + size])

    def write(self, address: int, data: bytes) -> None:
        """Apply a (validated) write and its effects on the joint."""
        self.step()
        self.mem[address : address + len(data)] = data
        touched = {self._owner[a][0] for a in range(address, address + len(data))}
        if "Torque_Enable" in touched and self.get("Torque_Enable"):
            self.target = self.actual  # enabling torque holds the joint where it is
            self.set("Goal_Position", self.present_of(self.actual))
        if "ID" in touched:
            self.id = self.get("ID")
        if "Goal_Position" in touched:
            low, high = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
            goal = float(np.clip(self.get("Goal_Position"), low, high))
            self.target = float(np.clip(self.actual_of(goal), *self.travel))
        self.step()

    # ------------------------------------------------------------------ joint
    def present_of(self, actual: float) -> int:
        """The ``Present_Position`` reading of an actual encoder position."""
        offset = self.get("Homing_Offset")
        if self.vendor == FEETECH:
            return int(round(actual - offset)) % self.spec.resolution
        return int(round(actual + offset))

    def actual_of(self, present: float) -> float:
        """The actual encoder position a ``Present_Position``/goal value stands for."""
        offset = self.get("Homing_Offset")
        if self.vendor == FEETECH:
            return float((present + offset) % self.spec.resolution)
        return float(present - offset)

    def step(self, reading: bool = False) -> None:
        """Advance the joint to now; a position read consumes one sweep point (torque off)."""
        now = time.monotonic()
        dt, self._t = now - self._t, now
        moving = False
        if self.get("Torque_Enable"):
            gap = self.target - self.actual
            move = float(np.clip(gap, -self.speed * dt, self.speed * dt))
            self.actual += move
            moving = abs(self.target - self.actual) > 0.5
        elif reading and self.script:
            self.actual = self.script.pop(0)
        self.actual = float(np.clip(self.actual, *self.travel))
        self.set("Present_Position", self.present_of(self.actual))
        self.set("Moving", int(moving))

    def move_by_hand(self, actual: float) -> None:
        """Put the joint at ``actual`` encoder ticks (torque off: it stays; on: it returns)."""
        self.actual = float(np.clip(actual, *self.travel))
        self.set("Present_Position", self.present_of(self.actual))

    def sweep(self, points: int = 6) -> None:
        """Script a hand moving the joint to one end of its travel, the other, and back to the
        middle: one point per position read (with torque off)."""
        low, high = self.travel
        mid = (low + high) / 2
        path = [np.linspace(self.actual, low, points), np.linspace(low, high, 2 * points)]
        path.append(np.linspace(high, mid, points))
        self.script = [float(p) for p in np.concatenate(path)]
