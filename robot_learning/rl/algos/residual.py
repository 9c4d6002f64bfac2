"""Residual off-policy fine-tuning of a frozen base policy (ResFiT: Ankile et al. 2025,
"From Imitation to Refinement -- Residual RL for Precise Assembly" and its off-policy follow-up).

The base is any zoo policy (checkpoint or exported bundle), frozen and run with its own action
chunking by :class:`~robot_learning.rl.base_policy.BaseActionWrapper`, which adds its current
action to the observation as ``observation.base_action`` (the last ``A`` entries of the
learner's observation vector). On top of it:

* a per-step **residual actor** ``r = bound * tanh(f([obs, a_base]))`` whose last layer starts
  at zero, so at initialisation the executed action is exactly the base's; ``bound = scale *
  (high - low)`` per dimension, and exploration noise is clipped so ``|r| <= bound`` always;
* the executed action ``a = clip(a_base + r, low, high)``;
* **critics** ``Q([obs, a_base], a)`` (a LayerNorm ensemble), trained with n-step returns (the
  loop's ``n_step``) and TD3-style clipped double-Q targets with target-policy smoothing;
* **critic warm-up**: the actor stays at zero for the first ``critic_warmup`` updates;
* demonstrations (``demos=DIR``) stay in every batch at 50 % (the loop's symmetric sampler), with
  their base actions computed by running the base over each recorded episode;
* meant for a sparse binary reward (``task.reward=sparse``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from robot_learning.features import Feature
from robot_learning.rl.algos import Batch, register_algo
from robot_learning.rl.networks import QEnsemble, mlp, soft_update


@dataclass
class ResidualConfig:
    """Residual RL hyper-parameters (``configs/algo/residual.yaml``)."""

    base: str | None = None
    """Checkpoint or bundle folder of the frozen base policy (required; ``null`` in the YAML)."""
    scale: float = 0.1
    """Residual bound per action dimension, as a fraction of the action range ``high - low``."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the residual actor and of each Q-network."""
    actor_lr: float = 1e-4
    """Adam learning rate of the residual actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    tau: float = 0.005
    """Polyak factor of the target actor and critics."""
    num_q: int = 2
    """Critics in the ensemble; targets take the minimum over all of them."""
    layer_norm: bool = True
    """LayerNorm after every hidden layer of the critics."""
    critic_warmup: int = 10_000
    """Critic-only updates before the actor starts to train."""
    actor_every: int = 1
    """Actor (and target) update every this many critic updates once warm."""
    exploration_noise: float = 0.5
    """Std of the Gaussian exploration noise, as a fraction of the residual bound."""
    target_noise: float = 0.2
    """Std of the target-policy smoothing noise, as a fraction of the residual bound."""
    target_noise_clip: float = 0.5
    """Clip of the smoothing noise, as a fraction of the residual bound."""
    residual_penalty: float = 0.1
    """Weight of ``mean((r / bound)^2)`` in the actor loss. Without it the actor drives the residual
    to its bound within a few thousand updates on sparse rewards (where Q is flat and noisy) and the
    success rate collapses below the base's; see BENCHMARKS.md."""

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.base:
            raise ValueError(
                "residual needs algo.base=<checkpoint or bundle folder> of the frozen base policy"
            )
        if not 0 < self.scale <= 1:
            raise ValueError(
                f"residual scale={self.scale} must be in (0, 1] (fraction of the action range)"
            )
        if self.num_q < 1 or self.actor_every < 1 or self.critic_warmup < 0:
            raise ValueError(
                f"residual num_q={self.num_q} and actor_every={self.actor_every} must be >= 1, "
                f"critic_warmup={self.critic_warmup} >= 0"
            )
        if not 0 < self.tau <= 1:
            raise ValueError(f"residual tau={self.tau} must be in (0, 1]")
        if (
            min(
                self.exploration_noise,
                self.target_noise,
                self.target_noise_clip,
                self.residual_penalty,
            )
            < 0
        ):
            raise ValueError("residual noise settings and residual_penalty must be >= 0")


class ResidualPolicy(nn.Module):
    """``[obs, a_base] -> clip(a_base + bound * tanh(f([obs, a_base])), low, high)``; last layer zero at init."""

    def __init__(
        self, obs_dim: int, action: Feature, hidden: tuple[int, ...], scale: float
    ) -> None:
        super().__init__()
        if action.low is None:
            raise ValueError("the action feature needs bounds (low/high) for residual RL")
        low, high = (
            torch.tensor(action.low, dtype=torch.float32),
            torch.tensor(action.high, dtype=torch.float32),
        )
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.register_buffer("bound", scale * (high - low))
        self.action_dim = action.shape[0]
        self.net = mlp(obs_dim, self.action_dim, hidden)
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def base_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The base action carried in the observation's last ``A`` entries."""
        return obs[:, -self.action_dim :]

    def residual(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, D] -> [B, A]`` residual, within ``+-bound``."""
        return self.bound * torch.tanh(self.net(obs))

    def combine(self, obs: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Base plus residual, clipped to the action bounds."""
        return torch.clamp(self.base_action(obs) + residual, self.low, self.high)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.combine(obs, self.residual(obs))


