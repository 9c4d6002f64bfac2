"""The safety layer: what stands between any command and a robot.

:class:`SafetyFilter` turns a requested action into a safe one, step by step, and says why it
changed anything: NaN/Inf commands are replaced by a hold, then the action is clipped to its
declared bounds, to a maximum change per step, to the joint position and velocity limits (joint
control modes) and to a workspace box for the end effector. Every change is a
:class:`SafetyEvent` in a :class:`SafetyLog` (counts per reason, the recent events, optionally a
JSON-lines file). :class:`~hardware.safe_robot.SafeRobot` adds the command watchdog and the
latched emergency stop around any robot; the ROS 2 ``policy_node`` runs the same filter on what it
publishes.

Conventions the filter reads from the feature spec (no per-robot code): the end effector's
position is ``observation.state`` elements ``ee_x, ee_y, ee_z``; in joint modes the joint
positions are the ``observation.state`` elements named like the action's elements; action
elements whose name contains ``gripper`` are not deltas (a hold keeps their last value).
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from robot_learning.features import ACTION, FeatureSpec

#: control modes whose action is a change from the current state (a hold is zero)
DELTA_MODES = ("ee_delta_pos", "ee_delta_pose", "joint_delta")
#: control modes whose action is an absolute joint target
JOINT_MODES = ("joint_pos", "joint_delta")
EE_NAMES = ("ee_x", "ee_y", "ee_z")
STATE = "observation.state"


@dataclass
class SafetyConfig:
    """Limits applied to every command (``robot.safety.<key>=...``); None switches one off."""

    max_delta: float | None = None
    """Largest change of any action element from the previous command, in action units."""
    max_joint_velocity: float | None = None
    """Joint speed limit for joint control modes, in the action's units per second (rad/s for
    arms commanded in radians, deg/s for the servo arms): the command may move each joint at
    most this times the control period from where it is."""
    joint_limits: bool = True
    """Clip joint targets to the joint limits (the action's declared bounds) in joint modes."""
    workspace_low: tuple[float, float, float] | None = None
    """Lower corner of the end effector's allowed box (m, robot base frame)."""
    workspace_high: tuple[float, float, float] | None = None
    """Upper corner of that box."""
    watchdog_s: float | None = 0.5
    """Hold when no command arrived for this long (real-time robots only)."""
    log_path: str | None = None
    """Append every event to this JSON-lines file (None: keep them in memory only)."""

    def __post_init__(self) -> None:
        for name in ("max_delta", "max_joint_velocity", "watchdog_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value} must be positive (or null to switch it off)")
        if (self.workspace_low is None) != (self.workspace_high is None):
            raise ValueError("workspace_low and workspace_high go together: set both")
        if self.workspace_low is not None:
            low, high = np.asarray(self.workspace_low), np.asarray(self.workspace_high)
            if low.shape != (3,) or high.shape != (3,) or np.any(low >= high):
                raise ValueError(
                    f"workspace_low={list(low)} / workspace_high={list(high)} must be "
                    "3 numbers each with low < high on every axis"
                )


@dataclass
class SafetyEvent:
    """One intervention of the safety layer."""

    step: int
    """Commands seen before this one."""
    reason: str
    """``nonfinite``, ``bounds``, ``max_delta``, ``joint_position``, ``joint_velocity``,
    ``workspace``, ``watchdog``, ``estop`` or ``estop_hold``."""
    detail: str
    """Which elements and limits, in words."""
    requested: list[float]
    sent: list[float]
    time: float = field(default_factory=time.time)


class SafetyLog:
    """Counts per reason, the most recent events, and an optional JSON-lines file of all of them."""

    def __init__(self, path: str | Path | None = None, keep: int = 1000) -> None:
        self.counts: Counter[str] = Counter()
        self.recent: deque[SafetyEvent] = deque(maxlen=keep)
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, event: SafetyEvent) -> None:
        """Record ``event`` (written and flushed at once when a file is set)."""
        self.counts[event.reason] += 1
        self.recent.append(event)
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(asdict(event)) + "\n")

    def reasons(self) -> list[str]:
        """Reasons of the recent events, oldest first."""
        return [e.reason for e in self.recent]


