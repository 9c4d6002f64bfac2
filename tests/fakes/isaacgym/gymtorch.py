"""Fake ``isaacgym.gymtorch``: simulator tensors are torch tensors behind an opaque handle."""

from __future__ import annotations

import torch


class GymTensor:
    """The opaque handle ``acquire_*_tensor`` returns and ``unwrap_tensor`` makes."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data


def wrap_tensor(gym_tensor: GymTensor) -> torch.Tensor:
    """The torch view of a simulator tensor (shares memory, as the real one does)."""
    if not isinstance(gym_tensor, GymTensor):
        raise TypeError(f"wrap_tensor expects a simulator tensor, got {type(gym_tensor).__name__}")
    return gym_tensor.data


def unwrap_tensor(tensor: torch.Tensor) -> GymTensor:
    """A handle on a torch tensor, for the ``set_*_tensor`` calls."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"unwrap_tensor expects a torch.Tensor, got {type(tensor).__name__}")
    return GymTensor(tensor)
