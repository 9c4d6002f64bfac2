"""Asynchronous chunk inference for the policy node (``inference:=async``).

The network runs in one background thread (:class:`ChunkWorker`) while the control tick only
pops the next action, so the tick that needs a new chunk no longer waits for the network:

* **When.** A chunk predicted from the observation of step ``t_obs`` is meant to be executed
  from ``t_obs`` on. The next request is sent ``lead`` steps before ``n_action_steps`` of it
  have run, ``lead`` being the measured inference time in control periods (rounded up, >= 1),
  so the new chunk arrives about when the old one would have been replaced in synchronous mode.
* **Delay.** When the new chunk arrives at step ``t``, ``d = t - t_obs`` steps have already
  run: its first ``d`` actions are in the past and are skipped (the delay is reported).
* **Overlap.** The rest of the old chunk and the new chunk both give actions for the same next
  steps; over that overlap the executed action crossfades linearly from the old to the new one
  (:func:`crossfade`; real-time chunking, Black et al. 2025, inpaints the overlap inside the
  sampler instead; a crossfade needs nothing from the policy), so the trajectory has no jump.
* **Starvation.** If the old chunk runs out before the new one arrives (the network is slower
  than the chunk is long), the tick waits for it and counts a stall.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


def crossfade(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Actions over an overlap of ``k`` steps: ``old`` [k, A] fading into ``new`` [k, A].

    Step ``i`` takes ``(k - i) / (k + 1)`` of the old action and the rest of the new one, so the
    first step already moves towards the new chunk and the last is mostly new.
    """
    k = len(old)
    w = ((k - np.arange(k)) / (k + 1.0)).reshape(k, *([1] * (old.ndim - 1)))
    return (w * old + (1.0 - w) * new).astype(np.float32)


@dataclass
class Arrival:
    """A finished request: the chunk and the control step of the observation it came from."""

    chunk: np.ndarray
    step: int
    inference_ms: float


class ChunkWorker:
    """``predict(batch) -> chunk`` in one background thread; at most one request in flight.

    A request submitted before :meth:`cancel` (episode reset, new instruction) is discarded.
    """

    def __init__(self, predict: Callable[[dict], np.ndarray]) -> None:
        self._predict = predict
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-inference")
        self._future: Future | None = None
        self._step = 0

    @property
    def busy(self) -> bool:
        """A request is in flight."""
        return self._future is not None

    def submit(self, batch: dict, step: int) -> None:
        """Predict a chunk for ``batch`` (the observation of control step ``step``)."""
        if self._future is not None:
            raise RuntimeError("a chunk request is already in flight")
        self._step = step
        self._future = self._pool.submit(self._timed, batch)

    def _timed(self, batch: dict) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        chunk = np.asarray(self._predict(batch))[0]
        return chunk, (time.perf_counter() - t0) * 1e3

    def poll(self, wait: bool = False) -> Arrival | None:
        """The finished request (None if none, or still running and not ``wait``)."""
        future = self._future
        if future is None or not (wait or future.done()):
            return None
        self._future = None
        chunk, ms = future.result()  # re-raises the network's exception here, in the tick
        return Arrival(chunk, self._step, ms)

    def cancel(self) -> None:
        """Forget the request in flight (its result is dropped when it finishes)."""
        self._future = None

    def close(self) -> None:
        """Stop the thread (after the request in flight, if any)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class AsyncChunks:
    """The executed-action queue of asynchronous inference (see the module docstring).

    ``start``/``n_action_steps``: where the executed part of a chunk begins and how long it is
    (as in synchronous mode); ``period_s``: the control period, to turn inference time into
    steps of lead.
    """

    def __init__(
        self, worker: ChunkWorker, start: int, n_action_steps: int, period_s: float
    ) -> None:
        self.worker = worker
        self.start, self.n_action_steps, self.period_s = start, n_action_steps, period_s
        self.queue: list[np.ndarray] = []
        self.step = 0  # control steps since the last reset
        self.chunk_step = 0  # observation step of the chunk being executed
        self.inference_ms = 0.0  # slowest recent inference (decays), for the lead
        self.last_delay = 0
        self.stalls = 0
        self.arrivals = 0

    def reset(self) -> None:
        """Forget the queue and any request in flight (episode reset, new instruction)."""
        self.worker.cancel()
        self.queue.clear()
        self.step = 0

    @property
    def lead(self) -> int:
        """Steps before the chunk's ``n_action_steps`` are used up at which to ask for the next."""
        return max(1, math.ceil(self.inference_ms / 1e3 / self.period_s))

    def next_action(self, batch: Callable[[], dict]) -> tuple[np.ndarray, float, bool]:
        """The action of this control step (its observation already in the history ``batch()``
        builds the request from) -> (action, inference ms if a chunk arrived else 0, arrived)."""
        arrival = self.worker.poll()
        if arrival is None and not self.queue:  # nothing to execute: wait for the network
            if not self.worker.busy:
                self.worker.submit(batch(), self.step)
            elif self.step:  # a stall mid-episode (the first chunk always waits)
                self.stalls += 1
            arrival = self.worker.poll(wait=True)
        ms = 0.0
        if arrival is not None:
            self._adopt(arrival)
            ms = arrival.inference_ms
        action = self.queue.pop(0)
        ran = self.step - self.chunk_step + 1  # actions of this chunk executed, this one included
        if not self.worker.busy and ran >= self.n_action_steps - self.lead:
            self.worker.submit(batch(), self.step)
        self.step += 1
        return action, ms, arrival is not None

    def _adopt(self, arrival: Arrival) -> None:
        self.arrivals += 1
        self.inference_ms = max(arrival.inference_ms, 0.9 * self.inference_ms)
        delay = self.step - arrival.step
        self.last_delay = delay
        fresh = list(arrival.chunk[self.start + delay :].astype(np.float32))
        if not fresh:  # the whole chunk is in the past: keep its last action
            fresh = [arrival.chunk[-1].astype(np.float32)]
        k = min(len(self.queue), len(fresh))
        if k:
            fresh[:k] = list(crossfade(np.stack(self.queue[:k]), np.stack(fresh[:k])))
        self.queue = fresh
        self.chunk_step = arrival.step