def _names(spec: FeatureSpec, key: str) -> list[str]:
    feat = spec.get(key)
    return list(feat.names or ()) if feat is not None and len(feat.shape) == 1 else []


class SafetyFilter:
    """Clip each command to the limits of ``cfg`` and log why (see the module docstring).

    Args:
        features: the robot's (or bundle's) feature spec; the action feature gives the bounds
            and the control mode.
        cfg: the limits.
        control_hz: the command rate (for the joint velocity limit).
        ee_action_scale: metres of end-effector motion per action unit (``ee_delta_*`` modes);
            needed for a workspace box in those modes.
        forward_kinematics: joint positions -> end-effector xyz; needed for a workspace box in
            joint modes.
        log: where events go (a new :class:`SafetyLog` on ``cfg.log_path`` by default).
    """

    def __init__(
        self,
        features: FeatureSpec,
        cfg: SafetyConfig,
        control_hz: float,
        ee_action_scale: float | None = None,
        forward_kinematics: Callable[[np.ndarray], np.ndarray] | None = None,
        log: SafetyLog | None = None,
    ) -> None:
        act = features[ACTION]
        self.cfg, self.control_hz = cfg, float(control_hz)
        self.mode = act.control_mode
        self.names = list(act.names or (f"a{i}" for i in range(int(np.prod(act.shape)))))
        self.low = None if act.low is None else np.asarray(act.low, np.float32)
        self.high = None if act.high is None else np.asarray(act.high, np.float32)
        self.log = log or SafetyLog(cfg.log_path)
        self.ee_action_scale, self.forward_kinematics = ee_action_scale, forward_kinematics
        state = _names(features, STATE)
        self._ee = [state.index(n) for n in EE_NAMES] if set(EE_NAMES) <= set(state) else None
        self._joints = (
            [state.index(n) if n in state else -1 for n in self.names]
            if self.mode in JOINT_MODES
            else None
        )
        self._gripper = np.array(["gripper" in n for n in self.names])
        self._check_workspace_support()
        self.previous: np.ndarray | None = None
        self.steps = 0

    def _check_workspace_support(self) -> None:
        if self.cfg.workspace_low is None:
            return
        if self.mode in ("ee_delta_pos", "ee_delta_pose"):
            if self.ee_action_scale is None or self._ee is None:
                raise ValueError(
                    "safety.workspace_*: this robot does not say how far an action moves the end "
                    "effector (ee_action_scale) or has no ee_x/ee_y/ee_z state; remove the box"
                )
        elif self.mode == "joint_pos":
            if self.forward_kinematics is None:
                raise ValueError(
                    "safety.workspace_*: this robot has no forward kinematics for its joint "
                    "commands; remove the box or give the robot a description (URDF/MJCF)"
                )
        else:
            raise ValueError(
                f"safety.workspace_* is not supported in control mode {self.mode!r}; remove the box"
            )

    def reset(self) -> None:
        """Forget the previous command (a new episode, or after a hold the robot settled in)."""
        self.previous = None

    # ------------------------------------------------------------------ hold
    def hold(self, observation: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The command that keeps the robot where it is: zero deltas (grippers keep their last
        command), else the current joint positions, else the previous command."""
        n = len(self.names)
        if self.mode in DELTA_MODES:
            out = np.zeros(n, np.float32)
            if self.previous is not None:
                out[self._gripper] = self.previous[self._gripper]
            return out
        current = self._joint_positions(observation)
        if current is not None and np.all(np.isfinite(current)):
            if self.previous is not None:  # elements without a joint reading keep their command
                current = np.where(np.isnan(current), self.previous, current)
            if np.all(np.isfinite(current)):
                return current.astype(np.float32)
        if self.previous is not None:
            return self.previous.copy()
        raise RuntimeError(
            f"cannot hold in control mode {self.mode!r}: no previous command and no joint "
            "positions named like the action in observation.state"
        )

    def _joint_positions(self, observation) -> np.ndarray | None:
        if self._joints is None or not observation or STATE not in observation:
            return None
        state = np.asarray(observation[STATE], np.float64).ravel()
        return np.array([state[i] if i >= 0 else np.nan for i in self._joints])

    # ------------------------------------------------------------------ filter
    def filter(
        self, action, observation: Mapping[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, list[SafetyEvent]]:
        """The safe version of ``action`` given the latest ``observation``, and what changed."""
        requested = np.asarray(action, np.float64).ravel()
        events: list[SafetyEvent] = []
        if requested.size != len(self.names) or not np.all(np.isfinite(requested)):
            sent = self.hold(observation)
            why = (
                f"expected {len(self.names)} elements, got {requested.size}"
                if requested.size != len(self.names)
                else "NaN/Inf in " + self._which(~np.isfinite(requested))
            )
            events.append(self.event("nonfinite", why, requested, sent))
        else:
            sent = requested.copy()
            for step in (self._bounds, self._rate, self._joint_velocity, self._workspace):
                sent = step(sent, observation, events, requested)
        sent = sent.astype(np.float32)
        for event in events:
            self.log.add(event)
        self.previous = sent.copy()
        self.steps += 1
        return sent, events

    def _which(self, mask: np.ndarray) -> str:
        return ", ".join(n for n, m in zip(self.names, mask, strict=True) if m)

    def event(self, reason: str, detail: str, requested, sent) -> SafetyEvent:
        """A :class:`SafetyEvent` at the current step (not yet logged)."""
        return SafetyEvent(
            self.steps, reason, detail, [float(x) for x in requested], [float(x) for x in sent]
        )

    def _clip(self, value, low, high, reason, detail, events, requested):
        clipped = np.clip(value, low, high)
        changed = clipped != value
        if np.any(changed):
            events.append(
                self.event(reason, f"{detail}: {self._which(changed)}", requested, clipped)
            )
        return clipped

    def _bounds(self, a, obs, events, requested):
        if self.low is None:
            return a
        joint = self.mode == "joint_pos"
        if joint and not self.cfg.joint_limits:
            return a
        reason = "joint_position" if joint else "bounds"
        return self._clip(
            a, self.low, self.high, reason, "outside the declared bounds", events, requested
        )

    def _rate(self, a, obs, events, requested):
        if self.cfg.max_delta is None or self.previous is None:
            return a
        d = self.cfg.max_delta
        return self._clip(
            a,
            self.previous - d,
            self.previous + d,
            "max_delta",
            f"changed by more than {d} in one step",
            events,
            requested,
        )

    def _joint_velocity(self, a, obs, events, requested):
        if self.cfg.max_joint_velocity is None or self.mode not in JOINT_MODES:
            return a
        step = self.cfg.max_joint_velocity / self.control_hz
        joints = ~self._gripper
        if self.mode == "joint_delta":
            low, high = np.where(joints, -step, -np.inf), np.where(joints, step, np.inf)
        else:
            current = self._joint_positions(obs)
            if current is None:
                current = self.previous
            if current is None:
                return a
            current = np.where(np.isnan(current), a, current)
            low = np.where(joints, current - step, -np.inf)
            high = np.where(joints, current + step, np.inf)
        detail = f"faster than {self.cfg.max_joint_velocity} rad/s"
        return self._clip(a, low, high, "joint_velocity", detail, events, requested)

    def _workspace(self, a, obs, events, requested):
        if self.cfg.workspace_low is None:
            return a
        low = np.asarray(self.cfg.workspace_low, np.float64)
        high = np.asarray(self.cfg.workspace_high, np.float64)
        if self.mode == "joint_pos":
            target = np.asarray(self.forward_kinematics(a), np.float64)
            if np.all((target >= low) & (target <= high)):
                return a
            held = self.hold(obs)
            events.append(
                self.event(
                    "workspace",
                    f"end effector target {target.round(4).tolist()} outside the box: holding",
                    requested,
                    held,
                )
            )
            return held.astype(np.float64)
        if obs is None or STATE not in obs:
            return a
        ee = np.asarray(obs[STATE], np.float64).ravel()[self._ee]
        target = ee + a[:3] * self.ee_action_scale
        inside = np.clip(target, low, high)
        if np.all(inside == target):
            return a
        out = a.copy()
        out[:3] = (inside - ee) / self.ee_action_scale
        if self.low is not None:  # from outside the box, come back no faster than allowed
            out = np.clip(out, self.low, self.high)
        events.append(
            self.event(
                "workspace",
                f"end effector target {target.round(4).tolist()} outside "
                f"[{low.tolist()}, {high.tolist()}]",
                requested,
                out,
            )
        )
        return out
