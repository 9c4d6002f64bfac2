"""Preallocated replay buffer with n-step returns computed at sample time.

Storage. One numpy array per observation key (images stay uint8 HWC), plus ``action``,
``reward``, ``terminated``, ``truncated`` and ``has_action``, all shaped ``[rows, streams, ...]``.
A *stream* is one environment of a vectorised collector (demos use one stream); each stream is
its own ring of ``capacity // streams`` rows, written strictly in time order.

Each observation is stored once. Row ``t`` of a stream holds ``obs_t`` and, when
``has_action[t]``, the transition taken from it (``action_t``, ``reward_t``, the flags); its next
observation is row ``t + 1``. When an episode ends, its final observation gets a row of its own
with ``has_action = False`` (the only extra row per episode) and the next episode starts on the
row after it. The row currently being filled (the observation the policy is acting on) also has
``has_action = False``. Because every ring is written in time order, walking forward from any
transition row only ever meets that transition's own future, up to a row without an action.

Episode ends. ``terminated`` (a true end: success, failure) means the value of the next state is
zero: the n-step return stops there and ``discount = 0`` (no bootstrap). ``truncated`` (a time
limit or any cut that is not part of the task) stops the return too, but ``discount = gamma**m``
bootstraps from the truncated state's own observation (the final-observation row). A walk that
reaches the newest, still-open row of a running episode bootstraps from it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from robot_learning.features import ACTION, FeatureSpec

#: per-row bookkeeping arrays besides observations and actions
_ROW_FIELDS = ("reward", "terminated", "truncated", "has_action")


def row_bytes(spec: FeatureSpec) -> int:
    """Bytes one stored row of ``spec`` takes (uint8 frames, float32 vectors, bookkeeping)."""
    return len(_ROW_FIELDS) * 4 + sum(
        math.prod(f.shape) * (1 if f.is_image else 4) for f in spec.values()
    )


def available_memory() -> int | None:
    """``MemAvailable`` of this machine in bytes (None where ``/proc/meminfo`` does not exist)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(spec: FeatureSpec, rows: int, setting: str = "buffer_size") -> None:
    """Refuse (``ValueError``) a buffer that cannot fit in the available memory, naming a row
    count that would."""
    need, free = rows * row_bytes(spec), available_memory()
    if free is not None and need > 0.9 * free:
        fits = int(0.5 * free / row_bytes(spec))
        raise ValueError(
            f"a replay buffer of {rows:,} rows needs {need / 2**30:.1f} GiB "
            f"({row_bytes(spec):,} bytes per row) but {free / 2**30:.1f} GiB are available; "
            f"pass a smaller {setting}= (e.g. {setting}={fits}, half the free memory)"
        )


