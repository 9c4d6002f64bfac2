"""``device=keyboard``: the terminal keyboard (works over SSH, needs no X server or pynput).

The device puts a terminal in cbreak mode (``termios``/``tty``: no line buffering, no echo;
Ctrl-C still interrupts) and reads the pending bytes without blocking (``select``) at every
control tick. The terminal's settings are restored on :meth:`KeyboardDevice.disconnect`, when a
read fails, and at interpreter exit.

Key map (letters are case-insensitive)::

    w / s  or  Up / Down       +x / -x  (forward / back; on pusht: the board's +x / -x)
    a / d  or  Left / Right    +y / -y  (left / right)
    r / f                      +z / -z  (up / down; arm tasks only)
    space                      toggle the gripper (starts as the robot's: open, or closed
                               when it starts holding an object as in peg_insert)
    i  or  Tab                 toggle intervene (take over from the policy / hand back)
    Enter                      success (ends the episode)
    Backspace  or  x           failure (ends the episode)
    z                          re-record the episode
    n                          start an episode
    q  or  Esc                 stop the session

Motion: terminals send no key-up events, only the key again at the keyboard's auto-repeat rate.
A motion key therefore moves along its axis for ``hold_s`` seconds (default 0.5) after the last
byte received for it: a tap moves briefly, a held key moves continuously (auto-repeat, typically
25-33 Hz after a 250-600 ms delay, keeps refreshing the hold; 0.5 s bridges the common 500 ms
delay). The opposite key of an axis takes over immediately. Each axis moves at ``speed`` (default
0.5) of the action's full scale (arm tasks) or of the mapper's board speed (pusht).

Intervene is a **toggle** (no key-up events to implement "held"): press ``i`` once to take over,
again to hand back (and it is released at every new episode).

Options (``device.<key>=value``): ``tty`` (a terminal device to read instead of stdin, e.g.
``/dev/pts/3``), ``hold_s`` (0.5), ``speed`` (0.5).
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, TeleopInput, parse_options
from hardware.teleop.mapping import initial_gripper, mapper_for

ESC = b"\x1b"

#: key -> (axis, direction)
MOTION_KEYS: dict[bytes, tuple[int, int]] = {
    b"w": (0, 1),
    b"s": (0, -1),
    b"a": (1, 1),
    b"d": (1, -1),
    b"r": (2, 1),
    b"f": (2, -1),
    ESC + b"[A": (0, 1),  # Up
    ESC + b"[B": (0, -1),  # Down
    ESC + b"[D": (1, 1),  # Left
    ESC + b"[C": (1, -1),  # Right
    ESC + b"OA": (0, 1),  # the same arrows in "application cursor" mode
    ESC + b"OB": (0, -1),
    ESC + b"OD": (1, 1),
    ESC + b"OC": (1, -1),
}

#: key -> command
COMMAND_KEYS: dict[bytes, str] = {
    b" ": "gripper",
    b"i": "intervene",
    b"\t": "intervene",
    b"\r": "success",
    b"\n": "success",
    b"\x7f": "failure",  # Backspace (most terminals)
    b"\x08": "failure",  # Backspace as Ctrl-H
    b"x": "failure",
    b"z": "rerecord",
    b"n": "start",
    b"q": "stop",
    ESC: "stop",
}


def split_keys(data: bytes, final: bool) -> tuple[list[bytes], bytes]:
    """Split terminal input into keys; returns ``(keys, rest)``.

    Escape sequences (``ESC [ ... final`` / ``ESC O x``) are one key each. An escape sequence cut
    off at the end of ``data`` is returned as ``rest`` (to be completed by the next read) unless
    ``final`` (nothing more arrived): then a lone ``ESC`` is the Esc key and a partial sequence
    is dropped. Letters are lower-cased.
    """
    keys: list[bytes] = []
    i = 0
    while i < len(data):
        byte = data[i : i + 1]
        if byte != ESC:
            keys.append(byte.lower() if byte.isalpha() else byte)
            i += 1
            continue
        if i + 1 >= len(data):  # a lone ESC so far
            if final:
                keys.append(ESC)
                return keys, b""
            return keys, data[i:]
        intro = data[i + 1 : i + 2]
        if intro == b"O":
            if i + 2 >= len(data):
                return (keys, b"") if final else (keys, data[i:])
            keys.append(data[i : i + 3])
            i += 3
        elif intro == b"[":
            j = i + 2
            while j < len(data) and not 0x40 <= data[j] <= 0x7E:  # parameter bytes
                j += 1
            if j >= len(data):
                return (keys, b"") if final else (keys, data[i:])
            keys.append(data[i : j + 1])
            i = j + 1
        else:  # Esc followed by an ordinary key
            keys.append(ESC)
            i += 1
    return keys, b""


@dataclass
class KeyboardOptions:
    """``device.<key>=value`` options of ``device=keyboard``."""

    tty: str | None = None
    """A terminal device to read (e.g. ``/dev/pts/3``); default: stdin."""
    hold_s: float = 0.5
    """Seconds a motion key keeps moving after its last byte (bridges the auto-repeat delay)."""
    speed: float = 0.5
    """Motion per axis as a fraction of full scale, in (0, 1]."""


@dataclass
class KeyboardState:
    """The pure key -> command state machine (no I/O): feed keys, take one tick's readout."""

    hold_s: float = 0.5
    speed: float = 0.5
    gripper: float | None = None
    """-1 open, +1 closed (toggled by space); None until set from the first observation."""
    intervene: bool = False
    _axes: dict[int, tuple[int, float]] = field(default_factory=dict)
    _events: set[str] = field(default_factory=set)

    def press(self, key: bytes, now: float) -> None:
        """One key received at time ``now`` (seconds); unknown keys are ignored."""
        if key in MOTION_KEYS:
            axis, direction = MOTION_KEYS[key]
            self._axes[axis] = (direction, now + self.hold_s)
            return
        command = COMMAND_KEYS.get(key)
        if command == "gripper":
            self.gripper = -(self.gripper if self.gripper is not None else -1.0)
        elif command == "intervene":
            self.intervene = not self.intervene
        elif command is not None:
            self._events.add(command)

    def motion(self, now: float) -> np.ndarray:
        """The normalised motion in [-1, 1]^3 at time ``now``."""
        out = np.zeros(3, np.float32)
        for axis, (direction, until) in self._axes.items():
            if now < until:
                out[axis] = direction * self.speed
        return out

    def take_events(self) -> set[str]:
        """The one-shot events since the last call (then cleared)."""
        events, self._events = self._events, set()
        return events


@DEVICES.register("keyboard")
class KeyboardDevice:
    """Terminal keyboard teleop; see the module docstring for the key map.

    Args:
        context: the task's features and rate; ``context.options`` as in :class:`KeyboardOptions`.
        fd: the terminal's file descriptor (default: ``tty`` option, else stdin); for tests.
        clock: monotonic time in seconds (for tests).
    """

    name: ClassVar[str] = "keyboard"

    def __init__(
        self,
        context: TeleopContext,
        fd: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.context = context
        self.options = parse_options(KeyboardOptions, dict(context.options), "keyboard")
        if not 0 < self.options.speed <= 1 or self.options.hold_s <= 0:
            raise DeviceError("device=keyboard needs 0 < speed <= 1 and hold_s > 0")
        self.mapper = mapper_for(context, "keyboard")
        self.clock = clock
        self._fd_arg = fd
        self.fd: int | None = None
        self._owned_fd = False
        self._saved: list | None = None
        self._pending = b""
        self.state = KeyboardState(self.options.hold_s, self.options.speed)

    # ----------------------------------------------------------------- device protocol
    def connect(self) -> None:
        """Put the terminal in cbreak mode; not a terminal -> :class:`DeviceError` with the fix."""
        if self.fd is not None:
            return
        try:
            import termios
            import tty
        except ImportError:
            raise DeviceError(
                "device=keyboard needs a POSIX terminal (termios); use device=browser or gamepad"
            ) from None
        fd, owned = self._fd_arg, False
        if fd is None and self.options.tty:
            try:
                fd, owned = os.open(self.options.tty, os.O_RDWR | os.O_NOCTTY), True
            except OSError as exc:
                raise DeviceError(
                    f"device.tty={self.options.tty!r} cannot be opened: {exc}"
                ) from exc
        if fd is None:
            try:
                fd = sys.stdin.fileno()
            except (AttributeError, ValueError, OSError):
                fd = -1
        if fd < 0 or not os.isatty(fd):
            if owned:
                os.close(fd)
            raise DeviceError(
                "device=keyboard reads keys from a terminal, but stdin is not a TTY (piped, "
                "redirected or a background job): run teleop in an interactive terminal "
                "(over SSH: ssh -t), or use device=browser (any browser) or device=gamepad"
            )
        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        except termios.error as exc:
            if owned:
                os.close(fd)
            raise DeviceError(f"device=keyboard cannot configure the terminal: {exc}") from exc
        self.fd, self._owned_fd = fd, owned
        self._pending = b""
        atexit.register(self.disconnect)

    def disconnect(self) -> None:
        """Restore the terminal's settings (idempotent)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        atexit.unregister(self.disconnect)
        try:
            import termios

            if self._saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
        except (OSError, termios.error):
            pass  # the terminal is gone: nothing left to restore
        finally:
            self._saved = None
            if self._owned_fd:
                os.close(fd)

    def reset(self, seed: int | None = None) -> None:
        """A new episode: motion stops, intervene is released, the gripper follows the robot's."""
        self.state = KeyboardState(self.options.hold_s, self.options.speed)

    def read(self, obs: dict[str, np.ndarray], policy_action: np.ndarray | None) -> TeleopInput:
        """This tick's keys -> action and events; never blocks."""
        if self.fd is None:
            self.connect()
        try:
            return self._read(obs)
        except BaseException:
            self.disconnect()  # never leave the operator's terminal in cbreak mode (Ctrl-C too)
            raise

    def _read(self, obs: dict[str, np.ndarray]) -> TeleopInput:
        data = self._read_available()
        now = self.clock()
        if self.state.gripper is None:  # episode start: match the gripper's actual state
            self.state.gripper = initial_gripper(self.context.features, obs)
        keys, self._pending = split_keys(self._pending + data, final=not data)
        for key in keys:
            self.state.press(key, now)
        events = self.state.take_events()
        action = self.mapper(obs, self.state.motion(now), self.state.gripper)
        return TeleopInput(
            action=action,
            intervene=self.state.intervene,
            success="success" in events,
            failure="failure" in events,
            rerecord="rerecord" in events,
            stop="stop" in events,
            start="start" in events,
            extra={"gripper": "closed" if self.state.gripper > 0 else "open"},
        )

    def show(self, obs: dict[str, np.ndarray], status: dict[str, Any]) -> None:
        """No screen of its own (the teleop status line shows the session)."""

    # ----------------------------------------------------------------- I/O
    def _read_available(self) -> bytes:
        import select

        chunks = []
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0)
            if not ready:
                break
            try:
                chunk = os.read(self.fd, 1024)
            except OSError as exc:
                raise DeviceError(f"device=keyboard: the terminal failed ({exc})") from exc
            if not chunk:
                raise DeviceError("device=keyboard: the terminal closed (end of input)")
            chunks.append(chunk)
        return b"".join(chunks)

    def __enter__(self) -> KeyboardDevice:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
