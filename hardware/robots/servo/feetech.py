"""Feetech STS/SMS servos (SO-100/SO-101 arms) through ``feetech-servo-sdk`` (``scservo_sdk``).

The SCS protocol is Dynamixel protocol 1.0's framing (``FF FF id len instr params checksum``,
checksum = ~sum) with little-endian words on the STS series (the SDK's "end" 0).
"""

from __future__ import annotations

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