class ReplayBuffer:
    """Ring buffer of transitions for ``spec``'s observation keys and ``action``.

    Args:
        spec: features to store: every ``observation.*`` key of ``spec`` plus ``action``.
        capacity: total rows over all streams (transitions + one final-observation row per episode).
        streams: parallel environments writing into the buffer (one ring each).
    """

    def __init__(self, spec: FeatureSpec, capacity: int, streams: int = 1) -> None:
        if streams < 1:
            raise ValueError(f"replay buffer streams={streams} must be >= 1")
        if capacity // streams < 2:
            raise ValueError(
                f"replay buffer capacity={capacity} is too small for {streams} streams (>= 2 rows each)"
            )
        self.obs_keys = spec.observation_keys
        if not self.obs_keys:
            raise ValueError(f"replay buffer spec has no observation.* features: {sorted(spec)}")
        self.spec = spec.select([*self.obs_keys, ACTION])
        self.rows, self.streams = capacity // streams, streams
        check_memory(self.spec, self.rows * streams)
        shape = (self.rows, streams)
        self.obs = {
            k: np.zeros(shape + f.shape, np.uint8 if f.is_image else np.float32)
            for k, f in self.spec.items()
            if k != ACTION
        }
        self.action = np.zeros(shape + self.spec.action.shape, np.float32)
        self.reward = np.zeros(shape, np.float32)
        self.terminated = np.zeros(shape, bool)
        self.truncated = np.zeros(shape, bool)
        self.has_action = np.zeros(shape, bool)
        self.head = np.zeros(streams, np.int64)
        """Per stream: the row of the open episode's current observation (or of the next episode's first)."""
        self.open = np.zeros(streams, bool)
        """Per stream: True while ``head`` holds the current observation of a running episode."""
        self.written = np.zeros(streams, np.int64)
        """Per stream: rows ever written, capped at ``rows`` (the filled part of the ring)."""

    def __len__(self) -> int:
        """Number of stored transitions (rows with an action)."""
        return int(self.has_action.sum())

    # ------------------------------------------------------------------ writing
    def _write_obs(
        self, rows: np.ndarray, streams: np.ndarray, obs: Mapping[str, np.ndarray]
    ) -> None:
        for k, arr in self.obs.items():
            arr[rows, streams] = obs[k]
        self.has_action[rows, streams] = False
        self.terminated[rows, streams] = False
        self.truncated[rows, streams] = False
        self.written[streams] = np.minimum(self.rows, self.written[streams] + 1)

    def add(
        self,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: Mapping[str, np.ndarray],
        terminated: np.ndarray,
        truncated: np.ndarray,
        streams: np.ndarray | None = None,
    ) -> None:
        """Store one step of every stream (or of ``streams``); arrays are ``[len(streams), ...]``.

        ``obs`` is written only when a stream starts an episode (afterwards it is the previous
        step's ``next_obs``, already stored). ``next_obs`` of an ended episode is its final
        observation (not the reset observation of the next one).
        """
        s = np.arange(self.streams) if streams is None else np.asarray(streams, np.int64)
        n = len(s)
        if len(np.unique(s)) != n or (n and (s.min() < 0 or s.max() >= self.streams)):
            raise ValueError(f"streams {s.tolist()} must be distinct and in [0, {self.streams})")
        terminated = np.asarray(terminated, bool).reshape(n)
        truncated = np.asarray(truncated, bool).reshape(n) & ~terminated
        fresh = ~self.open[s]
        if fresh.any():
            self._write_obs(
                self.head[s][fresh], s[fresh], {k: np.asarray(v)[fresh] for k, v in obs.items()}
            )
        row = self.head[s]
        self.action[row, s] = action
        self.reward[row, s] = np.asarray(reward, np.float32).reshape(n)
        nxt = (row + 1) % self.rows
        self._write_obs(nxt, s, next_obs)
        self.has_action[row, s] = True
        self.terminated[row, s] = terminated
        self.truncated[row, s] = truncated
        ended = terminated | truncated
        self.head[s] = np.where(ended, (nxt + 1) % self.rows, nxt)
        self.open[s] = ~ended

    def close_stream(self, stream: int) -> None:
        """End ``stream``'s open episode at its current observation, as a truncation (its last
        transition bootstraps from that observation); a no-op when no episode is open."""
        if self.open[stream]:
            self.head[stream] = (self.head[stream] + 1) % self.rows
            self.open[stream] = False

    def last_transition_row(self, stream: int) -> int | None:
        """Row of ``stream``'s most recent transition in its open episode (None: none open)."""
        if not self.open[stream]:
            return None
        row = (self.head[stream] - 1) % self.rows
        return int(row) if self.has_action[row, stream] else None

    def add_episode(
        self,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        terminated: bool,
        stream: int = 0,
    ) -> None:
        """Store a whole finished episode at once: ``obs`` ``[T+1, ...]`` (the last one is the
        final observation), ``action``/``reward`` ``[T, ...]``; it ends terminated or truncated."""
        steps = len(action)
        if steps < 1 or steps + 1 > self.rows:
            raise ValueError(f"episode of {steps} steps does not fit {self.rows} rows per stream")
        if self.open[stream]:
            raise ValueError(f"stream {stream} has an open episode; finish it before add_episode")
        lengths = {k: len(obs[k]) for k in self.obs}
        if any(n != steps + 1 for n in lengths.values()) or len(reward) != steps:
            raise ValueError(
                f"add_episode needs T+1={steps + 1} observations and T rewards, got {lengths}, {len(reward)}"
            )
        rows = (self.head[stream] + np.arange(steps + 1)) % self.rows
        for k, arr in self.obs.items():
            arr[rows, stream] = obs[k]
        act = rows[:-1]
        self.action[act, stream] = action
        self.reward[act, stream] = np.asarray(reward, np.float32).reshape(steps)
        self.has_action[rows, stream] = np.arange(steps + 1) < steps
        self.terminated[rows, stream] = False
        self.truncated[rows, stream] = False
        self.terminated[act[-1], stream] = terminated
        self.truncated[act[-1], stream] = not terminated
        self.written[stream] = min(self.rows, self.written[stream] + steps + 1)
        self.head[stream] = (rows[-1] + 1) % self.rows

    # ------------------------------------------------------------------ reading
    def sample(
        self, batch_size: int, rng: np.random.Generator, n_step: int = 1, gamma: float = 0.99
    ) -> dict[str, object]:
        """``batch_size`` transitions drawn uniformly with replacement, as :meth:`gather` returns."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        span = int(self.written.max())
        rows, streams = np.empty(0, np.int64), np.empty(0, np.int64)
        while len(rows) < batch_size:  # rejection keeps it O(batch): rows without action are rare
            flat = rng.integers(0, span * self.streams, size=batch_size)
            r, s = flat // self.streams, flat % self.streams
            keep = self.has_action[r, s]
            rows, streams = np.concatenate([rows, r[keep]]), np.concatenate([streams, s[keep]])
        return self.gather(rows[:batch_size], streams[:batch_size], n_step, gamma)

    def gather(
        self, rows: np.ndarray, streams: np.ndarray, n_step: int = 1, gamma: float = 0.99
    ) -> dict[str, object]:
        """n-step transitions starting at ``(rows, streams)`` (rows must hold an action).

        Returns ``obs``/``next_obs`` (dicts of ``[B, ...]``), ``action`` ``[B, A]``, ``reward``
        ``[B]`` (sum of ``gamma**k * r_{t+k}`` over the ``m <= n_step`` steps taken), ``discount``
        ``[B]`` (``gamma**m``, 0 after a termination) and ``steps`` ``[B]`` (``m``).
        """
        if n_step < 1:
            raise ValueError(f"n_step={n_step} must be >= 1")
        rows, streams = np.asarray(rows, np.int64), np.asarray(streams, np.int64)
        if not self.has_action[rows, streams].all():
            raise ValueError("gather: some rows hold no transition (final or open observations)")
        ret = np.zeros(len(rows), np.float64)
        steps = np.zeros(len(rows), np.int64)
        done = np.zeros(len(rows), bool)
        active = np.ones(len(rows), bool)
        cur = rows.copy()
        for k in range(n_step):
            r, s = cur[active], streams[active]
            ret[active] += gamma**k * self.reward[r, s]
            steps[active] += 1
            term = np.zeros(len(rows), bool)
            term[active] = self.terminated[r, s]
            cut = term.copy()
            cut[active] |= self.truncated[r, s]
            done |= term
            cur[active] = (
                r + 1
            ) % self.rows  # the next observation: bootstrap row or next transition
            cut[active] |= ~self.has_action[cur[active], s]
            active &= ~cut
        discount = np.where(done, 0.0, gamma**steps)
        return {
            "obs": {k: v[rows, streams] for k, v in self.obs.items()},
            "action": self.action[rows, streams],
            "reward": ret.astype(np.float32),
            "discount": discount.astype(np.float32),
            "next_obs": {k: v[cur, streams] for k, v in self.obs.items()},
            "steps": steps,
        }

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat name -> array dict (only the filled rows), ready for ``safetensors.numpy``."""
        filled = int(self.written.max())
        out = {f"obs/{k}": v[:filled] for k, v in self.obs.items()}
        out["action"] = self.action[:filled]
        out.update({name: getattr(self, name)[:filled] for name in _ROW_FIELDS})
        out.update(
            head=self.head,
            open=self.open,
            written=self.written,
            layout=np.array([self.rows, self.streams], np.int64),
        )
        return {k: np.ascontiguousarray(v) for k, v in out.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output; the layout and features must match this buffer."""
        rows, streams = (int(v) for v in state["layout"])
        if (rows, streams) != (self.rows, self.streams):
            raise ValueError(
                f"replay state has {rows} rows x {streams} streams, buffer has {self.rows} x {self.streams}"
            )
        keys = sorted(k.removeprefix("obs/") for k in state if k.startswith("obs/"))
        if keys != sorted(self.obs):
            raise ValueError(
                f"replay state observation keys {keys} differ from the buffer's {sorted(self.obs)}"
            )
        filled = int(np.asarray(state["written"]).max())
        targets = {f"obs/{k}": v for k, v in self.obs.items()} | {"action": self.action}
        targets.update({name: getattr(self, name) for name in _ROW_FIELDS})
        for name, arr in targets.items():
            arr[:] = 0
            arr[:filled] = state[name]
        self.head[:] = state["head"]
        self.open[:] = state["open"]
        self.written[:] = state["written"]
