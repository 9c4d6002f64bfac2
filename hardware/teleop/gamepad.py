"""``device=gamepad``: Linux game controllers through ``evdev`` (``pip install -e '.[teleop]'``).

Works with controllers that follow the Linux gamepad API (Xbox pads via ``xpad``, PlayStation
pads via ``hid-playstation``/``hid-sony``, most modern USB/Bluetooth pads). Button map::

    left stick  up/down, left/right     +x/-x, +y/-y   (analogue, with a dead zone)
    right stick up/down                 +z/-z          (arm tasks)
    D-pad up/down                       +z/-z          (full speed)
    right trigger (RT/R2)               close the gripper
    left trigger  (LT/L2)               open the gripper
    left bumper   (LB/L1)               toggle the gripper
    right bumper  (RB/R1), HELD         intervene (take over from the policy while held)
    A / cross   (south)                 success (ends the episode)
    B / circle  (east)                  failure (ends the episode)
    X, Y / square, triangle (west, north)  re-record the episode
    Start / Options                     start an episode
    Back / Select / Share               stop the session

Axes are normalised with the ranges the device reports (``absinfo``), then a dead zone
(``deadzone``, default 0.1 of full deflection) is applied and rescaled so the output is
continuous: 0 at the edge of the dead zone, 1 at full deflection (:func:`.mapping.apply_deadzone`).

The pure mapping (:class:`GamepadState`: events -> :class:`TeleopInput` fields) is separate from
the I/O (:class:`GamepadDevice`), so it can be fed ``evdev.InputEvent`` objects or
``(type, code, value)`` tuples without hardware.

Options (``device.<key>=value``): ``path`` (``/dev/input/eventN``; default: the first gamepad
found), ``deadzone`` (0.1), ``speed`` (1.0: full stick = full action scale).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, TeleopInput, parse_options
from hardware.teleop.mapping import apply_deadzone, initial_gripper, mapper_for

# Event codes from linux/input-event-codes.h (equal to evdev.ecodes; the tests check it), so the
# pure mapping needs no evdev.
EV_KEY, EV_ABS = 0x01, 0x03
ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
ABS_HAT0X, ABS_HAT0Y = 0x10, 0x11
BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_WEST = 0x130, 0x131, 0x133, 0x134
BTN_TL, BTN_TR, BTN_TL2, BTN_TR2 = 0x136, 0x137, 0x138, 0x139
BTN_SELECT, BTN_START = 0x13A, 0x13B

#: axis -> default (min, max) when the device does not report its ranges (xpad's)
DEFAULT_RANGES: dict[int, tuple[int, int]] = {
    ABS_X: (-32768, 32767),
    ABS_Y: (-32768, 32767),
    ABS_RX: (-32768, 32767),
    ABS_RY: (-32768, 32767),
    ABS_Z: (0, 255),
    ABS_RZ: (0, 255),
    ABS_HAT0X: (-1, 1),
    ABS_HAT0Y: (-1, 1),
}
TRIGGERS = (ABS_Z, ABS_RZ)
#: button -> one-shot event
BUTTON_EVENTS: dict[int, str] = {
    BTN_SOUTH: "success",
    BTN_EAST: "failure",
    BTN_NORTH: "rerecord",
    BTN_WEST: "rerecord",
    BTN_START: "start",
    BTN_SELECT: "stop",
}


@dataclass
class GamepadOptions:
    """``device.<key>=value`` options of ``device=gamepad``."""

    path: str | None = None
    """``/dev/input/eventN`` to use; default: the first readable gamepad."""
    deadzone: float = 0.1
    """Fraction of full stick deflection read as 0 (noise/drift of a centred stick), in [0, 1)."""
    speed: float = 1.0
    """Motion at full deflection as a fraction of the action's full scale, in (0, 1]."""


