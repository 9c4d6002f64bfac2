"""``device=expert``: the simulated operator, the task's scripted expert behind the device interface.

It stands in for a human wherever a device is expected (``teleop``, intervention mode,
``teleop_node``), so recording, corrections and the correction loop run unattended and
reproducibly. At every tick it asks the scripted expert (:func:`robot_learning.envs.make_expert`,
privileged simulator state) for its plan and behaves like a human operator:

- **reaction delay**: the plan computed at tick ``t`` reaches the output at tick
  ``t + reaction_steps`` (a queue); until the queue is full the action is None (no command: the
  recorder holds still);
- **no policy** (``policy_action`` is None, plain demonstrations): ``intervene`` is always False
  and the action is the (delayed) expert's;
- **a policy drives**: the operator takes over (``intervene=True``) when the policy's action
  *drifts* from the plan (root-mean-square difference of the actions normalised by the action
  bounds, above ``drift_threshold`` for ``drift_steps`` consecutive ticks; with
  ``drift_smoothing`` < 1 the difference is an exponential moving average, so a person watching
  the motion ignores an RL policy's zero-mean exploration noise and reacts to where it heads) or *stalls* (the end
  effector / agent moves less than ``stall_distance`` metres a tick for ``stall_steps``
  consecutive ticks while the task is not solved), and hands back after ``hold_steps`` ticks.

It emits no success/failure events: the recorder reads the simulator's own ``is_success`` flag,
which is exact, and the episode otherwise ends at the task's time limit. It is deterministic
given ``reset(seed)`` (the expert's noise is seeded; the rules have no randomness).

Options (``device.<key>=value``): ``reaction_steps`` (1), ``drift_threshold`` (0.5),
``drift_steps`` (3), ``drift_smoothing`` (1.0), ``stall_steps`` (10), ``stall_distance`` (0.001),
``hold_steps`` (15).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, TeleopInput, parse_options
from robot_learning.features import ACTION

#: privileged ``task_state()`` keys giving the controlled point's position, first match wins
POSITION_KEYS = ("ee_pos", "agent_pos")


@dataclass
class ExpertOptions:
    """The simulated operator's behaviour (``device.<key>=value``)."""

    reaction_steps: int = 1
    """Ticks between the expert computing an action and it reaching the output (>= 0). 1 tick
    (100 ms at the arm tasks' 10 Hz) keeps the scripted lift expert at 10/10 successes on seeds
    0-9; at 2 ticks its grasp fails about half the time (closed-loop control with a delay)."""
    drift_threshold: float = 0.5
    """RMS difference of policy and expert actions, in half action ranges, counted as drift."""
    drift_steps: int = 3
    """Consecutive drifting ticks before the operator takes over."""
    drift_smoothing: float = 1.0
    """Weight of the newest tick in the moving average of the action difference (1: none; 0.25
    averages about 7 ticks, shrinking independent per-tick noise about 2.6x)."""
    stall_steps: int = 10
    """Consecutive ticks of (almost) no motion, task not solved, before the operator takes over."""
    stall_distance: float = 0.001
    """Motion per tick (metres of the end effector / agent) below which a tick counts as stalled."""
    hold_steps: int = 15
    """Ticks of intervention before handing back to the policy."""

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ExpertOptions:
        """Build from ``context.options``; unknown keys and bad values are a :class:`DeviceError`."""
        opts = parse_options(cls, options, "expert")
        negative = [
            f"device.{f.name}={getattr(opts, f.name)}"
            for f in fields(cls)
            if getattr(opts, f.name) < 0
        ]
        if negative:
            raise DeviceError(f"{', '.join(negative)}: must be >= 0 (device=expert)")
        if not 0 < opts.drift_smoothing <= 1:
            raise DeviceError(
                f"device.drift_smoothing={opts.drift_smoothing}: must be in (0, 1] (device=expert)"
            )
        return opts


