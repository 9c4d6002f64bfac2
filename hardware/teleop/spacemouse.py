"""``device=spacemouse``: 3Dconnexion 6-DoF mice over HID via ``hidapi`` (``pip install -e '.[teleop]'``).

HID input reports (little-endian int16 axes, about +-350 at full deflection):

- report 1: translation ``x, y, z`` (6 bytes); newer devices (SpaceMouse Wireless/Compact/
  Universal Receiver) send all six axes ``x, y, z, rx, ry, rz`` in report 1 (12 bytes);
- report 2: rotation ``rx, ry, rz`` (older devices);
- report 3: buttons as a bit mask (bit 0: left, bit 1: right).

The device frame has x to the right, y towards the operator and z down (pushing the cap gives
+z). With the operator facing the robot's workspace, the translation maps to the action as:
push the cap away = +x, left = +y, lift it = +z (``motion = (-y, -x, -z)``). Rotation is read
but unused (the tasks' actions are translation + gripper).

Buttons: left = toggle the gripper, right = intervene while HELD. A two-button SpaceMouse has no
buttons left for success/failure/re-record/stop: the episode ends on the simulator's success
flag or its time limit, and Ctrl-C ends the session.

Axes: ``raw / scale`` (``scale`` default 350) clipped to [-1, 1], then a continuous dead zone
(``deadzone``, default 0.1; :func:`.mapping.apply_deadzone`).

Options (``device.<key>=value``): ``path`` (hidraw path from ``hid.enumerate()``; default: the
first 3Dconnexion device), ``scale`` (350), ``deadzone`` (0.1), ``speed`` (1.0).
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, TeleopInput, parse_options
from hardware.teleop.mapping import apply_deadzone, initial_gripper, mapper_for

VENDOR_3DCONNEXION = 0x256F
VENDOR_LOGITECH = 0x046D
#: 3Dconnexion devices sold under Logitech's vendor id (other 0x046d products are not ours)
LOGITECH_PRODUCTS = frozenset(
    {0xC603, 0xC605, 0xC606, 0xC621, 0xC623, 0xC625, 0xC626, 0xC627, 0xC628, 0xC629, 0xC62B}
)
BUTTON_LEFT, BUTTON_RIGHT = 0x1, 0x2

UDEV_FIX = (
    "on Linux give your user access to hidraw with a udev rule, e.g. "
    "/etc/udev/rules.d/99-spacemouse.rules containing\n"
    '  KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0660", TAG+="uaccess"\n'
    '  KERNEL=="hidraw*", ATTRS{idVendor}=="046d", ATTRS{idProduct}=="c6*", MODE="0660", '
    'TAG+="uaccess"\n'
    "then: sudo udevadm control --reload-rules && sudo udevadm trigger, and re-plug the device"
)


def is_spacemouse(vendor_id: int, product_id: int) -> bool:
    """True for 3Dconnexion's vendor id (0x256f) and its older products under Logitech's (0x046d)."""
    return vendor_id == VENDOR_3DCONNEXION or (
        vendor_id == VENDOR_LOGITECH and product_id in LOGITECH_PRODUCTS
    )


@dataclass
class HidReport:
    """One parsed HID report: whichever of translation, rotation, buttons it carried."""

    translation: tuple[int, int, int] | None = None
    rotation: tuple[int, int, int] | None = None
    buttons: int | None = None


def parse_report(data: bytes | bytearray | list[int]) -> HidReport | None:
    """Parse a 3Dconnexion HID input report (report id first); None for unknown/short reports."""
    data = bytes(data)
    if not data:
        return None
    report_id, payload = data[0], data[1:]
    if report_id == 1 and len(payload) >= 12:
        values = struct.unpack_from("<6h", payload)
        return HidReport(translation=values[:3], rotation=values[3:])
    if report_id == 1 and len(payload) >= 6:
        return HidReport(translation=struct.unpack_from("<3h", payload))
    if report_id == 2 and len(payload) >= 6:
        return HidReport(rotation=struct.unpack_from("<3h", payload))
    if report_id == 3 and payload:
        return HidReport(buttons=int.from_bytes(payload, "little"))
    return None


@dataclass
class SpaceMouseOptions:
    """``device.<key>=value`` options of ``device=spacemouse``."""

    path: str | None = None
    """hidraw path (as ``hid.enumerate()`` lists it); default: the first 3Dconnexion device."""
    scale: float = 350.0
    """Raw axis value read as full deflection."""
    deadzone: float = 0.1
    """Fraction of full deflection read as 0, in [0, 1)."""
    speed: float = 1.0
    """Motion at full deflection as a fraction of the action's full scale, in (0, 1]."""


