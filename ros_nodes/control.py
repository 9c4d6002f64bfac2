"""The policy node's control logic, free of ROS so that it reads (and tests) on its own.

:class:`PolicyController` owns what happens between observations arriving and a command leaving:

* **Rejection.** Every observation is checked when it arrives (shape, NaN/Inf, uint8 images,
  bounds: the feature's declared physical bounds, else the bundle's dataset statistics widened
  by a margin, see :mod:`robot_learning.bounds`); a bad one is dropped with a reason naming the
  key (and for bounds the element, value and bound), counted, and never reaches the policy.
  The last good value of that key stays, so the node keeps running.
* **Watchdog.** A key is *fresh* if its last good message was received within ``stale_after_s``
  (receipt time on this computer's monotonic clock: a robot's clock may differ). If any key that
  has been streaming goes stale, the controller *holds*: no command, and the history and queued
  actions are dropped so that control restarts from fresh observations, never from an old plan.
* **Receding horizon.** Actions come from one chunk per ``n_action_steps`` steps, exactly as
  :meth:`~robot_learning.runtime.BundlePolicy.select_action` (history padded with the first
  frame, ``chunk[n_obs_steps-1 : n_obs_steps-1+n_action_steps]``), so a ROS episode reproduces
  an in-process evaluation step for step.
* **Clamping.** Every published action is clipped to the bundle's action bounds (counted);
  with a :class:`~hardware.safety.SafetyFilter` (``safety:=`` of the node) the executed action
  also goes through the robot safety layer's limits (maximum change per step, joint velocity,
  workspace box), each change logged with its reason.
* **Emergency stop** latches: nothing is computed or published until :meth:`reset`.
* **Asynchronous inference** (``inference="async"``, :mod:`ros_nodes.async_chunks`): the next
  chunk is computed in a background thread before the current one runs out, its delay skipped
  and its overlap with the old chunk crossfaded, so a step only pops an action.
* **Deadlines.** A step is a missed deadline if its processing took longer than one control
  period, or if it started more than half a period later than due (a step was skipped).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robot_learning.bounds import (
    Bounds,
    bounds_violation,
    observation_bounds,
    spec_observation_bounds,
)
from robot_learning.features import Feature
from robot_learning.language import TASK_KEY, InstructionError
from ros_nodes.async_chunks import AsyncChunks, ChunkWorker

#: a step starting later than (1 + this) periods after the previous one missed its deadline
LATE_TOLERANCE = 0.5
#: where chunks are computed: in the control step (sync) or in a background thread (async)
INFERENCE_MODES = ("sync", "async")


@dataclass
class Counters:
    """Cumulative event counts since the node started (published as diagnostics)."""

    steps: int = 0
    """Commands published."""
    inferences: int = 0
    """Chunk predictions run."""
    missed_deadlines: int = 0
    """Steps that overran the period or started late (see the module docstring)."""
    stale_holds: int = 0
    """Watchdog ticks spent holding because an observation went stale."""
    rejected_observations: int = 0
    """Observations dropped as NaN/Inf, wrong size or out of bounds."""
    clamped_actions: int = 0
    """Published actions that had to be clipped to the bundle's bounds."""
    nonfinite_actions: int = 0
    """Steps withheld because the policy produced NaN/Inf."""
    estops: int = 0
    """Emergency stops triggered."""
    rejected_instructions: int = 0
    """Language instructions refused (empty, too long for the bundle's tokenizer, ...)."""
    inference_stalls: int = 0
    """``inference:=async``: steps that had to wait for the network (the chunk ran out first)."""

    def to_dict(self) -> dict[str, int]:
        """Plain dict for JSON and diagnostics."""
        return asdict(self)


@dataclass
class Sample:
    """The last accepted message of one observation key."""

    value: np.ndarray
    stamp_ns: int
    received_s: float


@dataclass
class Command:
    """What one control step publishes."""

    actions: np.ndarray
    """``[k, A]`` clipped actions: row 0 is executed now, the rest are the queued remainder."""
    stamp_ns: int
    """Stamp of the newest observation the action was computed from."""
    inferred: bool
    """True if this step ran the network (else it came from the queued chunk)."""
    inference_ms: float


