"""Off-policy algorithms behind one small interface, registered by name (``algo=sac``).

An algorithm module reads top to bottom: a config dataclass (every field documented), the
networks it builds, ``update`` (losses and optimiser steps on one batch) and ``act``. Everything
around it (environments, buffers, n-step targets, the UTD ratio, evaluation, checkpoints) lives
in :mod:`robot_learning.rl.loop` and is shared. A batch's ``reward`` is already the n-step return
and ``discount`` already ``gamma**m`` (0 after a termination), so a TD target is always
``reward + discount * V(next_obs)``.

Optional class-level hooks (``residual`` uses them; the loop falls back to plain behaviour):
``wrap_env(env, cfg)`` wraps every environment (e.g. to add observation keys),
``demo_labeler(cfg)`` returns ``f(episode_index, obs) -> extra observation arrays`` for the keys
the wrapper adds, ``uniform_warmup = False`` makes the warm-up act with the exploring policy
instead of uniform random actions, ``state_only = True`` accepts camera tasks and learns on
their state keys (the images reach only what ``wrap_env`` adds, e.g. a pixel base policy), and
``pixels = True`` says the constructor takes ``encoder=`` (a
:class:`~robot_learning.rl.encoders.PixelEncoder` for camera tasks; observations are then dicts).

Adding one: write ``algos/<name>.py`` with a class
decorated ``@register_algo("<name>")`` that has a ``Config`` dataclass attribute and the methods
of :class:`Algorithm`, add its module to ``ALGOS``' discover list and ``configs/algo/<name>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from robot_learning.features import Feature
from robot_learning.registry import Registry


@dataclass
class Batch:
    """One training batch as tensors (shapes with ``B`` = batch size, ``D`` = obs dim)."""

    obs: torch.Tensor | dict[str, torch.Tensor]
    """``[B, D]`` flattened state observations (pixel learners: the encoder's input dict)."""
    action: torch.Tensor
    """``[B, A]`` actions taken, in environment units."""
    reward: torch.Tensor
    """``[B]`` n-step discounted return."""
    discount: torch.Tensor
    """``[B]`` bootstrap factor ``gamma**m`` (0 after a termination)."""
    next_obs: torch.Tensor | dict[str, torch.Tensor]
    """``[B, D]`` observation to bootstrap from (pixel learners: a dict)."""
    is_demo: torch.Tensor
    """``[B]`` True for transitions from demonstrations."""

    @classmethod
    def from_numpy(
        cls,
        sample: dict[str, Any],
        obs: np.ndarray | torch.Tensor | dict[str, torch.Tensor],
        next_obs: np.ndarray | torch.Tensor | dict[str, torch.Tensor],
        device: torch.device | str = "cpu",
    ) -> Batch:
        """Build from a sampler batch plus its already converted observations (flat arrays or
        :meth:`~robot_learning.rl.observations.LearnerObservations.tensors` output)."""

        def t(x: Any) -> Any:
            return x if isinstance(x, dict) else torch.as_tensor(x, device=device)

        is_demo = sample.get("is_demo", np.zeros(len(sample["action"]), bool))
        return cls(
            t(obs),
            t(sample["action"]),
            t(sample["reward"]),
            t(sample["discount"]),
            t(next_obs),
            t(is_demo),
        )


class Algorithm(Protocol):
    """What the training loop needs from an algorithm."""

    Config: ClassVar[type]
    updates: int
    """Gradient updates done so far (the loop schedules updates from it; part of the state)."""

    def __init__(self, cfg: Any, obs_dim: int, action: Feature) -> None:
        """``obs_dim``: the flat observation size (pixel algorithms: the encoder's ``out_dim``,
        with the encoder passed as ``encoder=``)."""
        ...

    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """``[B, D]`` -> actions ``[B, A]`` in environment units (exploration noise when ``explore``)."""
        ...

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient update on ``batch``; returns scalar metrics for logging."""
        ...

    def policy_module(self) -> torch.nn.Module:
        """The deterministic policy as a module ``[B, D] -> [B, A]`` in environment units (for export)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Networks, target networks, optimisers and counters (tensors and JSON scalars only)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        ...


ALGOS: Registry[type[Algorithm]] = Registry(
    "algorithm",
    discover=(
        "robot_learning.rl.algos.sac",
        "robot_learning.rl.algos.td3",
        "robot_learning.rl.algos.rlpd",
        "robot_learning.rl.algos.dsac_t",
        "robot_learning.rl.algos.residual",
        "robot_learning.hil.algo",
    ),
)


def register_algo(name: str):
    """Class decorator registering an :class:`Algorithm` as ``algo=<name>``."""
    return ALGOS.register(name)
