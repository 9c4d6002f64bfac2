# Types of isaacgym.gymtorch, which isaacgym-stubs lacks (tests/test_isaacgym.py adds it there).
import torch
from isaacgym.gymapi import Tensor

def wrap_tensor(
    gym_tensor: Tensor,
    offsets: tuple[int, ...] | None = None,
    counts: tuple[int, ...] | None = None,
) -> torch.Tensor: ...
def unwrap_tensor(torch_tensor: torch.Tensor) -> Tensor: ...
