"""The teleop device contract: what every ``device=`` produces at each control tick.

A device turns an operator's input (keys, a gamepad, a 3D mouse, a browser page, or the simulated
operator ``expert``) into a :class:`TeleopInput` once per control tick: an action in the task's
control mode (read from the action feature: ``ee_delta_pos`` + gripper for the arm tasks,
``planar_pos`` for ``pusht``, see :mod:`.mapping`) plus the operator's events: ``intervene``
(held), and the one-shot ``success``, ``failure``, ``rerecord``, ``stop`` and ``start``.

Devices register with ``@DEVICES.register("<name>")``; hardware libraries (evdev, hidapi, ...)
are imported lazily inside ``connect()``, so a missing library or device is a
:class:`DeviceError` naming the fix, never an import-time crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from robot_learning.features import FeatureSpec
from robot_learning.registry import Registry


class DeviceError(RuntimeError):
    """A device cannot be used (library missing, nothing connected, no permission); says the fix."""


@dataclass
class TeleopInput:
    """One control tick of operator input."""

    action: np.ndarray | None = None
    """The operator's action in the task's control mode and bounds; None: no command this tick
    (a recorder holds still: zero delta, or the current position for absolute modes)."""
    intervene: bool = False
    """Intervene is held: the operator's action replaces the policy's (intervention mode)."""
    success: bool = False
    """The operator labels the episode a success (ends it)."""
    failure: bool = False
    """The operator labels the episode a failure (ends it)."""
    rerecord: bool = False
    """Discard the current episode and record it again."""
    stop: bool = False
    """End the session after the current episode is saved or discarded."""
    start: bool = False
    """Start (or reset) an episode; devices without an explicit start send it implicitly."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Device-specific readouts (e.g. the browser's measured input latency)."""


@dataclass
class TeleopContext:
    """What a device may use besides the operator: the task's spec, rate and (in simulation) env."""

    features: FeatureSpec
    """The task's or robot's features; the action feature fixes the control mode and bounds."""
    fps: int
    """Control rate: :meth:`TeleopDevice.read` is called once per tick at this rate."""
    env: Any = None
    """The simulated env (only ``expert`` needs it: it reads privileged state); None on robots."""
    options: dict[str, Any] = field(default_factory=dict)
    """Device options from the command line (``device.<key>=value``)."""


class TeleopDevice(Protocol):
    """What ``teleop``, intervention mode and ``teleop_node`` call."""

    name: ClassVar[str]

    def __init__(self, context: TeleopContext) -> None: ...

    def connect(self) -> None:
        """Open the device; raises :class:`DeviceError` naming the fix when it cannot."""

    def disconnect(self) -> None:
        """Release the device (idempotent)."""

    def reset(self, seed: int | None = None) -> None:
        """A new episode starts (the expert re-plans; a browser resets its readouts)."""

    def read(self, obs: dict[str, np.ndarray], policy_action: np.ndarray | None) -> TeleopInput:
        """This tick's input, given the latest observation and the policy's proposed action
        (None when no policy drives). Never blocks longer than one control period."""

    def show(self, obs: dict[str, np.ndarray], status: dict[str, Any]) -> None:
        """Display the latest observation and status (a no-op for devices without a screen)."""


#: ``device=<name>`` -> device class
DEVICES: Registry[type] = Registry(
    "teleop device",
    discover=(
        "hardware.teleop.expert",
        "hardware.teleop.keyboard",
        "hardware.teleop.gamepad",
        "hardware.teleop.spacemouse",
        "hardware.teleop.browser",
        "hardware.robots.servo.leader",
    ),
    entry_points="robot_learning.devices",
)


_O = TypeVar("_O")


def parse_options(cls: type[_O], options: dict[str, Any], device: str) -> _O:
    """Build the dataclass ``cls`` from ``context.options`` (``device.<key>=value`` strings).

    Values are converted to the field's annotated type (``int``, ``float``, ``bool``, ``str``, or
    ``str | None``); unknown keys and unconvertible values are a :class:`DeviceError` naming the
    known options.
    """
    known = {f.name: str(f.type) for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DeviceError(
            f"device={device} has no option(s) {unknown}; known options: {sorted(known)}"
        )
    values: dict[str, Any] = {}
    for key, value in options.items():
        kind = known[key].replace(" ", "")
        try:
            if value is None or kind.startswith("str"):
                values[key] = None if value is None else str(value)
            elif kind == "bool":
                values[key] = _to_bool(value)
            elif kind == "int":
                values[key] = int(value)
            else:
                values[key] = float(value)
        except (TypeError, ValueError):
            raise DeviceError(
                f"device.{key}={value!r}: expected {kind} (device={device})"
            ) from None
    return cls(**values)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def make_device(name: str, context: TeleopContext) -> TeleopDevice:
    """Build the registered device ``name`` (not yet connected)."""
    return DEVICES.get(name)(context)
