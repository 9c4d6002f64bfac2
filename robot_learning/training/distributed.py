"""Data-parallel training across processes (``torchrun`` / ``accelerate launch``), for ``train``.

Launch ``robot-learning train`` under a launcher that sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``)::

    torchrun --nproc-per-node 2 -m robot_learning.cli train policy=flow dataset=DIR out=DIR
    torchrun --nnodes 2 --node-rank 0 --master-addr HOST --nproc-per-node 4 -m robot_learning.cli train ...

Every process builds the same policy from the same seed and draws the same *global* batch of
``batch_size`` windows (the sampler is a pure function of seed and step); process ``r`` keeps
its contiguous slice of it (:class:`ShardedSampler`) and DistributedDataParallel averages the
gradients, so a step equals a single-process step on the whole batch (exactly, up to float
summation order, for losses that are means over equally sized slices). Only rank 0 writes
(checkpoints, TensorBoard, ``train.json``, ``final/``) and evaluates; every rank resumes from
the same checkpoint. Backend: ``gloo`` on CPU, ``nccl`` on CUDA (each process on
``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run (``world_size == 1``: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes and evaluates."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as torchrun and accelerate set them."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {exc}") from None
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"RANK={rank} must be in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
        return cls(rank, world, local)

    def start(self, device: str) -> torch.device:
        """Join the process group (once); returns this process's device."""
        if not self.enabled:
            return torch.device(device)
        dev = torch.device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(dev)
        if not torch.distributed.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            torch.distributed.init_process_group(
                backend, rank=self.rank, world_size=self.world_size
            )
        return dev

    def check_batch(self, batch_size: int) -> None:
        """The global batch must split into equal slices (else steps differ from one process)."""
        if self.enabled and batch_size % self.world_size:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of the {self.world_size} processes "
                f"(the global batch is split evenly), e.g. batch_size="
                f"{(batch_size // self.world_size + 1) * self.world_size}"
            )

    def wrap(self, loss_module: nn.Module) -> nn.Module:
        """``loss_module`` in DistributedDataParallel (gradients averaged over processes)."""
        if not self.enabled:
            return loss_module
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if next(loss_module.parameters()).is_cuda else None
        # some policies leave parameters out of a step's graph (frozen parts, heads used only
        # at inference); DDP must not wait for their gradients
        return DistributedDataParallel(
            loss_module, device_ids=device_ids, find_unused_parameters=True
        )

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (stop requests, time budgets)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1.0 if flag else 0.0])
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        """Wait for every rank (e.g. while rank 0 writes the final checkpoint)."""
        if self.enabled:
            torch.distributed.barrier()

    def stop(self) -> None:
        """Leave the process group."""
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class NullWriter:
    """The TensorBoard writer of ranks other than 0: writes nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class LossModule(nn.Module):
    """``forward(batch) -> (loss, metrics)`` of a policy: what DistributedDataParallel wraps
    (policies expose ``compute_loss``, and DDP reduces gradients of ``forward`` calls)."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.policy.compute_loss(batch)


class ShardedSampler(Sampler[list[int]]):
    """This rank's contiguous slice of every global batch of ``sampler``."""

    def __init__(self, sampler: Sampler[list[int]], dist: Distributed) -> None:
        self.sampler, self.dist = sampler, dist

    def __iter__(self) -> Iterator[list[int]]:
        r, w = self.dist.rank, self.dist.world_size
        for idx in self.sampler:
            n = len(idx) // w
            yield list(idx[r * n : (r + 1) * n])

    def __len__(self) -> int:
        return len(self.sampler)
