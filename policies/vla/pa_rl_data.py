"""PA-RL's data: chunk transitions in a replay buffer, from rollouts or from demonstrations.

A transition is one executed chunk: ``(s, a_exec, r_k, gamma**k, done, s')`` plus the
episode's discounted return-to-go from it (``mc_return``), filled when the episode ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import torch

from robot_learning.features import ACTION
from robot_learning.language import TASK_KEY


class ChunkReplay:
    """Chunk transitions in plain numpy arrays (plus lists of instruction strings)."""

    def __init__(self, policy, capacity: int) -> None:
        n_obs = policy.config.n_obs_steps
        shapes = {k: (n_obs, *policy.features[k].shape) for k in policy.input_keys}
        self.obs = {k: np.zeros((capacity, *s), np.float32) for k, s in shapes.items()}
        self.next_obs = {k: np.zeros((capacity, *s), np.float32) for k, s in shapes.items()}
        self.task, self.next_task = [""] * capacity, [""] * capacity
        n_exec = policy.config.n_action_steps
        self.chunk = np.zeros((capacity, n_exec, policy.action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.discount = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        #: discounted return-to-go of the episode from this chunk on (0 until its episode ends):
        #: a lower bound of Q for rewards >= 0, which TD targets are clipped to (Cal-QL's idea)
        self.mc_return = np.zeros(capacity, np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, task, chunk, reward, discount, done, next_obs, next_task) -> int:
        """Store one transition (``obs``/``next_obs`` map keys to ``[n_obs_steps, *shape]``);
        returns its row."""
        i = self.pos
        for k in self.obs:
            self.obs[k][i], self.next_obs[k][i] = obs[k], next_obs[k]
        self.task[i], self.next_task[i] = task, next_task
        self.chunk[i], self.reward[i] = chunk, reward
        self.discount[i], self.done[i] = discount, done
        self.mc_return[i] = 0.0
        self.pos, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)
        return i

    def end_episode(self, rows: Sequence[int]) -> None:
        """Fill ``mc_return`` of an episode's transitions (``rows`` in order) backwards."""
        g = 0.0
        for i in reversed(rows):
            g = float(self.reward[i]) + float(self.discount[i]) * (1.0 - float(self.done[i])) * g
            self.mc_return[i] = g

    def get(self, idx: np.ndarray) -> dict:
        """Transitions ``idx`` as tensors; ``obs``/``next_obs`` are policy batches with ``task``."""
        obs = {k: torch.from_numpy(v[idx]) for k, v in self.obs.items()}
        nxt = {k: torch.from_numpy(v[idx]) for k, v in self.next_obs.items()}
        obs[TASK_KEY] = [self.task[i] for i in idx]
        nxt[TASK_KEY] = [self.next_task[i] for i in idx]
        out = {"obs": obs, "next_obs": nxt, "chunk": torch.from_numpy(self.chunk[idx])}
        for name in ("reward", "discount", "done", "mc_return"):
            out[name] = torch.from_numpy(getattr(self, name)[idx])
        return out

    def sample(self, n: int, rng: np.random.Generator) -> dict:
        """``n`` transitions drawn uniformly with replacement."""
        if not self.size:
            raise ValueError("the replay buffer is empty: collect episodes first")
        return self.get(rng.integers(0, self.size, n))


def window_of(history: deque, keys: Sequence[str]) -> dict[str, np.ndarray]:
    return {k: np.stack([h[k] for h in history]).astype(np.float32) for k in keys}


def _frames(ep: dict, keys: Sequence[str], t: int, n_obs: int) -> dict[str, np.ndarray]:
    """The observation window ending at frame ``t`` of an episode (first frame repeated)."""
    idx = np.clip(np.arange(t - n_obs + 1, t + 1), 0, len(ep[ACTION]) - 1)
    return {k: ep[k][idx].astype(np.float32) for k in keys}


def demo_chunks(policy, root, gamma: float) -> ChunkReplay:
    """Every frame of a LeRobotDataset's episodes as a chunk transition: the demonstrator's next
    ``n_action_steps`` actions (normalised; the last action repeated past the episode's end),
    sparse reward from ``next.success`` (the episode ends at its first success), and the
    return-to-go ``gamma**(steps to the success)`` (0 for an episode that never succeeds)."""
    from robot_learning.datasets import LeRobotDataset

    ds = LeRobotDataset(root)
    keys = list(policy.input_keys)
    if "next.success" not in ds.features:
        raise ValueError(
            f"demonstrations {root} have no next.success column: PA-RL's sparse reward needs it "
            "(datasets written by `robot-learning collect` have it)"
        )
    policy.features.select([*keys, ACTION]).check_matches(
        ds.features, what=f"demonstrations {root}", keys=[*keys, ACTION]
    )
    n_obs, n_exec = policy.config.n_obs_steps, policy.config.n_action_steps
    buffer = ChunkReplay(policy, ds.num_frames)
    for e in range(ds.num_episodes):
        ep = ds.episode(e)
        length, tasks = len(ep[ACTION]), [str(t) for t in ep["task"]]
        success = ep["next.success"].reshape(-1).astype(bool)
        with torch.no_grad():
            actions = policy.normalizer.normalize(
                ACTION, torch.as_tensor(np.array(ep[ACTION], np.float32))
            )
        actions = actions.numpy()

        hits = np.flatnonzero(success)
        end = int(hits[0]) if len(hits) else length - 1  # the episode ends at its first success
        for t in range(end + 1):  # one chunk from every frame
            k = min(n_exec, end + 1 - t)
            done = len(hits) > 0 and t + k - 1 == end
            chunk = actions[np.minimum(np.arange(t, t + n_exec), t + k - 1)]
            nxt = min(t + k, end)
            row = buffer.add(
                _frames(ep, keys, t, n_obs), tasks[t], chunk, gamma ** (k - 1) if done else 0.0,
                gamma**k, float(done), _frames(ep, keys, nxt, n_obs), tasks[nxt],
            )  # fmt: skip
            buffer.mc_return[row] = gamma ** (end - t) if len(hits) else 0.0
    if not len(buffer):
        raise ValueError(f"demonstrations {root} hold no frames")
    return buffer


def take(batch: dict, rows: slice) -> dict:
    """Rows of a policy batch (tensors sliced, the ``task`` list too)."""
    return {k: v[rows] for k, v in batch.items()}


def _concat(a: dict, b: dict) -> dict:
    """Two :meth:`ChunkReplay.get` batches (or their ``obs``) as one."""
    out = {}
    for key, value in a.items():
        if isinstance(value, dict):
            out[key] = _concat(value, b[key])
        elif isinstance(value, list):
            out[key] = value + b[key]
        else:
            out[key] = torch.cat([value, b[key]])
    return out


def sample_mixed(
    buffer: ChunkReplay, demos: ChunkReplay | None, n: int, fraction: float, rng
) -> tuple[dict, int]:
    """``n`` transitions, ``round(n * fraction)`` of them from ``demos`` (listed last);
    returns (batch, number of demonstration rows)."""
    n_demo = round(n * fraction) if demos is not None and len(demos) else 0
    if not len(buffer):
        return demos.sample(n, rng), n
    if not n_demo:
        return buffer.sample(n, rng), 0
    return _concat(buffer.sample(n - n_demo, rng), demos.sample(n_demo, rng)), n_demo