@DEVICES.register("expert")
class ExpertDevice:
    """The scripted expert as a (simulated) operator; see the module docstring."""

    name: ClassVar[str] = "expert"

    def __init__(self, context: TeleopContext) -> None:
        self.context = context
        self.options = ExpertOptions.from_options(dict(context.options))
        action = context.features[ACTION]
        low = np.asarray(action.low if action.low is not None else -1.0, np.float32)
        high = np.asarray(action.high if action.high is not None else 1.0, np.float32)
        self._mid, self._half = (high + low) / 2, np.maximum((high - low) / 2, 1e-9)
        self.expert = None
        self._queue: deque[np.ndarray] = deque()
        self._reset_rules()

    # ----------------------------------------------------------------- device protocol
    def connect(self) -> None:
        """Build the task's scripted expert; needs the simulated env (``context.env``)."""
        env = self.context.env
        if env is None:
            raise DeviceError(
                "expert needs a simulated task (its scripted expert reads the simulator's state); "
                "use a human device (keyboard, gamepad, spacemouse, browser) on a robot"
            )
        from robot_learning.envs import make_expert

        try:
            self.expert = make_expert(env)
        except ValueError as exc:
            raise DeviceError(f"device=expert: {exc}; use a human device for this task") from exc

    def disconnect(self) -> None:
        """Nothing to release."""

    def reset(self, seed: int | None = None) -> None:
        """New episode: the expert re-plans (seeded noise), the delay queue and rules restart."""
        if self.expert is None:
            self.connect()
        self.expert.reset(seed=seed)
        self._queue.clear()
        self._reset_rules()

    def read(self, obs: dict[str, np.ndarray], policy_action: np.ndarray | None) -> TeleopInput:
        """The delayed expert action, and ``intervene`` by the drift/stall rules when a policy drives."""
        if self.expert is None:
            self.reset()
        plan = np.asarray(self.expert.act(obs), np.float32)
        self._queue.append(plan)
        action = self._queue.popleft() if len(self._queue) > self.options.reaction_steps else None
        position = self._position()
        if policy_action is None:
            self._last_position = position
            return TeleopInput(action=action, start=self._ticks_inc() == 0)
        intervene = self._decide(plan, np.asarray(policy_action, np.float32), position)
        return TeleopInput(action=action, intervene=intervene, start=self._ticks_inc() == 0)

    def show(self, obs: dict[str, np.ndarray], status: dict[str, Any]) -> None:
        """No screen."""

    # ----------------------------------------------------------------- intervention rules
    def _reset_rules(self) -> None:
        self._ticks = 0
        self._drifting = 0
        self._stalled = 0
        self._holding = 0
        self._last_position: np.ndarray | None = None
        self._difference: np.ndarray | None = None

    def _ticks_inc(self) -> int:
        ticks, self._ticks = self._ticks, self._ticks + 1
        return ticks

    def drift(self, plan: np.ndarray, policy_action: np.ndarray) -> float:
        """RMS difference of two actions, in half action ranges (0: equal, 2: opposite bounds)."""
        diff = (np.asarray(policy_action, np.float32).ravel() - plan.ravel()) / self._half.ravel()
        return float(np.sqrt(np.mean(diff**2)))

    def _smoothed_drift(self, plan: np.ndarray, policy_action: np.ndarray) -> float:
        """:meth:`drift` of the moving average of the per-tick differences (``drift_smoothing``)."""
        diff = np.asarray(policy_action, np.float32).ravel() - plan.ravel()
        a = self.options.drift_smoothing
        self._difference = (
            diff if self._difference is None else (1 - a) * self._difference + a * diff
        )
        return self.drift(self._difference, np.zeros_like(self._difference))

    def _decide(self, plan: np.ndarray, policy_action: np.ndarray, position) -> bool:
        """Update the drift/stall counters; True while the operator holds intervene."""
        opt = self.options
        moved = (
            np.inf
            if position is None or self._last_position is None
            else float(np.linalg.norm(position - self._last_position))
        )
        self._last_position = position
        if self._holding > 0:
            self._holding -= 1
            self._difference = None  # the average restarts when the policy drives again
            return True  # the hold ends after hold_steps ticks, then the policy drives again
        drifting = self._smoothed_drift(plan, policy_action) > opt.drift_threshold
        self._drifting = self._drifting + 1 if drifting else 0
        stalled = moved < opt.stall_distance and not self._solved()
        self._stalled = self._stalled + 1 if stalled else 0
        triggered = (opt.drift_steps > 0 and self._drifting >= opt.drift_steps) or (
            opt.stall_steps > 0 and self._stalled >= opt.stall_steps
        )
        if not triggered or opt.hold_steps == 0:
            return False
        self._drifting = self._stalled = 0
        self._holding = opt.hold_steps - 1  # this tick is the first of hold_steps
        return True

    def _position(self) -> np.ndarray | None:
        """The controlled point's position from the privileged state (None if the task has none)."""
        env = getattr(self.context.env, "unwrapped", self.context.env)
        try:
            state = env.task_state()
        except (AttributeError, NotImplementedError):
            return None
        for key in POSITION_KEYS:
            if key in state:
                return np.asarray(state[key], np.float64).copy()
        return None

    def _solved(self) -> bool:
        """The simulator's success flag now (False when the task cannot say)."""
        env = getattr(self.context.env, "unwrapped", self.context.env)
        try:
            return bool(env.evaluate()["success"])
        except (AttributeError, KeyError, NotImplementedError):
            return False
