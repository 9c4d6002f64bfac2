"""Hardware teleop devices (keyboard, gamepad, spacemouse) without hardware.

The keyboard is driven through a real pseudo-terminal; the gamepad mapping is fed real
``evdev.InputEvent`` objects when evdev is installed (else ``(type, code, value)`` tuples); the
SpaceMouse parser is fed real HID report bytes. Missing libraries are simulated through
``sys.modules``; missing devices through the real libraries (or stand-ins for them).
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import termios
import types

import numpy as np
import pytest

from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, make_device, parse_options
from hardware.teleop.gamepad import (
    ABS_HAT0Y,
    ABS_RY,
    ABS_RZ,
    ABS_X,
    ABS_Y,
    ABS_Z,
    BTN_EAST,
    BTN_NORTH,
    BTN_SELECT,
    BTN_SOUTH,
    BTN_START,
    BTN_TL,
    BTN_TR,
    EV_ABS,
    EV_KEY,
    GamepadDevice,
    GamepadState,
)
from hardware.teleop.keyboard import KeyboardDevice, KeyboardOptions, split_keys
from hardware.teleop.mapping import ActionMapper, apply_deadzone, initial_gripper
from hardware.teleop.spacemouse import (
    SpaceMouseDevice,
    SpaceMouseState,
    is_spacemouse,
    parse_report,
)
from robot_learning.envs import make_env

try:
    import evdev
except ImportError:  # the tests that need the real library skip; the rest use tuples
    evdev = None

try:
    import hid
except ImportError:
    hid = None

needs_evdev = pytest.mark.skipif(evdev is None, reason="evdev not installed (pip install evdev)")
needs_hid = pytest.mark.skipif(hid is None, reason="hidapi not installed (pip install hidapi)")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lift():
    env = make_env("lift")
    obs, _ = env.reset(seed=0)
    yield env, obs
    env.close()


@pytest.fixture(scope="module")
def pusht():
    env = make_env("pusht")
    obs, _ = env.reset(seed=0)
    yield env, obs
    env.close()


def context(env, **options) -> TeleopContext:
    return TeleopContext(features=env.features, fps=env.fps, options=options)


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def pty():
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def lflag(fd: int) -> int:
    return termios.tcgetattr(fd)[3]


# --------------------------------------------------------------------------- keyboard
def test_registered_names():
    assert DEVICES.get("keyboard") is KeyboardDevice
    assert DEVICES.get("gamepad") is GamepadDevice
    assert DEVICES.get("spacemouse") is SpaceMouseDevice


def test_keyboard_pty_keys_move_the_arm_and_restore_the_terminal(lift, pty):
    env, obs = lift
    master, slave = pty
    before = termios.tcgetattr(slave)
    assert lflag(slave) & termios.ICANON and lflag(slave) & termios.ECHO
    clock = Clock()
    assert isinstance(make_device("keyboard", context(env)), KeyboardDevice)
    dev = KeyboardDevice(context(env), fd=slave, clock=clock)
    dev.connect()
    assert not lflag(slave) & termios.ICANON and not lflag(slave) & termios.ECHO  # cbreak
    assert lflag(slave) & termios.ISIG  # Ctrl-C still interrupts

    idle = dev.read(obs, None)  # no key: hold still, gripper as the robot's (lift: open)
    np.testing.assert_allclose(idle.action, [0, 0, 0, -1])
    os.write(master, b"w")
    np.testing.assert_allclose(dev.read(obs, None).action, [0.5, 0, 0, -1])
    os.write(master, b"d")  # adds -y, +x still held
    np.testing.assert_allclose(dev.read(obs, None).action, [0.5, -0.5, 0, -1])
    os.write(master, b"F ")  # -z (caps ignored), space closes the gripper
    np.testing.assert_allclose(dev.read(obs, None).action, [0.5, -0.5, -0.5, 1])
    clock.t += 0.6  # past the hold time: motion stops, gripper stays closed
    np.testing.assert_allclose(dev.read(obs, None).action, [0, 0, 0, 1])
    os.write(master, b"\x1b[A\x1b[D")  # arrows Up, Left
    np.testing.assert_allclose(dev.read(obs, None).action, [0.5, 0.5, 0, 1])
    os.write(master, b"s")  # the opposite key takes over at once
    np.testing.assert_allclose(dev.read(obs, None).action, [-0.5, 0.5, 0, 1])

    dev.disconnect()
    assert termios.tcgetattr(slave) == before
    dev.disconnect()  # idempotent


def test_keyboard_auto_repeat_keeps_moving(lift, pty):
    env, obs = lift
    master, slave = pty
    clock = Clock()
    with KeyboardDevice(context(env, hold_s="0.5", speed="1.0"), fd=slave, clock=clock) as dev:
        os.write(master, b"r")
        assert dev.read(obs, None).action[2] == pytest.approx(1.0)
        clock.t += 0.4
        os.write(master, b"r")  # an auto-repeat byte, read at this tick, refreshes the hold
        assert dev.read(obs, None).action[2] == pytest.approx(1.0)
        clock.t += 0.4  # 0.8 s after the first press (> hold_s), 0.4 s after the repeat
        assert dev.read(obs, None).action[2] == pytest.approx(1.0)
        clock.t += 0.2
        assert dev.read(obs, None).action[2] == pytest.approx(0.0)


def test_keyboard_events_and_intervene_toggle(lift, pty):
    env, obs = lift
    master, slave = pty
    with KeyboardDevice(context(env), fd=slave, clock=Clock()) as dev:
        os.write(master, b"i")
        assert dev.read(obs, None).intervene
        assert dev.read(obs, None).intervene  # a toggle: stays on without key-up events
        os.write(master, b"\t")
        assert not dev.read(obs, None).intervene
        for key, event in [
            (b"\r", "success"),
            (b"\x7f", "failure"),
            (b"X", "failure"),
            (b"z", "rerecord"),
            (b"n", "start"),
            (b"q", "stop"),
        ]:
            os.write(master, key)
            inp = dev.read(obs, None)
            flags = {
                e: getattr(inp, e) for e in ("success", "failure", "rerecord", "start", "stop")
            }
            assert flags == {e: e == event for e in flags}, key
            assert not getattr(dev.read(obs, None), event)  # one-shot
        os.write(master, b"\x1b")  # a lone Esc waits one tick for a possible sequence
        assert not dev.read(obs, None).stop
        assert dev.read(obs, None).stop
        os.write(master, b"i")
        assert dev.read(obs, None).intervene
        dev.reset()
        assert not dev.read(obs, None).intervene  # released at a new episode


def test_keyboard_pusht_target_moves_from_the_agent(pusht, pty):
    env, obs = pusht
    master, slave = pty
    with KeyboardDevice(context(env), fd=slave, clock=Clock()) as dev:
        agent = obs["observation.state"][:2]
        np.testing.assert_allclose(dev.read(obs, None).action, agent, atol=1e-6)
        os.write(master, b"wa")
        step = 0.5 * 0.5 * 0.512 / env.fps  # key speed x mapper speed x board / fps
        np.testing.assert_allclose(dev.read(obs, None).action, agent + [step, step], atol=1e-6)


def test_keyboard_tty_option_and_errors(lift, pty):
    env, obs = lift
    master, slave = pty
    dev = KeyboardDevice(context(env, tty=os.ttyname(slave)), clock=Clock())
    dev.connect()
    os.write(master, b"a")
    assert dev.read(obs, None).action[1] == pytest.approx(0.5)
    dev.disconnect()

    read_end, write_end = os.pipe()
    try:
        with pytest.raises(DeviceError, match="not a TTY.*device=browser"):
            KeyboardDevice(context(env), fd=read_end).connect()
    finally:
        os.close(read_end)
        os.close(write_end)
    with pytest.raises(DeviceError, match="no option"):
        KeyboardDevice(context(env, colour="red"))
    with pytest.raises(DeviceError, match="speed"):
        KeyboardDevice(context(env, speed="2"))


def test_keyboard_restores_the_terminal_when_a_read_fails(lift, pty):
    env, obs = lift
    master, slave = pty
    before = termios.tcgetattr(slave)
    dev = KeyboardDevice(context(env), fd=slave, clock=Clock())
    dev.connect()
    assert termios.tcgetattr(slave) != before

    def broken_clock() -> float:
        raise KeyboardInterrupt  # e.g. Ctrl-C arriving during a read

    dev.clock = broken_clock
    with pytest.raises(KeyboardInterrupt):
        dev.read(obs, None)
    assert dev.fd is None and termios.tcgetattr(slave) == before

    dev = KeyboardDevice(context(env), fd=slave, clock=Clock())
    dev.connect()
    os.close(master)  # the terminal hangs up
    with pytest.raises(DeviceError, match="terminal"):
        dev.read(obs, None)
    assert dev.fd is None


def test_split_keys_escape_sequences():
    assert split_keys(b"wA\x1b[C", final=False) == ([b"w", b"a", b"\x1b[C"], b"")
    assert split_keys(b"w\x1b[", final=False) == ([b"w"], b"\x1b[")  # completed next read
    assert split_keys(b"\x1b[" + b"A", final=False) == ([b"\x1b[A"], b"")
    assert split_keys(b"\x1b", final=True) == ([b"\x1b"], b"")
    assert split_keys(b"\x1b[1;5A", final=False) == ([b"\x1b[1;5A"], b"")  # Ctrl-Up: one key
    assert split_keys(b"\x1bq", final=False) == ([b"\x1b", b"q"], b"")


def test_initial_gripper_follows_the_robot(lift):
    env, obs = lift
    assert initial_gripper(env.features, obs) == -1.0  # lift starts open
    np.testing.assert_array_equal(ActionMapper(env.features, env.fps).hold(obs), [0, 0, 0, -1])
    peg = make_env("peg_insert")
    try:
        peg_obs, _ = peg.reset(seed=0)
        assert initial_gripper(peg.features, peg_obs) == 1.0  # peg_insert starts holding the peg
        # holding still keeps the peg gripped (a gripper command of 0 would half-open it)
        np.testing.assert_array_equal(
            ActionMapper(peg.features, peg.fps).hold(peg_obs), [0, 0, 0, 1]
        )
    finally:
        peg.close()


def test_parse_options_types_and_errors():
    opts = parse_options(KeyboardOptions, {"hold_s": "0.25", "tty": "/dev/pts/9"}, "keyboard")
    assert opts.hold_s == 0.25 and opts.tty == "/dev/pts/9" and opts.speed == 0.5
    with pytest.raises(DeviceError, match="expected float"):
        parse_options(KeyboardOptions, {"hold_s": "soon"}, "keyboard")


# --------------------------------------------------------------------------- gamepad
def ev(etype: int, code: int, value: int):
    """A real evdev.InputEvent when evdev is installed, else the equivalent tuple."""
    if evdev is not None:
        return evdev.InputEvent(0, 0, etype, code, value)
    return (etype, code, value)


@needs_evdev
def test_gamepad_codes_match_evdev():
    e = evdev.ecodes
    assert (EV_KEY, EV_ABS) == (e.EV_KEY, e.EV_ABS)
    assert (ABS_X, ABS_Y, ABS_Z, ABS_RY, ABS_RZ, ABS_HAT0Y) == (
        e.ABS_X,
        e.ABS_Y,
        e.ABS_Z,
        e.ABS_RY,
        e.ABS_RZ,
        e.ABS_HAT0Y,
    )
    assert (BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_TL, BTN_TR, BTN_START, BTN_SELECT) == (
        e.BTN_SOUTH,
        e.BTN_EAST,
        e.BTN_NORTH,
        e.BTN_TL,
        e.BTN_TR,
        e.BTN_START,
        e.BTN_SELECT,
    )


def test_gamepad_dead_zone_is_continuous():
    state = GamepadState(deadzone=0.1)
    full = 32767

    def y_motion(value: int) -> float:
        state.feed(ev(EV_ABS, ABS_X, value))
        return float(state.motion()[1])

    assert y_motion(0) == 0.0
    assert y_motion(int(0.09 * full)) == 0.0  # inside the dead zone
    just_outside = y_motion(-int(0.12 * full))  # stick slightly left -> small +y
    assert 0.0 < just_outside < 0.05
    assert just_outside == pytest.approx((0.12 - 0.1) / 0.9, abs=2e-3)
    assert y_motion(-32768) == pytest.approx(1.0)
    assert y_motion(full) == pytest.approx(-1.0)
    assert apply_deadzone(0.1, 0.1) == 0.0 and apply_deadzone(-0.55, 0.1) == pytest.approx(-0.5)


def test_gamepad_events_to_lift_actions(lift):
    env, obs = lift
    state = GamepadState()
    from hardware.teleop.gamepad import reading
    from hardware.teleop.mapping import mapper_for

    ctx = context(env)
    mapper = mapper_for(ctx, "gamepad")
    for event in [
        ev(EV_ABS, ABS_Y, -32768),  # left stick full up -> +x
        ev(EV_ABS, ABS_RY, 32767),  # right stick full down -> -z
        ev(EV_ABS, ABS_RZ, 255),  # right trigger -> close
    ]:
        state.feed(event)
    np.testing.assert_allclose(reading(state, mapper, ctx, obs).action, [1, 0, -1, 1], atol=1e-4)
    state.feed(ev(EV_ABS, ABS_RY, 0))
    state.feed(ev(EV_ABS, ABS_HAT0Y, -1))  # D-pad up -> +z
    state.feed(ev(EV_ABS, ABS_Z, 200))  # left trigger -> open
    np.testing.assert_allclose(reading(state, mapper, ctx, obs).action, [1, 0, 1, -1], atol=1e-4)
    state.feed(ev(EV_KEY, BTN_TL, 1))  # left bumper toggles -> closed
    state.feed(ev(EV_KEY, BTN_TL, 0))
    assert reading(state, mapper, ctx, obs).action[3] == 1.0


def test_gamepad_intervene_is_held_and_buttons_are_one_shot(lift):
    env, obs = lift
    state = GamepadState()
    from hardware.teleop.gamepad import reading
    from hardware.teleop.mapping import mapper_for

    ctx = context(env)
    mapper = mapper_for(ctx, "gamepad")
    state.feed(ev(EV_KEY, BTN_TR, 1))
    assert reading(state, mapper, ctx, obs).intervene
    assert reading(state, mapper, ctx, obs).intervene  # still held, no new events
    state.feed(ev(EV_KEY, BTN_TR, 2))  # auto-repeat while held
    assert reading(state, mapper, ctx, obs).intervene
    state.feed(ev(EV_KEY, BTN_TR, 0))
    assert not reading(state, mapper, ctx, obs).intervene
    for code, event in [
        (BTN_SOUTH, "success"),
        (BTN_EAST, "failure"),
        (BTN_NORTH, "rerecord"),
        (BTN_START, "start"),
        (BTN_SELECT, "stop"),
    ]:
        state.feed(ev(EV_KEY, code, 1))
        state.feed(ev(EV_KEY, code, 0))
        inp = reading(state, mapper, ctx, obs)
        assert getattr(inp, event) and not inp.intervene, event
        others = {"success", "failure", "rerecord", "start", "stop"} - {event}
        assert not any(getattr(inp, o) for o in others)
        assert not getattr(reading(state, mapper, ctx, obs), event)


class FakeEvdevDevice:
    """Stands in for ``evdev.InputDevice`` (third-party I/O) with queued events."""

    def __init__(self, path, name, events=(), gamepad=True, absinfo=None):
        self.path, self.name, self.events, self.closed = path, name, list(events), False
        self._gamepad, self._absinfo = gamepad, absinfo or {}

    def capabilities(self, absinfo=True):
        if not self._gamepad:
            return {EV_KEY: [30, 31]}
        axes = [ABS_X, ABS_Y, ABS_RY]
        if absinfo:
            axes = [(a, self._absinfo[a]) for a in axes if a in self._absinfo]
        return {EV_KEY: [BTN_SOUTH, BTN_TR], EV_ABS: axes}

    def read_one(self):
        return self.events.pop(0) if self.events else None

    def close(self):
        self.closed = True


def fake_evdev(devices: dict[str, FakeEvdevDevice]) -> types.ModuleType:
    module = types.ModuleType("evdev")
    module.list_devices = lambda: list(devices)
    module.InputDevice = lambda path: devices[path]
    return module


def test_gamepad_device_reads_events_with_the_reported_ranges(lift, monkeypatch):
    env, obs = lift
    info = types.SimpleNamespace(min=0, max=255)  # a pad with 8-bit sticks (centre 127.5)
    keyboard = FakeEvdevDevice("/dev/input/event0", "AT keyboard", gamepad=False)
    pad = FakeEvdevDevice(
        "/dev/input/event3",
        "Pad",
        events=[ev(EV_ABS, ABS_Y, 0), ev(EV_KEY, BTN_TR, 1)],
        absinfo={ABS_X: info, ABS_Y: info, ABS_RY: info},
    )
    devices = {keyboard.path: keyboard, pad.path: pad}
    monkeypatch.setitem(sys.modules, "evdev", fake_evdev(devices))
    dev = GamepadDevice(context(env))
    dev.connect()
    assert dev.device is pad and keyboard.closed
    inp = dev.read(obs, None)
    np.testing.assert_allclose(inp.action, [1, 0, 0, -1], atol=1e-4)  # 0 of 0..255 = full up
    assert inp.intervene
    pad.events.append(ev(EV_ABS, ABS_Y, 128))  # centre of 0..255: inside the dead zone
    assert dev.read(obs, None).action[0] == 0.0
    dev.disconnect()
    assert pad.closed


def test_gamepad_missing_library_names_the_fix(lift, monkeypatch):
    env, _ = lift
    monkeypatch.setitem(sys.modules, "evdev", None)  # import evdev -> ImportError
    with pytest.raises(DeviceError, match=r"pip install -e '\.\[teleop\]'"):
        GamepadDevice(context(env)).connect()


def test_gamepad_no_controller_lists_devices_and_the_fix(lift, monkeypatch):
    env, _ = lift
    keyboard = FakeEvdevDevice("/dev/input/event0", "AT keyboard", gamepad=False)
    monkeypatch.setitem(sys.modules, "evdev", fake_evdev({keyboard.path: keyboard}))
    with pytest.raises(DeviceError) as err:
        GamepadDevice(context(env)).connect()
    message = str(err.value)
    assert "/dev/input/event0 (AT keyboard: not a gamepad)" in message
    assert "usermod -aG input" in message and "plug" in message


@needs_evdev
def test_gamepad_real_evdev_missing_path(lift):
    env, _ = lift
    with pytest.raises(DeviceError, match="cannot open.*usermod -aG input"):
        GamepadDevice(context(env, path="/nonexistent/event99")).connect()


# --------------------------------------------------------------------------- spacemouse
def report(report_id: int, *values: int) -> bytes:
    return bytes([report_id]) + struct.pack(f"<{len(values)}h", *values)


def test_parse_real_hid_reports():
    # SpaceMouse Compact, cap pushed right and towards the operator: report 1, then report 2
    assert parse_report(bytes.fromhex("01 5e01 a2fe 0000")).translation == (350, -350, 0)
    assert parse_report(bytes.fromhex("02 0a00 f6ff 6400")).rotation == (10, -10, 100)
    six = parse_report(report(1, 1, 2, 3, -4, -5, -6))  # newer devices: 6 axes in report 1
    assert six.translation == (1, 2, 3) and six.rotation == (-4, -5, -6)
    assert parse_report(bytes.fromhex("03 0100")).buttons == 1
    assert parse_report(bytes.fromhex("03 0200")).buttons == 2
    assert parse_report(list(bytes.fromhex("03 03"))).buttons == 3  # hidapi returns int lists
    assert parse_report(b"\x01\x00") is None and parse_report(b"\x17abcdef") is None


def test_spacemouse_axes_dead_zone_and_frame():
    state = SpaceMouseState(scale=350, deadzone=0.1)
    state.apply(parse_report(report(1, 0, -350, 0)))  # push away from the operator
    np.testing.assert_allclose(state.motion(), [1, 0, 0])
    state.apply(parse_report(report(1, -350, 0, -350)))  # left and lifted
    np.testing.assert_allclose(state.motion(), [0, 1, 1])
    state.apply(parse_report(report(1, 30, 0, 0)))  # 30/350 < 0.1: dead zone
    np.testing.assert_allclose(state.motion(), [0, 0, 0])
    state.apply(parse_report(report(1, 42, 0, 0)))  # 0.12: just outside -> small -y
    assert -0.05 < state.motion()[1] < 0 and state.motion()[1] == pytest.approx(-0.02 / 0.9, 1e-3)
    state.apply(parse_report(report(1, 700, 0, 0)))  # beyond full scale: clipped
    np.testing.assert_allclose(state.motion(), [0, -1, 0])
    state.apply(parse_report(report(2, 350, 350, 350)))  # rotation does not move
    np.testing.assert_allclose(state.motion(), [0, -1, 0])


def test_spacemouse_buttons():
    state = SpaceMouseState()
    state.gripper = -1.0
    state.apply(parse_report(b"\x03\x01\x00"))  # left pressed: toggle -> closed
    assert state.gripper == 1.0
    state.apply(parse_report(b"\x03\x01\x00"))  # still pressed: no second toggle
    assert state.gripper == 1.0
    state.apply(parse_report(b"\x03\x00\x00"))
    state.apply(parse_report(b"\x03\x01\x00"))
    assert state.gripper == -1.0
    state.apply(parse_report(b"\x03\x02\x00"))  # right held: intervene; left released
    assert state.intervene and state.gripper == -1.0
    state.apply(parse_report(b"\x03\x00\x00"))
    assert not state.intervene


def test_vendor_filter():
    assert is_spacemouse(0x256F, 0xC635)  # SpaceMouse Compact
    assert is_spacemouse(0x046D, 0xC626)  # SpaceNavigator (Logitech vendor id)
    assert not is_spacemouse(0x046D, 0xC077)  # an ordinary Logitech mouse


class FakeHidDevice:
    """Stands in for ``hid.device`` (third-party I/O) with queued reports."""

    def __init__(self, reports):
        self.reports, self.opened, self.nonblocking, self.closed = list(reports), None, 0, False

    def open_path(self, path):
        self.opened = path

    def set_nonblocking(self, value):
        self.nonblocking = value

    def read(self, size):
        return list(self.reports.pop(0)) if self.reports else []

    def close(self):
        self.closed = True


def fake_hid(entries, handle) -> types.ModuleType:
    module = types.ModuleType("hid")
    module.enumerate = lambda *args: entries
    module.device = lambda: handle
    return module


MOUSE = {"path": b"/dev/hidraw0", "vendor_id": 0x046D, "product_id": 0xC077, "usage_page": 1}
COMPACT = {"path": b"/dev/hidraw3", "vendor_id": 0x256F, "product_id": 0xC635, "usage_page": 1}


def test_spacemouse_device_reads_reports(lift, pusht, monkeypatch):
    env, obs = lift
    handle = FakeHidDevice([report(1, 0, -350, 0), b"\x03\x02\x00"])
    monkeypatch.setitem(sys.modules, "hid", fake_hid([MOUSE, dict(COMPACT, usage=8)], handle))
    dev = SpaceMouseDevice(context(env))
    dev.connect()
    assert handle.opened == b"/dev/hidraw3" and handle.nonblocking
    inp = dev.read(obs, None)
    np.testing.assert_allclose(inp.action, [1, 0, 0, -1])
    assert inp.intervene and not (inp.success or inp.failure or inp.stop)
    handle.reports += [b"\x03\x01\x00", report(1, 0, 0, 0)]  # left button: close; cap released
    inp = dev.read(obs, None)
    np.testing.assert_allclose(inp.action, [0, 0, 0, 1])
    assert not inp.intervene
    dev.disconnect()
    assert handle.closed

    env, obs = pusht
    handle = FakeHidDevice([report(1, -350, 0, 0)])  # left -> +y on the board
    monkeypatch.setitem(sys.modules, "hid", fake_hid([COMPACT], handle))
    dev = SpaceMouseDevice(context(env))
    agent = obs["observation.state"][:2]
    step = 0.5 * 0.512 / env.fps
    np.testing.assert_allclose(dev.read(obs, None).action, agent + [0, step], atol=1e-6)


def test_spacemouse_missing_library_names_the_fix(lift, monkeypatch):
    env, _ = lift
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(DeviceError, match=r"pip install -e '\.\[teleop\]'"):
        SpaceMouseDevice(context(env)).connect()


@needs_hid
def test_spacemouse_no_device_names_the_udev_fix(lift, monkeypatch):
    env, _ = lift
    monkeypatch.setattr(hid, "enumerate", lambda *args: [MOUSE])  # only an ordinary mouse
    with pytest.raises(DeviceError) as err:
        SpaceMouseDevice(context(env)).connect()
    message = str(err.value)
    assert "0x256f" in message and "udev" in message and 'idVendor}=="256f"' in message


@needs_hid
def test_spacemouse_real_hidapi_open_failure(lift, monkeypatch):
    env, _ = lift
    gone = dict(COMPACT, path=b"/nonexistent/hidraw99")
    monkeypatch.setattr(hid, "enumerate", lambda *args: [gone])  # listed, but cannot be opened
    with pytest.raises(DeviceError, match="cannot open.*udev"):
        SpaceMouseDevice(context(env)).connect()
