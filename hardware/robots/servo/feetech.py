"""Feetech STS/SMS servos (SO-100/SO-101 arms) through ``feetech-servo-sdk`` (``scservo_sdk``).

The SCS protocol is Dynamixel protocol 1.0's framing (``FF FF id len instr params checksum``,
checksum = ~sum) with little-endian words on the STS series (the SDK's "end" 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from hardware.robots.servo.bus import MotorBus

#: STS series words are little-endian: the SDK's protocol "end" 0 (1 is the big-endian SCS series)
STS_ENDIANNESS = 0


class FeetechBus(MotorBus):
    """A bus of Feetech STS servos (see :class:`~hardware.robots.servo.bus.MotorBus`)."""

    vendor = "Feetech"
    sdk_module = "scservo_sdk"

    def _packet_handler(self, sdk: ModuleType) -> Any:
        return sdk.PacketHandler(STS_ENDIANNESS)

    def torque(self, enable: bool, names: Iterable[str] | None = None) -> None:
        """Enable or disable torque; the EEPROM lock follows it (as LeRobot does): unlocked while
        the torque is off so offsets and limits can be written, locked again with torque on."""
        for name in list(names if names is not None else self.motors):
            if enable:
                self.write("Torque_Enable", name, 1)
                self.write("Lock", name, 1)
            else:
                self.write("Torque_Enable", name, 0)
                self.write("Lock", name, 0)
