"""Pair each command with the observations it answered, whatever order DDS delivers them in.

Commands and observations travel on different topics, so a command can arrive before the
observations it was computed from. :class:`FramePairer` holds commands until it can pair them:

1. exactly: every key has an observation with the command's stamp (what ``policy_node`` sends:
   its command's ``header.stamp`` is the stamp of the observation it answered);
2. otherwise, once every key's stream has moved past the command's stamp (commands stamped by
   another clock, e.g. teleoperation): the newest observation of each key at or before it;
3. on :meth:`FramePairer.flush` (end of an episode) or when too many commands wait: as in 2,
   falling back to the newest observation of a key that has none at or before the stamp.

Frames come out in command order; a command re-sent with the same stamp is paired once.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

#: observations remembered per key, and commands allowed to wait, for pairing
MATCH_WINDOW = 64


@dataclass
class PairedFrame:
    """One command with the observations it answered."""

    stamp: int
    observation: dict[str, np.ndarray]
    action: np.ndarray


class FramePairer:
    """Pairs commands with observations (see the module docstring); keys are the recorded observations."""

    def __init__(self, keys: list[str], window: int = MATCH_WINDOW) -> None:
        self.keys = list(keys)
        self.window = window
        self._observations: dict[str, OrderedDict[int, np.ndarray]] = {
            k: OrderedDict() for k in keys
        }
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self._last_command: int | None = None
        self.skipped = 0
        """Commands dropped because some key had no observation to pair them with."""

    def reset(self) -> None:
        """Forget waiting commands (a new episode); observations are kept."""
        self._pending.clear()
        self._last_command = None
        self.skipped = 0

    def observe(self, key: str, stamp: int, value: np.ndarray) -> list[PairedFrame]:
        """Record an observation; returns the frames it completes."""
        seen = self._observations[key]
        seen[stamp] = value
        seen.move_to_end(stamp)
        while len(seen) > self.window:
            seen.popitem(last=False)
        return self._drain()

    def command(self, stamp: int, action: np.ndarray) -> list[PairedFrame]:
        """Queue a command; returns the frames that can be paired now."""
        if stamp == self._last_command:
            return []
        self._last_command = stamp
        self._pending.append((stamp, action))
        frames = self._drain()
        while len(self._pending) > self.window:
            frames += self._resolve_oldest(force=True)
        return frames

    def flush(self) -> list[PairedFrame]:
        """Pair every waiting command now (end of an episode)."""
        frames = []
        while self._pending:
            frames += self._resolve_oldest(force=True)
        return frames

    @property
    def waiting(self) -> int:
        """Commands not yet paired."""
        return len(self._pending)

    def _drain(self) -> list[PairedFrame]:
        frames = []
        while self._pending:
            resolved = self._resolve_oldest(force=False)
            if resolved is None:
                break
            frames += resolved
        return frames

    def _resolve_oldest(self, force: bool) -> list[PairedFrame] | None:
        """Pair the oldest waiting command: a list of 0-1 frames, or None if it must wait."""
        stamp, action = self._pending[0]
        exact = {k: self._observations[k].get(stamp) for k in self.keys}
        if all(v is not None for v in exact.values()):
            observation = exact
        elif force or all(self._newest_stamp(k) > stamp for k in self.keys):
            observation = {k: self._at_or_before(k, stamp, fallback=force) for k in self.keys}
        else:
            return None
        self._pending.popleft()
        if any(v is None for v in observation.values()):
            self.skipped += 1
            return []
        return [PairedFrame(stamp, observation, action)]

    def _newest_stamp(self, key: str) -> int:
        seen = self._observations[key]
        return max(seen) if seen else -1

    def _at_or_before(self, key: str, stamp: int, fallback: bool) -> np.ndarray | None:
        seen = self._observations[key]
        before = [s for s in seen if s <= stamp]
        if before:
            return seen[max(before)]
        return seen[next(reversed(seen))] if (fallback and seen) else None
