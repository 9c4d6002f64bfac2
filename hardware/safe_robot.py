""":class:`SafeRobot`: the safety layer around any robot.

Every command goes through a :class:`~hardware.safety.SafetyFilter` (NaN/Inf never reaches the
driver); a watchdog thread sends a hold when no command arrived for ``safety.watchdog_s`` (robots
that run in real time only); :meth:`SafeRobot.estop` latches an emergency stop: the robot holds
and every later command is replaced by a hold until :meth:`SafeRobot.reset_estop`.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np

from hardware.robot import Robot, RobotError
from hardware.robot_wrapper import RobotWrapper
from hardware.safety import SafetyFilter, SafetyLog


class SafeRobot(RobotWrapper):
    """``robot`` behind the safety layer; unknown attributes are the wrapped robot's."""

    def __init__(self, robot: Robot, log: SafetyLog | None = None) -> None:
        super().__init__(robot)
        self.log = log or SafetyLog(robot.cfg.safety.log_path)
        self.filter: SafetyFilter | None = None
        self.latched = False
        self._lock = threading.RLock()
        self._last_obs: dict[str, np.ndarray] | None = None
        self._last_command = time.monotonic()
        self._holding = False
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Connect the robot, build the filter from its features and arm the watchdog."""
        self.robot.connect()
        fk = self.robot.forward_kinematics if self.robot.has_forward_kinematics else None
        try:
            self.filter = SafetyFilter(
                self.robot.features,
                self.cfg.safety,
                self.robot.control_hz,
                ee_action_scale=self.robot.ee_action_scale,
                forward_kinematics=fk,
                log=self.log,
            )
        except ValueError:
            self.robot.disconnect()
            raise
        self._last_command = time.monotonic()
        timeout = self.cfg.safety.watchdog_s
        if self.robot.realtime and timeout:
            self._stop.clear()
            self._watchdog = threading.Thread(
                target=self._watch, args=(timeout,), name="robot-watchdog", daemon=True
            )
            self._watchdog.start()

    def disconnect(self) -> None:
        """Stop the watchdog, then disconnect the robot (idempotent)."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None
        self.robot.disconnect()

    def home(self) -> None:
        """Home the robot; refused while the e-stop is latched."""
        if self.latched:
            raise RobotError("the emergency stop is latched: call reset_estop() before home()")
        with self._lock:
            self.robot.home()
            self._filter().reset()
            self._last_obs = None
            self._last_command = time.monotonic()

    # ------------------------------------------------------------------ I/O
    def get_observation(self) -> dict[str, np.ndarray]:
        """The robot's observation (kept for the filter's hold and limits)."""
        obs = self.robot.get_observation()
        self._last_obs = obs
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Filter ``action`` (or hold while the e-stop is latched) and send it; returns what the
        driver sent."""
        with self._lock:
            flt = self._filter()
            if self.latched:
                safe = self._hold()
                flt.log.add(flt.event("estop_hold", "e-stop latched", np.ravel(action), safe))
                flt.previous = safe
            else:
                safe, _ = flt.filter(action, self._last_obs)
            sent = self.robot.send_action(safe)
            self._last_command = time.monotonic()
            self._holding = False
            return sent

    def estop(self, reason: str = "requested") -> None:
        """Latch the emergency stop: hold now and replace every command by a hold until reset."""
        with self._lock:
            self.latched = True
            flt = self._filter()
            hold = self._hold()
            flt.log.add(flt.event("estop", reason, hold, hold))
            flt.previous = hold
            if self.robot.is_connected:
                self.robot.send_action(hold)

    def reset_estop(self) -> None:
        """Release the latch; the next command is filtered from the robot's current state."""
        with self._lock:
            self.latched = False
            self._filter().reset()

    def _hold(self) -> np.ndarray:
        """A hold at where the robot is now (a fresh reading when the robot gives one)."""
        if self.robot.is_connected:
            with contextlib.suppress(Exception):  # a failing sensor must not prevent the hold
                self._last_obs = self.robot.get_observation()
        return self._filter().hold(self._last_obs)

    def _filter(self) -> SafetyFilter:
        if self.filter is None:
            raise RobotError(f"robot {self.name!r} is not connected: call connect() first")
        return self.filter

    def _watch(self, timeout: float) -> None:
        while not self._stop.wait(timeout / 4):
            with self._lock:
                silent = time.monotonic() - self._last_command
                if silent < timeout or self._holding or not self.robot.is_connected:
                    continue
                flt = self._filter()
                hold = self._hold()
                flt.log.add(
                    flt.event("watchdog", f"no command for {silent:.2f} s: holding", hold, hold)
                )
                flt.previous = hold
                self.robot.send_action(hold)
                self._holding = True
