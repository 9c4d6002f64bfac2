"""A tiny MLP zoo member for the training/evaluation tests (``toy_mlp``).

Small enough to train in seconds on CPU; it has dropout so that resuming must restore the
torch RNG exactly, and it ignores the sampler noise (it is not generative). It is *not*
registered on import: the registry-driven zoo tests (tests/test_policies.py) parametrize over
``POLICIES.names()`` at collection time and must not pick up this state-only test double, so
tests register it only while they run (:func:`registered`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from robot_learning.features import ACTION
from robot_learning.policy import POLICIES, Policy, PolicyConfig


@dataclass
class ToyMLPConfig(PolicyConfig):
    """MLP from the flattened observation history to the whole action chunk."""

    n_obs_steps: int = 2
    horizon: int = 4
    n_action_steps: int = 2
    hidden: int = 64
    """Hidden layer width."""
    dropout: float = 0.1
    """Dropout after each hidden layer (makes the loss depend on the torch RNG)."""


class ToyMLPPolicy(Policy):
    """State-only MLP policy trained by masked MSE on normalised actions."""

    name = "toy_mlp"
    config_class = ToyMLPConfig

    def __init__(self, config: ToyMLPConfig, features, stats) -> None:
        super().__init__(config, features, stats)
        in_dim = config.n_obs_steps * sum(
            int(torch.tensor(self.features[k].shape).prod()) for k in self.state_keys
        )
        self.net = nn.Sequential(
            nn.Linear(in_dim, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.horizon * self.action_dim),
        )

    def _forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat(
            [self.normalizer.normalize(k, batch[k].float()).flatten(1) for k in self.state_keys],
            dim=1,
        )
        return self.net(x).view(x.shape[0], self.config.horizon, self.action_dim)  # [B, horizon, A]

    def predict_chunk(self, batch, noise=None):
        return self.normalizer.unnormalize(ACTION, self._forward(batch))

    def compute_loss(self, batch):
        target = self.normalizer.normalize(ACTION, batch[ACTION].float())
        valid = (~batch["action_is_pad"]).float()[..., None]  # [B, horizon, 1]
        loss = (((self._forward(batch) - target) ** 2) * valid).sum() / (
            valid.sum() * self.action_dim
        )
        return loss, {"valid_fraction": float(valid.mean())}


def register() -> None:
    """Register ``toy_mlp`` for the rest of the process (subprocess CLI tests)."""
    POLICIES.register(ToyMLPPolicy.name)(ToyMLPPolicy)


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """Register ``toy_mlp`` for the duration of the block."""
    register()
    try:
        yield
    finally:
        POLICIES.unregister(ToyMLPPolicy.name)


@contextlib.contextmanager
def registered_one_thread() -> Iterator[None]:
    """``toy_mlp`` registered and torch on one thread for the block.

    Tiny models: per-op threading overhead (and contention on a shared 2-core box) dominates.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with registered():
            yield
    finally:
        torch.set_num_threads(threads)


def untrained_checkpoint(spec, out, seed: int = 0, fps: int = 10, **config) -> Path:
    """A randomly initialised ``toy_mlp`` checkpoint for ``spec`` (a weak base policy for residual RL tests).

    Normalisation statistics come from the features' bounds (``[-1, 1]`` where unbounded).
    ``fps`` is the recorded training rate (10: the arm tasks' rate; bundles and evaluation
    refuse a policy whose rate differs from the task's).
    """
    import numpy as np

    stats = {}
    for key, feat in spec.items():
        low = np.broadcast_to(
            np.asarray(feat.low if feat.low is not None else -1.0, np.float32), feat.shape
        )
        high = np.broadcast_to(
            np.asarray(feat.high if feat.high is not None else 1.0, np.float32), feat.shape
        )
        stats[key] = {"min": low, "max": high, "mean": (low + high) / 2, "std": (high - low) / 2}
    torch.manual_seed(seed)
    policy = ToyMLPPolicy(ToyMLPConfig(**{"dropout": 0.0, **config}), spec, stats)
    return policy.save(out, extra={"train_config": {"fps": fps}})


def train_reach(root: Path) -> Path:
    """20 scripted reach demos + 200 steps of ``toy_mlp`` (solves most reach episodes); returns ``final/``.

    ``toy_mlp`` must be registered (:func:`registered`). The checkpoint records ``task=reach``.
    """
    from robot_learning.collect import CollectConfig, collect
    from robot_learning.envs import TaskConfig
    from robot_learning.training import TrainConfig, train

    root = Path(root)
    collect(
        CollectConfig(task=TaskConfig(name="reach"), out=str(root / "demos"), episodes=20),
        progress=False,
    )
    train(
        TrainConfig(
            policy="toy_mlp",
            dataset=str(root / "demos"),
            out=str(root / "run"),
            steps=200,
            batch_size=32,
            lr=3e-3,
            warmup_steps=10,
            save_every=200,
            threads=1,
            task=TaskConfig(name="reach"),
            eval_every=0,
            policy_overrides={"dropout": 0.0},
        ),
        progress=False,
    )
    return root / "run" / "final"
