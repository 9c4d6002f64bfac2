"""The off-policy learner across processes (``torchrun ... -m robot_learning.cli finetune``).

Data parallelism over the gradient batch, as ``train`` does
(:mod:`robot_learning.training.distributed`): every process runs the same collection (same
seeds, same weights, same exploration draws, hence the same replay buffer) and samples the same
*global* batch of ``batch_size`` transitions; process ``r`` keeps its contiguous slice
(:func:`shard_batch`) and, before every optimizer step, the gradients are averaged over the
processes (:func:`average_gradients`, a step pre-hook on each optimizer of the algorithm: the
all-reduce DistributedDataParallel does, without wrapping modules that several losses share and
that target networks copy). The weights therefore stay identical on every process. Only rank 0
writes checkpoints, TensorBoard and ``finetune.json``; every rank resumes from the same
checkpoint; stop decisions (signals, ``max_minutes``) are agreed on.

The randomness of each update (SAC's sampled actions, TD3's target smoothing noise) is drawn
from a stream seeded by ``(seed, update)`` (:func:`update_stream`), in one process as in many,
so the collection's random stream does not depend on how a batch was split. Consequences:
a distributed run equals the one-process run with the same global batch up to float summation
order for algorithms whose losses are means of per-transition terms with no sampling in the
loss (``td3`` with ``algo.policy_noise=0``: tested); with sampling in the loss each process
draws its own slice's noise (same distribution, other values), and DSAC-T's batch-statistics
terms are computed per slice. The environments are stepped on every process (replicated, not
sharded): the learner's gradient work is what is spread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any

import torch

from robot_learning.training.distributed import Distributed


def shard_batch(batch: Any, dist: Distributed) -> Any:
    """This process's contiguous slice of a global :class:`~robot_learning.rl.algos.Batch`."""
    if not dist.enabled:
        return batch
    size = len(batch.action) // dist.world_size
    rows = slice(dist.rank * size, (dist.rank + 1) * size)

    def cut(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v[rows] for k, v in value.items()}
        return value[rows]

    return replace(batch, **{f.name: cut(getattr(batch, f.name)) for f in fields(batch)})


def optimizers(algo: Any) -> list[torch.optim.Optimizer]:
    """The optimizers an algorithm holds as attributes (actor, critic, temperature, ...)."""
    return [
        v for v in getattr(algo, "__dict__", {}).values() if isinstance(v, torch.optim.Optimizer)
    ]


def average_gradients(algo: Any, dist: Distributed) -> int:
    """Make every optimizer of ``algo`` average its parameters' gradients over the processes
    right before it steps; returns the number of optimizers hooked (0 when not distributed)."""
    if not dist.enabled:
        return 0
    opts = optimizers(algo)
    if not opts:
        raise ValueError(
            f"{type(algo).__name__} keeps no torch optimizer as an attribute: its gradients "
            "cannot be averaged across processes"
        )

    def all_reduce(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [
            p.grad
            for group in optimizer.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= dist.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    for optimizer in opts:
        optimizer.register_step_pre_hook(all_reduce)
    return len(opts)


@contextmanager
def update_stream(seed: int, update: int) -> Iterator[None]:
    """Run one gradient update on torch's generator seeded by ``(seed, update)``; the caller's
    generator state is restored after it (CUDA generators are forked too when in use)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed((seed * 1_000_003 + update) % (2**63 - 1))
        yield
