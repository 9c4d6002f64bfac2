"""Teleoperation devices behind one interface (``device=`` registry); see :mod:`.base`."""

from hardware.teleop.base import (
    DEVICES,
    DeviceError,
    TeleopContext,
    TeleopDevice,
    TeleopInput,
    make_device,
)

__all__ = ["DEVICES", "DeviceError", "TeleopContext", "TeleopDevice", "TeleopInput", "make_device"]