@register_algo("residual")
class Residual:
    """Frozen base + zero-initialised bounded residual actor + ensemble critics on ``[obs, a_base]``."""

    Config = ResidualConfig
    uniform_warmup: ClassVar[bool] = (
        False  # warm up with base + exploration noise, not random actions
    )
    state_only: ClassVar[bool] = (
        True  # on camera tasks the base sees the images, the residual the states
    )

    def __init__(self, cfg: ResidualConfig, obs_dim: int, action: Feature) -> None:
        self.cfg = cfg
        self.actor = ResidualPolicy(obs_dim, action, cfg.hidden, cfg.scale)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = QEnsemble(
            obs_dim, action.shape[0], cfg.hidden, num_q=cfg.num_q, layer_norm=cfg.layer_norm
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.updates = 0

    # ------------------------------------------------------------------ hooks used by the loop
    @staticmethod
    def prepare_run(cfg: ResidualConfig, run_dir: Path, fresh: bool) -> ResidualConfig:
        """Use the run folder's copy of the base (made for a fresh run): moving or deleting the
        original never breaks resuming or exporting the run."""
        from robot_learning.rl.base_policy import snapshot_base

        return dataclasses.replace(cfg, base=str(snapshot_base(cfg.base, run_dir, fresh)))

    @staticmethod
    def wrap_env(env: Any, cfg: ResidualConfig) -> Any:
        """Give ``env`` the ``observation.base_action`` key from the frozen base policy."""
        from robot_learning.rl.base_policy import BaseActionWrapper, load_base_source

        return BaseActionWrapper(env, load_base_source(cfg.base))

    @staticmethod
    def demo_labeler(cfg: ResidualConfig):
        """``f(episode, obs) -> {observation.base_action: [T, A]}`` for demonstration episodes."""
        from robot_learning.rl.base_policy import BASE_ACTION, label_episode, load_base_source

        source = load_base_source(cfg.base)
        return lambda episode, obs: {BASE_ACTION: label_episode(source, obs, seed=episode)}

    # ------------------------------------------------------------------ learning
    def _noisy(self, residual: torch.Tensor, std: float, clip: float | None = None) -> torch.Tensor:
        bound = self.actor.bound
        noise = torch.randn_like(residual) * std
        if clip is not None:
            noise = noise.clamp(-clip, clip)
        return torch.clamp(residual + noise * bound, -bound, bound)

    def update(self, batch: Batch) -> dict[str, float]:
        """Critic step every call; after ``critic_warmup`` updates an actor step every ``actor_every``."""
        cfg = self.cfg
        # --- critics: clipped (min over the ensemble) n-step target with a smoothed target residual
        with torch.no_grad():
            next_residual = self._noisy(
                self.actor_target.residual(batch.next_obs), cfg.target_noise, cfg.target_noise_clip
            )
            next_action = self.actor_target.combine(batch.next_obs, next_residual)
            next_q = self.critic_target(batch.next_obs, next_action).min(0).values
            target = batch.reward + batch.discount * next_q
        q = self.critic(batch.obs, batch.action)  # [num_q, B]
        critic_loss = (q - target).pow(2).mean(1).sum()
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        metrics = {"critic_loss": critic_loss.item(), "q": q.mean().item()}

        # --- residual actor: maximise the ensemble's mean Q of base + residual
        if self.updates >= cfg.critic_warmup and self.updates % cfg.actor_every == 0:
            residual = self.actor.residual(batch.obs)
            actor_q = self.critic(batch.obs, self.actor.combine(batch.obs, residual)).mean(0)
            actor_loss = (
                -actor_q.mean() + cfg.residual_penalty * (residual / self.actor.bound).pow(2).mean()
            )
            self.actor_optim.zero_grad()
            actor_loss.backward()
            self.actor_optim.step()
            soft_update(self.actor_target, self.actor, cfg.tau)
            metrics.update(
                actor_loss=actor_loss.item(),
                residual_fraction=(residual.abs() / self.actor.bound).mean().item(),
            )
        self.updates += 1
        return metrics

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Base + residual; exploration noise on the residual (clipped to its bound) when ``explore``."""
        residual = self.actor.residual(obs)
        if explore:
            residual = self._noisy(residual, self.cfg.exploration_noise)
        return self.actor.combine(obs, residual)

    def policy_module(self) -> torch.nn.Module:
        """``[obs, a_base] -> executed action`` (exported next to the base's graph)."""
        return self.actor

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers and the update counter."""
        return {
            "actor": self.actor.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        for name in (
            "actor",
            "actor_target",
            "critic",
            "critic_target",
            "actor_optim",
            "critic_optim",
        ):
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])
