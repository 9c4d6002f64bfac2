"""Imitation training of zoo policies: windowed batches, the training loop, checkpoints.

Modules: :mod:`.windows` (dataset windows + reproducible sampler), :mod:`.config`
(:class:`TrainConfig`), :mod:`.loop` (:func:`train`), :mod:`.checkpoint` (pickle-free
checkpoints, atomic commits), :mod:`.progress` (progress bar, graceful stop).
"""

from robot_learning.training.config import TrainConfig, build_policy_config
from robot_learning.training.loop import TrainResult, lr_at, train
from robot_learning.training.windows import StepBatchSampler, WindowDataset, window_indices

__all__ = [
    "StepBatchSampler",
    "TrainConfig",
    "TrainResult",
    "WindowDataset",
    "build_policy_config",
    "lr_at",
    "train",
    "window_indices",
]
