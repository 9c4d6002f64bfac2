"""Training windows over a LeRobotDataset, and a sampler whose order is a function of (seed, step).

For a frame ``t`` of an episode with frames ``0 .. L-1`` (``n = n_obs_steps``, ``h = horizon``),
the window is laid out as :mod:`robot_learning.policy` expects, with chunk index ``n - 1`` the
current step:

* observations: frames ``t-n+1 .. t``, clamped to the episode start (the first frame repeats,
  as ``Policy.select_action`` pads its history at the start of an episode);
* actions: frames ``t-n+1 .. t-n+h``; before the start the first action repeats (not padding),
  past the end the last action repeats and ``action_is_pad`` is True (LeRobot and
  diffusion_policy do the same).

Every frame of every episode starts one window. Several datasets with the same features and fps
(e.g. demonstrations and teleop corrections, ``train dataset=[DIR1,DIR2]``) are concatenated,
episode after episode; the intervention columns of :mod:`robot_learning.interventions` may be
present in some and absent in others (absent: no intervened frame). With an
``intervention_weight`` W, windows whose current frame is intervened are drawn W times as often
(:meth:`WindowDataset.sample_weights`, :class:`StepBatchSampler`). The whole dataset is decoded once and kept in
memory (images as uint8, so a 100-episode 96x96 two-camera dataset is ~0.5 GB); a batch is then
a handful of fancy-indexing gathers with precomputed index arrays, fast enough for state-only
datasets to need no worker processes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from robot_learning.datasets import LeRobotDataset
from robot_learning.features import ACTION, FeatureMismatchError, slot_hint
from robot_learning.interventions import IS_INTERVENTION
from robot_learning.training.progress import ignore_sigint

log = logging.getLogger(__name__)

ACTION_IS_PAD = "action_is_pad"


class WindowDataset(Dataset):
    """One ``(observation history, action chunk)`` window per dataset frame.

    Args:
        dataset: the LeRobotDataset to read (every committed episode is decoded once), or several
            compatible ones (:func:`check_compatible`), concatenated in order.
        obs_keys: observation features to include (the policy's ``input_keys``).
        n_obs_steps: observation frames per window (the current frame last).
        horizon: action steps per window, starting ``n_obs_steps - 1`` frames before the current one.
    """

    def __init__(
        self,
        dataset: LeRobotDataset | Sequence[LeRobotDataset],
        obs_keys: Sequence[str],
        n_obs_steps: int,
        horizon: int,
    ) -> None:
        if n_obs_steps < 1 or horizon < 1:
            raise ValueError(f"n_obs_steps={n_obs_steps} and horizon={horizon} must be >= 1")
        datasets = [dataset] if isinstance(dataset, LeRobotDataset) else list(dataset)
        for part in datasets:
            missing = [k for k in [*obs_keys, ACTION] if k not in part.features]
            if missing:
                raise FeatureMismatchError(
                    f"Dataset {part.root} has no features {missing}; it has {sorted(part.features)}"
                )
        if sum(part.num_episodes for part in datasets) == 0:
            roots = ", ".join(str(part.root) for part in datasets)
            raise ValueError(f"Dataset {roots} has no episodes to train on")
        self.obs_keys = list(obs_keys)
        self.n_obs_steps = n_obs_steps
        self.horizon = horizon
        parts = [_load_arrays(part, [*self.obs_keys, ACTION]) for part in datasets]
        self.data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        """Feature key -> every frame of the dataset(s) concatenated, ``[N, *shape]``."""
        self.is_intervention = np.concatenate([_intervention_flags(part) for part in datasets])
        """Per frame: True where the operator drove (``complementary_info.is_intervention``)."""
        lengths = np.asarray([n for part in datasets for n in part.episode_lengths], dtype=np.int64)
        self.episode_lengths = lengths
        """Frames per episode of the dataset(s) concatenated (window ``i`` is frame ``i``)."""
        self.sources = datasets
        """The datasets read, in order (for :meth:`frame_column`)."""
        self.targets: dict[str, np.ndarray] = {}
        """Per-frame targets attached with :meth:`with_targets`, ``[N, *shape]``."""
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

    def sample_weights(self, intervention_weight: float) -> np.ndarray | None:
        """Per-window sampling weight: ``intervention_weight`` where the window's current frame
        is intervened, else 1; None when every weight is 1 (plain shuffled epochs)."""
        if intervention_weight == 1.0 or not self.is_intervention.any():
            return None
        return np.where(self.is_intervention, float(intervention_weight), 1.0)

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
        current = obs_idx[:, -1]  # [B]: each window's current frame
        for key, values in self.targets.items():
            batch[key] = torch.from_numpy(values[current])  # [B, *shape]
        return batch

    # ------------------------------------------------------------------ policy training hooks
    def has_column(self, key: str) -> bool:
        """Whether every dataset read has the per-frame column ``key`` (e.g. ``next.success``)."""
        return all(key in part.features for part in self.sources)

    def frame_column(self, key: str) -> np.ndarray:
        """Column ``key`` of every frame of the dataset(s) concatenated, ``[N, *shape]``."""
        missing = [str(part.root) for part in self.sources if key not in part.features]
        if missing:
            raise FeatureMismatchError(f"Dataset {', '.join(missing)} has no column {key!r}")
        parts = []
        for part in self.sources:
            values = np.asarray(part.columns([key])[key])
            parts.append(values.reshape(part.num_frames, *part.features[key].shape))
        return np.concatenate(parts)

    def frame_tasks(self) -> np.ndarray:
        """Every frame's language instruction (the dataset's ``task`` string), ``[N]`` str."""
        parts = []
        for part in self.sources:
            index = np.asarray(part.columns(["task_index"])["task_index"], np.int64).reshape(-1)
            parts.append(np.asarray(part.tasks, dtype=object)[index])
        return np.concatenate(parts).astype(str)

    def with_targets(self, targets: dict[str, np.ndarray]) -> WindowDataset:
        """A copy whose batches also hold ``targets`` (per frame, ``[N, *shape]``), gathered at
        each window's current frame as ``[B, *shape]`` (e.g. success labels of a classifier)."""
        frames = int(self.episode_lengths.sum())
        bad = [k for k, v in targets.items() if len(v) != frames]
        if bad:
            raise ValueError(f"targets {bad} must have one row per frame ({frames})")
        out = copy.copy(self)
        out.targets = {**self.targets, **{k: np.asarray(v) for k, v in targets.items()}}
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> WindowDataset:
        """A copy training on the windows ``indices`` only (e.g. without held-out episodes);
        the frames stay shared, so observation histories still reach across the whole episode."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or not len(idx):
            raise ValueError("subset needs a non-empty 1-D list of window indices")
        out = copy.copy(self)
        out.obs_index, out.action_index = self.obs_index[idx], self.action_index[idx]
        out.action_is_pad, out.is_intervention = self.action_is_pad[idx], self.is_intervention[idx]
        return out

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


def _intervention_flags(dataset: LeRobotDataset) -> np.ndarray:
    """Per frame of ``dataset``: the intervention flag (all False without the column)."""
    if IS_INTERVENTION not in dataset.features:
        return np.zeros(dataset.num_frames, dtype=bool)
    values = dataset.columns([IS_INTERVENTION])[IS_INTERVENTION]
    return np.asarray(values, np.float32).reshape(dataset.num_frames, -1)[:, 0] > 0.5


def check_compatible(datasets: Sequence[LeRobotDataset]) -> None:
    """Raise naming the difference unless every dataset has the first one's fps and features.

    The intervention columns (``complementary_info.*``) may be present in some datasets only.
    """
    first = datasets[0]
    for other in datasets[1:]:
        if other.fps != first.fps:
            raise ValueError(
                f"datasets {first.root} and {other.root} were recorded at different rates "
                f"(fps={first.fps} vs fps={other.fps}); train on datasets of one control rate"
            )
        keys = [
            k
            for k in dict.fromkeys([*first.features, *other.features])
            if not k.startswith("complementary_info.")
        ]
        problems = first.features.diff(other.features, keys)
        if problems:
            raise FeatureMismatchError(
                f"dataset {other.root} does not have the features of {first.root}: "
                + "; ".join(problems)
                + slot_hint(first.features, other.features)
                + ". Train on datasets recorded on the same task and observation mode (several "
                "arm tasks: collect each with the same task.env_state_slots)"
            )


def merged_stats(datasets: Sequence[LeRobotDataset]) -> dict[str, dict[str, np.ndarray]]:
    """Normalisation statistics of the datasets together (exact pooled mean/std, min/max)."""
    if len(datasets) == 1:
        return datasets[0].stats
    from robot_learning.datasets.stats import aggregate

    return aggregate([d.stats for d in datasets])


class StepBatchSampler(Sampler[list[int]]):
    """Shuffled batches whose content depends only on ``(seed, step)``.

    The sample stream is epoch after epoch of permutations of ``range(num_samples)``, epoch ``e``
    drawn from ``numpy.random.default_rng([seed, e])``; batch ``s`` is positions
    ``s*B .. s*B+B-1`` of that stream (batches may straddle an epoch boundary). A resumed run
    therefore sees exactly the batches the uninterrupted run would have, with no sampler state
    to save beyond the step.

    With ``weights``, epoch ``e`` is instead ``num_samples`` indices drawn with replacement with
    probabilities proportional to ``weights`` from the same generator: sample ``i`` is drawn
    ``weights[i] / weights[j]`` times as often as sample ``j``, still a pure function of
    ``(seed, step)``.

    Args:
        num_samples: dataset size.
        batch_size: windows per batch.
        seed: run seed.
        start_step: first batch to yield.
        end_step: yield batches ``start_step .. end_step-1`` (``None``: forever).
        weights: optional per-sample weights (> 0); None: uniform permutations.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        end_step: int | None = None,
        weights: np.ndarray | None = None,
    ) -> None:
        if num_samples < 1 or batch_size < 1:
            raise ValueError(f"num_samples={num_samples} and batch_size={batch_size} must be >= 1")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start_step, self.end_step = start_step, end_step
        self.probabilities = None
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (num_samples,) or not np.all(weights > 0):
                raise ValueError(f"weights must be {num_samples} positive numbers")
            self.probabilities = weights / weights.sum()
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 2:  # batches move forward: old epochs are never needed again
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng([self.seed, epoch])
            if self.probabilities is None:
                self._perms[epoch] = rng.permutation(self.num_samples)
            else:
                self._perms[epoch] = rng.choice(
                    self.num_samples, size=self.num_samples, p=self.probabilities
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