@dataclass
class GamepadState:
    """The pure mapping: feed input events, read the motion, gripper, intervene and events.

    Args:
        ranges: axis code -> (min, max) as the device reports it (``absinfo``).
        deadzone: see :class:`GamepadOptions`.
        speed: see :class:`GamepadOptions`.
    """

    ranges: dict[int, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_RANGES))
    deadzone: float = 0.1
    speed: float = 1.0
    gripper: float | None = None
    """-1 open, +1 closed; None until set (from the first observation, or a trigger/bumper)."""
    intervene: bool = False
    """True while the right bumper is held."""
    _axes: dict[int, float] = field(default_factory=dict)
    _events: set[str] = field(default_factory=set)

    def normalised(self, code: int, value: int) -> float:
        """An axis value in [-1, 1] (sticks, hats) or [0, 1] (triggers) using its range."""
        low, high = self.ranges.get(code, DEFAULT_RANGES.get(code, (-32768, 32767)))
        if high <= low:
            return 0.0
        if code in TRIGGERS:
            return float(np.clip((value - low) / (high - low), 0.0, 1.0))
        return float(np.clip((2.0 * value - (high + low)) / (high - low), -1.0, 1.0))

    def feed(self, event: Any) -> None:
        """One input event: an ``evdev.InputEvent`` or a ``(type, code, value)`` tuple."""
        if isinstance(event, tuple):
            etype, code, value = event
        else:
            etype, code, value = event.type, event.code, event.value
        if etype == EV_ABS:
            self._axes[code] = self.normalised(code, value)
            if code == ABS_RZ and self._axes[code] > 0.5:
                self.gripper = 1.0
            elif code == ABS_Z and self._axes[code] > 0.5:
                self.gripper = -1.0
        elif etype == EV_KEY:
            if code == BTN_TR:
                self.intervene = value != 0  # held: press 1, auto-repeat 2, release 0
            elif value != 1:
                return  # other buttons act on the press only (not on repeat or release)
            elif code == BTN_TR2:
                self.gripper = 1.0
            elif code == BTN_TL2:
                self.gripper = -1.0
            elif code == BTN_TL:
                self.gripper = -(self.gripper if self.gripper is not None else -1.0)
            elif code in BUTTON_EVENTS:
                self._events.add(BUTTON_EVENTS[code])

    def motion(self) -> np.ndarray:
        """The normalised motion in [-1, 1]^3 (stick up = +x, stick left = +y, right stick up = +z)."""

        def stick(code: int) -> float:
            return apply_deadzone(self._axes.get(code, 0.0), self.deadzone)

        hat_z = -self._axes.get(ABS_HAT0Y, 0.0)  # D-pad up reports -1
        x, y = -stick(ABS_Y), -stick(ABS_X)  # sticks report up and left as negative
        z = np.clip(-stick(ABS_RY) + hat_z, -1.0, 1.0)
        return (np.array([x, y, z], np.float32) * self.speed).astype(np.float32)

    def take_events(self) -> set[str]:
        """The one-shot events since the last call (then cleared)."""
        events, self._events = self._events, set()
        return events


def _is_gamepad(capabilities: dict[int, list]) -> bool:
    keys = set(capabilities.get(EV_KEY, ()))
    axes = {a[0] if isinstance(a, tuple) else a for a in capabilities.get(EV_ABS, ())}
    return bool(keys & {BTN_SOUTH, BTN_TR}) and {ABS_X, ABS_Y} <= axes


def _readable_devices(evdev: Any) -> list[str]:
    """``/dev/input/event*`` paths we may read (reading needs no write access), in number order."""
    try:
        paths = evdev.list_devices(writable=False)  # evdev >= 1.7
    except TypeError:
        paths = evdev.list_devices()
    digits = re.compile(r"(\d+)$")
    return sorted(paths, key=lambda p: int(m.group(1)) if (m := digits.search(p)) else -1)