@dataclass
class SpaceMouseState:
    """The pure mapping: apply parsed reports, read the motion, gripper, intervene."""

    scale: float = 350.0
    deadzone: float = 0.1
    speed: float = 1.0
    gripper: float | None = None
    """-1 open, +1 closed; None until set from the first observation (or the left button)."""
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    buttons: int = 0

    def apply(self, report: HidReport | None) -> None:
        """Update from one report (reports carry the latest absolute values)."""
        if report is None:
            return
        if report.translation is not None:
            self.translation = np.asarray(report.translation, np.float32)
        if report.rotation is not None:
            self.rotation = np.asarray(report.rotation, np.float32)
        if report.buttons is not None:
            pressed = report.buttons & ~self.buttons
            if pressed & BUTTON_LEFT:
                self.gripper = -(self.gripper if self.gripper is not None else -1.0)
            self.buttons = report.buttons

    @property
    def intervene(self) -> bool:
        """The right button is held."""
        return bool(self.buttons & BUTTON_RIGHT)

    def motion(self) -> np.ndarray:
        """Normalised motion in [-1, 1]^3 in the action frame (see the module docstring)."""
        unit = apply_deadzone(np.clip(self.translation / self.scale, -1.0, 1.0), self.deadzone)
        x, y, z = unit
        return (np.array([-y, -x, -z], np.float32) * self.speed).astype(np.float32)


@DEVICES.register("spacemouse")
class SpaceMouseDevice:
    """A 3Dconnexion SpaceMouse over hidapi; see the module docstring."""

    name: ClassVar[str] = "spacemouse"

    def __init__(self, context: TeleopContext) -> None:
        self.context = context
        self.options = parse_options(SpaceMouseOptions, dict(context.options), "spacemouse")
        opt = self.options
        if opt.scale <= 0 or not 0 <= opt.deadzone < 1 or not 0 < opt.speed <= 1:
            raise DeviceError(
                "device=spacemouse needs scale > 0, 0 <= deadzone < 1 and 0 < speed <= 1"
            )
        self.mapper = mapper_for(context, "spacemouse")
        self.device = None
        self.state = self._new_state()

    def _new_state(self) -> SpaceMouseState:
        opt = self.options
        return SpaceMouseState(scale=opt.scale, deadzone=opt.deadzone, speed=opt.speed)

    # ----------------------------------------------------------------- device protocol
    def connect(self) -> None:
        """Open the SpaceMouse; a missing hidapi or device is a :class:`DeviceError` with the fix."""
        if self.device is not None:
            return
        try:
            import hid
        except ImportError as exc:
            raise DeviceError(
                "device=spacemouse needs hidapi (Python module 'hid'): pip install -e '.[teleop]' "
                f"(or pip install hidapi) ({exc})"
            ) from None
        if not hasattr(hid, "device") or not hasattr(hid, "enumerate"):
            raise DeviceError(
                "the installed 'hid' module is not hidapi: pip uninstall hid && pip install hidapi"
            )
        found = [d for d in hid.enumerate() if is_spacemouse(d["vendor_id"], d["product_id"])]
        if self.options.path:
            want = _as_bytes(self.options.path)
            found = [d for d in found if _as_bytes(d["path"]) == want]
        if not found:
            raise DeviceError(
                "device=spacemouse found no 3Dconnexion device (USB vendor id 0x256f, or 0x046d "
                "for older models)"
                + (f" at {self.options.path}" if self.options.path else "")
                + ". Fix: plug it in (wireless: plug in the receiver and switch the mouse on); "
                + UDEV_FIX
            )
        # prefer the multi-axis controller interface (usage page 1, usage 8)
        found.sort(key=lambda d: (d.get("usage_page"), d.get("usage")) != (1, 8))
        info = found[0]
        dev = hid.device()
        try:
            dev.open_path(info["path"])
            dev.set_nonblocking(1)
        except (OSError, ValueError) as exc:
            raise DeviceError(
                f"device=spacemouse cannot open {info.get('product_string') or 'the SpaceMouse'} "
                f"({_as_bytes(info['path']).decode(errors='replace')}: {exc}). Fix: " + UDEV_FIX
            ) from exc
        self.device = dev
        self.state = self._new_state()

    def disconnect(self) -> None:
        """Close the device (idempotent)."""
        dev, self.device = self.device, None
        if dev is not None:
            with contextlib.suppress(OSError):
                dev.close()

    def reset(self, seed: int | None = None) -> None:
        """A new episode: the gripper follows the robot's again."""
        self.state.gripper = None

    def read(self, obs: dict[str, np.ndarray], policy_action: np.ndarray | None) -> TeleopInput:
        """Drain the pending reports (never blocks) -> this tick's action."""
        if self.device is None:
            self.connect()
        try:
            for _ in range(256):  # bounded: a device streams at ~60-120 Hz
                data = self.device.read(64)
                if not data:
                    break
                self.state.apply(parse_report(data))
        except (OSError, ValueError) as exc:
            self.disconnect()
            raise DeviceError(
                f"device=spacemouse: the device stopped responding ({exc}); plug it back in"
            ) from exc
        if self.state.gripper is None:
            self.state.gripper = initial_gripper(self.context.features, obs)
        return TeleopInput(
            action=self.mapper(obs, self.state.motion(), self.state.gripper),
            intervene=self.state.intervene,
            extra={"gripper": "closed" if self.state.gripper > 0 else "open"},
        )

    def show(self, obs: dict[str, np.ndarray], status: dict[str, Any]) -> None:
        """No screen."""


def _as_bytes(path: Any) -> bytes:
    return path if isinstance(path, bytes) else str(path).encode()
