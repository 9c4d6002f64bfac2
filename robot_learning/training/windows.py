"""Training windows over a LeRobotDataset, and a sampler whose order is a function of (seed, step).

For a frame ``t`` of an episode with frames ``0 .. L-1`` (``n = n_obs_steps``, ``h = horizon``),
the window is laid out as :mod:`robot_learning.policy` expects, with chunk index ``n - 1`` the
current step:

* observations: frames ``t-n+1 .. t``, clamped to the episode start (the first frame repeats,
  as ``Policy.select_action`` pads its history at the start of an episode);
* actions: frames ``t-n+1 .. t-n+h``; before the start the first action repeats (not padding),
  past the end the last action repeats and ``action_is_pad`` is True (LeRobot and
  diffusion_policy do the same).

Every frame of every episode starts one window. The whole dataset is decoded once and kept in
memory (images as uint8, so a 100-episode 96x96 two-camera dataset is ~0.5 GB); a batch is then
a handful of fancy-indexing gathers with precomputed index arrays, fast enough for state-only
datasets to need no worker processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from robot_learning.datasets import LeRobotDataset
from robot_learning.features import ACTION, FeatureMismatchError
from robot_learning.training.progress import ignore_sigint

log = logging.getLogger(__name__)

ACTION_IS_PAD = "action_is_pad"


class WindowDataset(Dataset):
    """One ``(observation history, action chunk)`` window per dataset frame.

    Args:
        dataset: the LeRobotDataset to read (every committed episode is decoded once).
        obs_keys: observation features to include (the policy's ``input_keys``).
        n_obs_steps: observation frames per window (the current frame last).
        horizon: action steps per window, starting ``n_obs_steps - 1`` frames before the current one.
    """

    def __init__(
        self, dataset: LeRobotDataset, obs_keys: Sequence[str], n_obs_steps: int, horizon: int
    ) -> None:
        if n_obs_steps < 1 or horizon < 1:
            raise ValueError(f"n_obs_steps={n_obs_steps} and horizon={horizon} must be >= 1")
        missing = [k for k in [*obs_keys, ACTION] if k not in dataset.features]
        if missing:
            raise FeatureMismatchError(
                f"Dataset {dataset.root} has no features {missing}; it has {sorted(dataset.features)}"
            )
        if dataset.num_episodes == 0:
            raise ValueError(f"Dataset {dataset.root} has no episodes to train on")
        self.obs_keys = list(obs_keys)
        self.n_obs_steps = n_obs_steps
        self.horizon = horizon
        self.data = _load_arrays(dataset, [*self.obs_keys, ACTION])
        """Feature key -> every frame of the dataset concatenated, ``[N, *shape]``."""
        lengths = np.asarray(dataset.episode_lengths, dtype=np.int64)
        self.obs_index, self.action_index, self.action_is_pad = window_indices(
            lengths, n_obs_steps, horizon
        )
        megabytes = sum(a.nbytes for a in self.data.values()) / 2**20
        log.info(
            "windows: %d episodes, %d windows, n_obs_steps=%d horizon=%d, %.1f MB in memory",
            len(lengths),
            len(self),
            n_obs_steps,
            horizon,
            megabytes,
        )

    def __len__(self) -> int:
        return len(self.obs_index)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """Windows ``indices`` stacked: observations ``[B, n_obs_steps, *shape]``, ``action``
        ``[B, horizon, A]`` (raw), ``action_is_pad`` ``[B, horizon]``."""
        idx = np.asarray(indices, dtype=np.int64)
        obs_idx = self.obs_index[idx]  # [B, n_obs_steps]
        batch = {k: torch.from_numpy(self.data[k][obs_idx]) for k in self.obs_keys}
        batch[ACTION] = torch.from_numpy(
            self.data[ACTION][self.action_index[idx]]
        )  # [B, horizon, A]
        batch[ACTION_IS_PAD] = torch.from_numpy(self.action_is_pad[idx])  # [B, horizon]
        return batch

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        # DataLoader's batched fetch: one vectorised gather instead of B __getitem__ calls
        return self.get_batch(indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One window without the batch dimension."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range ({len(self)} windows)")
        return {k: v[0] for k, v in self.get_batch([index % len(self)]).items()}


def window_indices(
    lengths: np.ndarray, n_obs_steps: int, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global frame indices of every window (see the module docstring for the layout).

    Returns ``obs_index`` ``[N, n_obs_steps]``, ``action_index`` ``[N, horizon]`` (int64) and
    ``action_is_pad`` ``[N, horizon]`` (bool), where ``N = sum(lengths)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    episode = np.repeat(np.arange(len(lengths)), lengths)  # [N]
    offset = np.arange(int(lengths.sum())) - starts[episode]  # frame index within its episode
    first = starts[episode][:, None]
    last = (lengths[episode] - 1)[:, None]
    obs_offset = offset[:, None] + np.arange(-(n_obs_steps - 1), 1)[None]  # [N, n_obs_steps]
    act_offset = offset[:, None] + np.arange(horizon)[None] - (n_obs_steps - 1)  # [N, horizon]
    obs_index = first + np.clip(obs_offset, 0, last)
    action_is_pad = act_offset > last
    action_index = first + np.clip(act_offset, 0, last)
    return obs_index, action_index, action_is_pad


def _load_arrays(dataset: LeRobotDataset, keys: list[str]) -> dict[str, np.ndarray]:
    """Decode every episode once; images stay uint8, everything else becomes float32."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for e in range(dataset.num_episodes):
        episode = dataset.episode(e)
        for k in keys:
            parts[k].append(episode[k])
    out = {}
    for k in keys:
        array = np.concatenate(parts[k])
        out[k] = array if dataset.features[k].is_image else array.astype(np.float32, copy=False)
    return out


class StepBatchSampler(Sampler[list[int]]):
    """Shuffled batches whose content depends only on ``(seed, step)``.

    The sample stream is epoch after epoch of permutations of ``range(num_samples)``, epoch ``e``
    drawn from ``numpy.random.default_rng([seed, e])``; batch ``s`` is positions
    ``s*B .. s*B+B-1`` of that stream (batches may straddle an epoch boundary). A resumed run
    therefore sees exactly the batches the uninterrupted run would have, with no sampler state
    to save beyond the step.

    Args:
        num_samples: dataset size.
        batch_size: windows per batch.
        seed: run seed.
        start_step: first batch to yield.
        end_step: yield batches ``start_step .. end_step-1`` (``None``: forever).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        end_step: int | None = None,
    ) -> None:
        if num_samples < 1 or batch_size < 1:
            raise ValueError(f"num_samples={num_samples} and batch_size={batch_size} must be >= 1")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start_step, self.end_step = start_step, end_step
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:  # batches move forward: old epochs are never needed again
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(
                self.num_samples
            )
        return self._perms[epoch]

    def batch(self, step: int) -> np.ndarray:
        """Window indices of batch ``step``."""
        positions = step * self.batch_size + np.arange(self.batch_size)
        epochs, within = np.divmod(positions, self.num_samples)
        out = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            out[mask] = self._perm(int(epoch))[within[mask]]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while self.end_step is None or step < self.end_step:
            yield self.batch(step).tolist()
            step += 1

    def __len__(self) -> int:
        if self.end_step is None:
            raise TypeError("an endless StepBatchSampler has no length")
        return max(0, self.end_step - self.start_step)


def _passthrough(batch: Any) -> Any:
    # module-level (picklable) collate for worker processes: __getitems__ already batched
    return batch


def batch_iterator(
    windows: WindowDataset, sampler: StepBatchSampler, num_workers: int = 0
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches in sampler order; ``num_workers > 0`` gathers them in DataLoader worker processes."""
    if num_workers == 0:
        return (windows.get_batch(idx) for idx in sampler)
    loader = DataLoader(
        windows,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=_passthrough,
        prefetch_factor=4,
        persistent_workers=False,
        worker_init_fn=ignore_sigint,
    )
    return iter(loader)
