"""A recording fake of ``ur_rtde`` (PyPI ``ur-rtde``): the ``rtde_control``, ``rtde_receive`` and
``rtde_io`` modules with the classes and methods ``robot=ur`` uses, same names and signatures.

The real SDK's modules are three top-level modules; here they are three namespaces of this module
(``rtde_control.RTDEControlInterface``, ...). All interfaces to one host share one
:class:`FakeURArm` (``ARMS[host]``), which records every call and reaches each commanded pose at
the end of its period: ``servoL`` and ``moveL`` set the TCP pose, ``moveJ`` sets the joints and,
having no kinematic model, puts the TCP back at its start pose. Hosts in :data:`REFUSE` refuse
connections with the real SDK's error.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from hardware.robots.fakes import CallLog

#: TCP pose the fake arm starts in: x, y, z (m, base frame), rotation vector (rad; tool down)
START_TCP = (0.4, 0.0, 0.3, 0.0, np.pi, 0.0)
#: joint positions the fake arm starts in (rad)
START_Q = (0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0)
#: hosts that refuse connections (as an unreachable controller does)
REFUSE: set[str] = set()


class FakeURArm:
    """The state one fake UR controller keeps across connections, and every call it received."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.tcp = np.array(START_TCP, np.float64)
        self.q = np.array(START_Q, np.float64)
        self.digital_out = [False] * 8
        self.script_running = False
        self.servoing = False
        self.calls = CallLog()


#: the fake controllers by host, created on first connection
ARMS: dict[str, FakeURArm] = {}


def arm(host: str) -> FakeURArm:
    """The fake controller at ``host`` (created on first use)."""
    if host not in ARMS:
        ARMS[host] = FakeURArm(host)
    return ARMS[host]


def _connect(host: str, port: int) -> FakeURArm:
    if host in REFUSE:
        raise RuntimeError(f"Error: Could not connect to: {host} at {port}, verify the IP")
    return arm(host)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:  # the real SDK checks these before sending
        raise ValueError(f"{name} ({value}) is outside the range [{low}, {high}]")


class RTDEControlInterface:
    """Fake of ``rtde_control.RTDEControlInterface``: uploads (pretends to) the control script."""

    def __init__(
        self,
        hostname: str,
        frequency: float = -1.0,
        flags: int = 1,
        ur_cap_port: int = 50002,
        rt_priority: int = 0,
    ) -> None:
        self._arm = _connect(hostname, 30004)
        self._arm.calls.record("RTDEControlInterface", "__init__", hostname, frequency)
        self._arm.script_running = True
        self._connected = True

    def _record(self, method: str, *args) -> None:
        if not self._connected:
            raise RuntimeError("RTDE control script is not running!")
        self._arm.calls.record("RTDEControlInterface", method, *args)

    def servoL(
        self,
        pose: list[float],
        speed: float,
        acceleration: float,
        time: float,
        lookahead_time: float,
        gain: float,
    ) -> bool:
        """Servo to ``pose`` (linear in tool space); reached at the end of ``time``."""
        self._record("servoL", list(pose), speed, acceleration, time, lookahead_time, gain)
        _check_range("lookahead_time", lookahead_time, 0.03, 0.2)
        _check_range("gain", gain, 100, 2000)
        self._arm.servoing = True
        self._arm.tcp = np.asarray(pose, np.float64).copy()
        return True

    def moveL(
        self,
        pose: list[float],
        speed: float = 0.25,
        acceleration: float = 1.2,
        asynchronous: bool = False,
    ) -> bool:
        """Move linearly in tool space to ``pose``."""
        self._record("moveL", list(pose), speed, acceleration, asynchronous)
        self._arm.servoing = False
        self._arm.tcp = np.asarray(pose, np.float64).copy()
        return True

    def moveJ(
        self,
        q: list[float],
        speed: float = 1.05,
        acceleration: float = 1.4,
        asynchronous: bool = False,
    ) -> bool:
        """Move linearly in joint space to ``q`` (the TCP goes back to its start pose)."""
        self._record("moveJ", list(q), speed, acceleration, asynchronous)
        self._arm.q = np.asarray(q, np.float64).copy()
        self._arm.tcp = np.array(START_TCP, np.float64)
        return True

    def servoStop(self, a: float = 10.0) -> bool:
        """Leave servo mode, decelerating at ``a`` (m/s^2)."""
        self._record("servoStop", a)
        self._arm.servoing = False
        return True

    def stopScript(self) -> None:
        """Terminate the control script on the controller."""
        self._record("stopScript")
        self._arm.script_running = False
        self._arm.servoing = False

    def isConnected(self) -> bool:
        """Connection status."""
        return self._connected

    def disconnect(self) -> None:
        """Close the connection."""
        self._arm.calls.record("RTDEControlInterface", "disconnect")
        self._connected = False


class RTDEReceiveInterface:
    """Fake of ``rtde_receive.RTDEReceiveInterface``."""

    def __init__(
        self,
        hostname: str,
        frequency: float = -1.0,
        variables: list[str] | None = None,
        verbose: bool = False,
        use_upper_range_registers: bool = False,
        rt_priority: int = 0,
    ) -> None:
        self._arm = _connect(hostname, 30004)
        self._arm.calls.record("RTDEReceiveInterface", "__init__", hostname, frequency)
        self._connected = True

    def _read(self, method: str) -> None:
        if not self._connected:
            raise RuntimeError("RTDEReceiveInterface is not connected")
        self._arm.calls.record("RTDEReceiveInterface", method)

    def getActualTCPPose(self) -> list[float]:
        """Actual TCP pose: x, y, z, rx, ry, rz (rotation vector)."""
        self._read("getActualTCPPose")
        return self._arm.tcp.tolist()

    def getActualQ(self) -> list[float]:
        """Actual joint positions (rad)."""
        self._read("getActualQ")
        return self._arm.q.tolist()

    def isConnected(self) -> bool:
        """Connection status."""
        return self._connected

    def disconnect(self) -> None:
        """Close the connection."""
        self._arm.calls.record("RTDEReceiveInterface", "disconnect")
        self._connected = False


class RTDEIOInterface:
    """Fake of ``rtde_io.RTDEIOInterface``."""

    def __init__(
        self, hostname: str, verbose: bool = False, use_upper_range_registers: bool = False
    ) -> None:
        self._arm = _connect(hostname, 30004)
        self._arm.calls.record("RTDEIOInterface", "__init__", hostname)

    def setStandardDigitalOut(self, output_id: int, signal_level: bool) -> bool:
        """Set standard digital output ``output_id`` (0..7)."""
        self._arm.calls.record("RTDEIOInterface", "setStandardDigitalOut", output_id, signal_level)
        _check_range("output_id", output_id, 0, 7)
        self._arm.digital_out[output_id] = bool(signal_level)
        return True

    def disconnect(self) -> None:
        """Close the connection."""
        self._arm.calls.record("RTDEIOInterface", "disconnect")


# the SDK's three modules, as the driver loads them
rtde_control = SimpleNamespace(RTDEControlInterface=RTDEControlInterface)
rtde_receive = SimpleNamespace(RTDEReceiveInterface=RTDEReceiveInterface)
rtde_io = SimpleNamespace(RTDEIOInterface=RTDEIOInterface)