def check_observation(
    key: str, feature: Feature, value: np.ndarray, bounds: Bounds | None = None
) -> str | None:
    """Why ``value`` cannot be one frame of ``feature`` (None if it can).

    ``bounds`` defaults to the feature's declared bounds; pass
    :func:`~robot_learning.bounds.observation_bounds` with the bundle's statistics to check a
    feature that declares none. The out-of-range reason names the element, value and bound.
    """
    if tuple(value.shape) != tuple(feature.shape):
        return f"{key!r} has shape {list(value.shape)}, the bundle expects {list(feature.shape)}"
    if feature.is_image:
        return (
            None if value.dtype == np.uint8 else f"{key!r} must be a uint8 image, got {value.dtype}"
        )
    if not np.all(np.isfinite(value)):
        bad = np.flatnonzero(~np.isfinite(value)).tolist()
        return f"{key!r} contains NaN/Inf at elements {bad}"
    if bounds is None:
        bounds = observation_bounds(feature)
    return bounds_violation(key, value, bounds, feature.names)


class PolicyController:
    """Watchdog, rejection, receding-horizon execution, clamping and e-stop around a bundle policy."""

    def __init__(
        self,
        policy: Any,
        period_s: float,
        stale_after_s: float,
        safety: Any = None,
        inference: str = "sync",
    ) -> None:
        if period_s <= 0 or stale_after_s <= 0:
            raise ValueError(
                f"period_s={period_s} and stale_after_s={stale_after_s} must be positive"
            )
        if inference not in INFERENCE_MODES:
            raise ValueError(f"inference={inference!r} must be one of {INFERENCE_MODES}")
        self.policy = policy
        self.keys: list[str] = list(policy.input_keys)
        self.period_s = period_s
        self.stale_after_s = stale_after_s
        self.low, self.high = policy.action_low, policy.action_high
        #: the robot safety layer's filter on the executed action (None: bounds only)
        self.safety = safety
        #: per key: declared bounds, else the bundle's statistics widened by a margin
        self.bounds: dict[str, Bounds | None] = getattr(
            policy, "observation_bounds", None
        ) or spec_observation_bounds(policy.features, self.keys)
        self.counters = Counters()
        self.latched = False
        self.last_inference_ms = 0.0
        self._start = policy.n_obs_steps - 1
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=policy.n_obs_steps)
        self._queue: deque[np.ndarray] = deque()
        self.latest: dict[str, Sample] = {}
        self.holding = False
        self._last_stamp: int | None = None
        self._last_start: float | None = None
        #: language bundles: the instruction every chunk is predicted for (None: none yet)
        self.uses_language = bool(getattr(policy, "uses_language", False))
        self.instruction: str | None = None
        #: inference=async: the background worker and its action queue (None: synchronous)
        self.chunks: AsyncChunks | None = None
        if inference == "async":
            worker = ChunkWorker(policy.predict_chunk)
            self.chunks = AsyncChunks(worker, self._start, policy.n_action_steps, period_s)

    def close(self) -> None:
        """Stop the inference thread (async mode)."""
        if self.chunks is not None:
            self.chunks.worker.close()

    # ------------------------------------------------------------------ episode / safety state
    def reset(self) -> None:
        """Clear the e-stop latch, history, queued actions and buffered observations."""
        self.latched = False
        self._forget()
        self.latest.clear()
        self._last_stamp = None

    def emergency_stop(self) -> None:
        """Latch: no command until :meth:`reset`."""
        self.latched = True
        self.counters.estops += 1
        self._forget()

    def _forget(self) -> None:
        self._history.clear()
        self._queue.clear()
        if self.chunks is not None:
            self.chunks.reset()
        self.holding = False
        self._last_start = None
        if self.safety is not None:
            self.safety.reset()

    def set_instruction(self, text: str) -> str | None:
        """Follow ``text`` from the next step on (queued actions of the old one are dropped);
        returns the rejection reason (counted) if the bundle cannot read it."""
        if not self.uses_language:
            self.counters.rejected_instructions += 1
            return "this bundle takes no language instruction"
        try:
            self.policy.tokenizer.encode([text])
        except InstructionError as exc:
            self.counters.rejected_instructions += 1
            return str(exc)
        text = " ".join(text.split())
        if text != self.instruction:
            self.instruction = text
            self._queue.clear()  # replan for the new instruction at the next step
            if self.chunks is not None:
                self.chunks.reset()
        return None

    @property
    def queue_depth(self) -> int:
        """Actions left in the current chunk."""
        return len(self._queue) if self.chunks is None else len(self.chunks.queue)

    # ------------------------------------------------------------------ observations
    def offer(self, key: str, value: np.ndarray, stamp_ns: int, now_s: float) -> str | None:
        """Store one observation; returns the rejection reason (counted) if it is unusable."""
        reason = check_observation(key, self.policy.features[key], value, self.bounds.get(key))
        if reason is not None:
            self.counters.rejected_observations += 1
            return reason
        self.latest[key] = Sample(value, int(stamp_ns), now_s)
        return None

    def stale_keys(self, now_s: float) -> list[str]:
        """Keys with no fresh observation (empty while nothing has arrived since the last reset)."""
        if not self.latest:
            return []
        return [
            k
            for k in self.keys
            if k not in self.latest or now_s - self.latest[k].received_s > self.stale_after_s
        ]

    def watchdog(self, now_s: float) -> list[str]:
        """Called every control period: hold (and count it) while any key is stale; returns them."""
        stale = self.stale_keys(now_s)
        if stale and not self.latched:
            self.counters.stale_holds += 1
            if not self.holding:
                self._forget()
                self.holding = True
        return stale

    def ready(self, now_s: float, need_new: bool) -> bool:
        """Can a step run now? All keys fresh, not latched and (``need_new``) all newer than the last step."""
        if self.latched or len(self.latest) < len(self.keys) or self.stale_keys(now_s):
            return False
        if self.uses_language and self.instruction is None:
            return False
        if need_new and self._last_stamp is not None:
            return all(s.stamp_ns > self._last_stamp for s in self.latest.values())
        return True

    # ------------------------------------------------------------------ one control step
    def step(self) -> Command | None:
        """One receding-horizon step on the newest observations (call only when :meth:`ready`).

        Returns None (and counts it) if the policy produced NaN/Inf.
        """
        self.holding = False
        frame = {k: self.latest[k].value for k in self.keys}
        stamp = max(self.latest[k].stamp_ns for k in self.keys)
        self._last_stamp = stamp
        if not self._history:
            self._history.extend(
                [frame] * self._history.maxlen
            )  # pad with the first frame, as evaluation does
        else:
            self._history.append(frame)
        inferred, inference_ms = False, 0.0
        if self.chunks is not None:
            action, inference_ms, inferred = self.chunks.next_action(self._batch)
            if inferred:
                self.last_inference_ms = inference_ms
                self.counters.inferences += 1
            self.counters.inference_stalls = self.chunks.stalls
            return self._command(
                frame, action, list(self.chunks.queue), stamp, inferred, inference_ms
            )
        if not self._queue:
            batch = self._batch()
            t0 = time.perf_counter()
            chunk = np.asarray(self.policy.predict_chunk(batch))[0]  # [horizon, A]
            inference_ms = (time.perf_counter() - t0) * 1e3
            self.last_inference_ms, inferred = inference_ms, True
            self.counters.inferences += 1
            self._queue.extend(
                chunk[self._start : self._start + self.policy.n_action_steps].astype(np.float32)
            )
        action = self._queue.popleft()
        return self._command(frame, action, list(self._queue), stamp, inferred, inference_ms)

    def _batch(self) -> dict:
        """The policy input of the current history (copied: the async worker may hold it)."""
        batch = {k: np.stack([f[k] for f in self._history])[None] for k in self.keys}
        if self.uses_language:
            batch[TASK_KEY] = [self.instruction]
        return batch

    def _command(self, frame, action, rest, stamp, inferred, inference_ms) -> Command | None:
        now = self.policy.refine(frame, action)  # residual policies act per step here
        actions = np.stack([now, *rest])  # [k, A]: now, then the rest of the chunk
        if not np.all(np.isfinite(actions[0])):
            self.counters.nonfinite_actions += 1
            self._forget()
            return None
        actions = self._clamp(actions, frame)
        return Command(actions, stamp, inferred, inference_ms)

    def _clamp(self, actions: np.ndarray, frame: dict[str, np.ndarray]) -> np.ndarray:
        flat = actions.reshape(actions.shape[0], -1)
        clipped = flat if self.low is None else np.clip(flat, self.low.ravel(), self.high.ravel())
        changed = bool(np.any(clipped[0] != flat[0]))
        if self.safety is not None:
            clipped = clipped.copy()
            clipped[0], events = self.safety.filter(flat[0], frame)
            changed = bool(events)
        self.counters.clamped_actions += int(changed)
        return clipped

    def finish_step(self, started_s: float, published_s: float) -> bool:
        """Deadline accounting for a step that started at ``started_s``; True if it missed."""
        missed = published_s - started_s > self.period_s
        if (
            self._last_start is not None
            and started_s - self._last_start > (1 + LATE_TOLERANCE) * self.period_s
        ):
            missed = True
        self._last_start = started_s
        self.counters.steps += 1
        self.counters.missed_deadlines += int(missed)
        return missed