@DEVICES.register("gamepad")
class GamepadDevice:
    """A Linux gamepad through evdev; see the module docstring for the button map."""

    name: ClassVar[str] = "gamepad"

    def __init__(self, context: TeleopContext) -> None:
        self.context = context
        self.options = parse_options(GamepadOptions, dict(context.options), "gamepad")
        if not 0 <= self.options.deadzone < 1 or not 0 < self.options.speed <= 1:
            raise DeviceError("device=gamepad needs 0 <= deadzone < 1 and 0 < speed <= 1")
        self.mapper = mapper_for(context, "gamepad")
        self.device = None
        self.state = GamepadState(deadzone=self.options.deadzone, speed=self.options.speed)

    # ----------------------------------------------------------------- device protocol
    def connect(self) -> None:
        """Open the gamepad; a missing evdev or controller is a :class:`DeviceError` with the fix."""
        if self.device is not None:
            return
        try:
            import evdev
        except ImportError:
            raise DeviceError(
                "device=gamepad needs the evdev library (Linux): pip install -e '.[teleop]' "
                "(or pip install evdev)"
            ) from None
        paths = [self.options.path] if self.options.path else _readable_devices(evdev)
        seen = []
        for path in paths:
            try:
                dev = evdev.InputDevice(path)
            except OSError as exc:
                seen.append(f"{path} (cannot open: {exc.strerror or exc})")
                continue
            if _is_gamepad(dev.capabilities(absinfo=False)):
                self._open(dev)
                return
            seen.append(f"{path} ({dev.name}: not a gamepad)")
            dev.close()
        unreadable = sorted(p for p in glob.glob("/dev/input/event*") if not os.access(p, os.R_OK))
        raise DeviceError(
            "device=gamepad found no game controller. Readable input devices: "
            + ("; ".join(seen) if seen else "none")
            + (f". Not readable (permission): {', '.join(unreadable)}" if unreadable else "")
            + ". Fix: plug the controller in (or pair it over Bluetooth), and give your user "
            "access to /dev/input: sudo usermod -aG input $USER, then log out and in again; "
            "or pick one with device.path=/dev/input/eventN"
        )

    def _open(self, dev: Any) -> None:
        ranges = dict(DEFAULT_RANGES)
        for code, info in dev.capabilities(absinfo=True).get(EV_ABS, ()):
            ranges[code] = (info.min, info.max)
        self.device = dev
        self.state = GamepadState(
            ranges=ranges, deadzone=self.options.deadzone, speed=self.options.speed
        )

    def disconnect(self) -> None:
        """Close the controller (idempotent)."""
        dev, self.device = self.device, None
        if dev is not None:
            with contextlib.suppress(OSError):
                dev.close()

    def reset(self, seed: int | None = None) -> None:
        """A new episode: pending events are dropped, the gripper follows the robot's again."""
        self.state.take_events()
        self.state.gripper = None

    def read(self, obs: dict[str, np.ndarray], policy_action: np.ndarray | None) -> TeleopInput:
        """Drain the pending events (never blocks) -> this tick's action and events."""
        if self.device is None:
            self.connect()
        try:
            while (event := self.device.read_one()) is not None:
                self.state.feed(event)
        except OSError as exc:
            self.disconnect()
            raise DeviceError(
                f"device=gamepad: the controller stopped responding ({exc}); plug it back in"
            ) from exc
        return reading(self.state, self.mapper, self.context, obs)

    def show(self, obs: dict[str, np.ndarray], status: dict[str, Any]) -> None:
        """No screen."""


def reading(state: GamepadState, mapper, context: TeleopContext, obs) -> TeleopInput:
    """A :class:`TeleopInput` from the mapping state (the gripper starts as the robot's)."""
    if state.gripper is None:
        state.gripper = initial_gripper(context.features, obs)
    events = state.take_events()
    return TeleopInput(
        action=mapper(obs, state.motion(), state.gripper),
        intervene=state.intervene,
        success="success" in events,
        failure="failure" in events,
        rerecord="rerecord" in events,
        stop="stop" in events,
        start="start" in events,
        extra={"gripper": "closed" if state.gripper > 0 else "open"},
    )
