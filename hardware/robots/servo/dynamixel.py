"""ROBOTIS Dynamixel X-series servos (Koch-style arms) through ``dynamixel-sdk`` (protocol 2.0).

Protocol 2.0 frames are ``FF FF FD 00 id len_l len_h instr params crc_l crc_h`` with byte
stuffing and a CRC-16 (polynomial 0x8005); the SDK does both.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hardware.robots.servo.bus import MotorBus

PROTOCOL_VERSION = 2.0


class DynamixelBus(MotorBus):
    """A bus of Dynamixel servos (see :class:`~hardware.robots.servo.bus.MotorBus`)."""

    vendor = "Dynamixel"
    sdk_module = "dynamixel_sdk"

    def _packet_handler(self, sdk: ModuleType) -> Any:
        return sdk.PacketHandler(PROTOCOL_VERSION)
