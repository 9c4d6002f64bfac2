"""Networks for off-policy RL: observation flattening, MLPs, actors, Q ensembles.

Actors work in the environment's action units: a tanh squashes to [-1, 1], then
``scale * u + bias`` maps to ``[low, high]`` (bounds from the ``action`` feature). With an
``encoder`` (pixel observations, :mod:`robot_learning.rl.encoders`) the critic ensemble owns it
and the SAC actor reads it with the gradient stopped (DrQ); without one, observations are the
flat ``[B, D]`` state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from robot_learning.features import ACTION, Feature, FeatureSpec

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # CleanRL / SpinningUp range for the Gaussian's log-std


def state_keys(spec: FeatureSpec, skip_images: bool = False) -> list[str]:
    """The observation keys an MLP learner reads (feature order).

    Camera keys are an error, unless ``skip_images`` (``residual``: the frozen base sees the
    cameras, the residual reads the state keys).
    """
    if spec.image_keys and not skip_images:
        raise ValueError(
            f"this learner reads state observations only; the task has cameras {spec.image_keys}. "
            "Use obs=state, algo=sac|rlpd|hil_serl (pixel RL), or algo=residual, whose base "
            "policy may read the cameras."
        )
    keys = [k for k in spec.observation_keys if k not in spec.image_keys]
    if not keys:
        raise ValueError(f"the task declares no state observation.* features: {sorted(spec)}")
    return keys


def obs_vector(obs: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """Concatenate the state keys of a batch ``{key: [B, ...]}`` into ``[B, D]`` float32."""
    return np.concatenate(
        [np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in keys], axis=1
    )


def obs_dim(spec: FeatureSpec, keys: Sequence[str]) -> int:
    """Length of :func:`obs_vector` for ``keys``."""
    return sum(math.prod(spec[k].shape) for k in keys)


def mlp(inp: int, out: int, hidden: Sequence[int], layer_norm: bool = False) -> nn.Sequential:
    """``Linear -> [LayerNorm] -> ReLU`` per hidden width, then a linear output layer."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inp, width), *([nn.LayerNorm(width)] if layer_norm else []), nn.ReLU()]
        inp = width
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)


class _Bounded(nn.Module):
    """Holds the affine map from [-1, 1] to the action bounds."""

    def __init__(self, action: Feature) -> None:
        super().__init__()
        if action.low is None:
            raise ValueError("the action feature needs bounds (low/high) for RL actors")
        low, high = torch.tensor(action.low), torch.tensor(action.high)
        self.register_buffer("scale", (high - low) / 2)
        self.register_buffer("bias", (high + low) / 2)


class TanhGaussianActor(_Bounded):
    """SAC actor: a diagonal Gaussian squashed by tanh, scaled to the action bounds.

    ``encoder`` (shared with the critics) turns pixel observations into ``obs_dim`` features; its
    output is detached, so only the critic loss trains it. ``net`` holds the actor's own weights.
    """

    def __init__(
        self,
        obs_dim: int,
        action: Feature,
        hidden: Sequence[int],
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(action)
        self.encoder = encoder
        self.net = mlp(obs_dim, 2 * action.shape[0], hidden)

    def forward(
        self, obs: torch.Tensor | Mapping[str, torch.Tensor], deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, D]`` (or the encoder's input) -> (action ``[B, A]``, log-probability ``[B]``;
        the mean action when deterministic)."""
        if self.encoder is not None:
            obs = self.encoder(obs).detach()
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        std = log_std.exp()
        pre = mean if deterministic else mean + std * torch.randn_like(mean)
        u = torch.tanh(pre)
        normal_logp = (
            -0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        ).sum(-1)
        # change of variables for tanh and the affine scale (SAC paper, appendix C)
        log_prob = normal_logp - torch.log(self.scale * (1 - u.pow(2)) + 1e-6).sum(-1)
        return u * self.scale + self.bias, log_prob


class DeterministicActor(_Bounded):
    """TD3 actor: tanh output scaled to the action bounds."""

    def __init__(self, obs_dim: int, action: Feature, hidden: Sequence[int]) -> None:
        super().__init__(action)
        self.net = mlp(obs_dim, action.shape[0], hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` -> action ``[B, A]`` within the bounds."""
        return torch.tanh(self.net(obs)) * self.scale + self.bias


class GreedyPolicy(nn.Module):
    """A trained actor's deterministic action ``[B, D] -> [B, A]`` (what gets exported)."""

    def __init__(self, actor: nn.Module) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = (
            self.actor(obs, deterministic=True)
            if isinstance(self.actor, TanhGaussianActor)
            else self.actor(obs)
        )
        return out[0] if isinstance(out, tuple) else out


class QEnsemble(nn.Module):
    """``num_q`` independent Q-networks on ``concat(obs, action)`` (twin Q for SAC/TD3).

    With an ``encoder`` every Q-network reads the same encoded observation (one encoder for the
    whole ensemble, trained by the critic loss).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int],
        num_q: int = 2,
        layer_norm: bool = False,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.qs = nn.ModuleList(
            mlp(obs_dim + action_dim, 1, hidden, layer_norm) for _ in range(num_q)
        )

    def forward(
        self,
        obs: torch.Tensor | Mapping[str, torch.Tensor],
        action: torch.Tensor,
        subset: Sequence[int] | None = None,
        detach_encoder: bool = False,
    ) -> torch.Tensor:
        """``[B, D]`` (or the encoder's input), ``[B, A]`` -> Q-values ``[num_q, B]`` (or of
        the critics in ``subset``); ``detach_encoder`` for the actor's loss (DrQ)."""
        if self.encoder is not None:
            obs = self.encoder(obs)
            obs = obs.detach() if detach_encoder else obs
        x = torch.cat([obs, action], dim=-1)
        qs = self.qs if subset is None else [self.qs[i] for i in subset]
        return torch.stack([q(x).squeeze(-1) for q in qs])


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) * target + tau * source``."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s, tau)


def action_feature(spec: FeatureSpec) -> Feature:
    """The 1-D bounded ``action`` feature of ``spec``; anything else is a clear error."""
    act = spec[ACTION]
    if len(act.shape) != 1 or act.low is None:
        raise ValueError(
            f"RL needs a 1-D bounded action, got shape {act.shape} with bounds {act.low is not None}"
        )
    return act
