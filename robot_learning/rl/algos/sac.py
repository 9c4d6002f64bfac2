"""Soft Actor-Critic with automatic temperature (Haarnoja et al. 2018, "SAC: Algorithms and
Applications"); defaults follow CleanRL's ``sac_continuous_action``."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robot_learning.features import Feature
from robot_learning.rl.algos import Batch, register_algo
from robot_learning.rl.encoders import EncoderConfig
from robot_learning.rl.networks import GreedyPolicy, QEnsemble, TanhGaussianActor, soft_update


@dataclass
class SACConfig:
    """SAC hyper-parameters (``configs/algo/sac.yaml``)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of each Q-network."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critics."""
    alpha_lr: float = 1e-3
    """Adam learning rate of the log-temperature."""
    tau: float = 0.005
    """Polyak factor of the target critics."""
    actor_every: int = 1
    """Update the actor and temperature every this many critic updates."""
    init_alpha: float = 1.0
    """Initial temperature (the fixed one when ``autotune`` is off)."""
    autotune: bool = True
    """Learn the temperature so the policy's entropy tracks ``target_entropy``."""
    target_entropy: float | None = None
    """Entropy target; ``None`` means ``-action_dim`` (the paper's heuristic)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Image encoder for tasks with cameras (DrQ; :class:`~robot_learning.rl.encoders.EncoderConfig`)."""

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.actor_every < 1:
            raise ValueError(f"sac actor_every={self.actor_every} must be >= 1")
        if not 0 < self.tau <= 1:
            raise ValueError(f"sac tau={self.tau} must be in (0, 1]")
        if self.init_alpha <= 0:
            raise ValueError(f"sac init_alpha={self.init_alpha} must be > 0")


@register_algo("sac")
class SAC:
    """Twin-Q SAC: clipped double-Q soft targets, reparameterised actor, learned temperature."""

    Config = SACConfig

    pixels = True  # takes an image encoder (see robot_learning.rl.encoders)

    def __init__(
        self, cfg: SACConfig, obs_dim: int, action: Feature, encoder: nn.Module | None = None
    ) -> None:
        self.cfg = cfg
        act_dim = action.shape[0]
        self.actor = TanhGaussianActor(obs_dim, action, cfg.hidden, encoder=encoder)
        self.critic = QEnsemble(obs_dim, act_dim, cfg.hidden, num_q=2, encoder=encoder)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(
            float(torch.log(torch.tensor(cfg.init_alpha))), requires_grad=True
        )
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.actor_optim = torch.optim.Adam(self.actor.net.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(
            [p for p in self.critic.parameters() if p.requires_grad], lr=cfg.critic_lr
        )
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature (a constant for the losses)."""
        return self.log_alpha.detach().exp()

    def update(self, batch: Batch) -> dict[str, float]:
        """Critic step every call; actor and temperature steps every ``actor_every`` calls."""
        # --- critics: soft clipped double-Q target
        with torch.no_grad():
            next_action, next_logp = self.actor(batch.next_obs)
            next_q = (
                self.critic_target(batch.next_obs, next_action).min(0).values
                - self.alpha * next_logp
            )
            target = batch.reward + batch.discount * next_q  # [B]
        q = self.critic(batch.obs, batch.action)  # [2, B]
        critic_loss = (q - target).pow(2).mean(1).sum()
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        metrics = {"critic_loss": critic_loss.item(), "q": q.mean().item()}

        # --- actor and temperature
        if self.updates % self.cfg.actor_every == 0:
            action, logp = self.actor(batch.obs)
            actor_q = self.critic(batch.obs, action, detach_encoder=True).min(0).values
            actor_loss = (self.alpha * logp - actor_q).mean()
            self.actor_optim.zero_grad()
            actor_loss.backward()
            self.actor_optim.step()
            metrics.update(actor_loss=actor_loss.item(), entropy=-logp.mean().item())
            if self.cfg.autotune:
                alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
                self.alpha_optim.zero_grad()
                alpha_loss.backward()
                self.alpha_optim.step()
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        self.updates += 1
        metrics["alpha"] = self.alpha.item()
        return metrics

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Sampled action when exploring, the squashed mean otherwise."""
        return self.actor(obs, deterministic=not explore)[0]

    def policy_module(self) -> torch.nn.Module:
        """The deterministic policy as a module ``[B, D] -> [B, A]`` (exported by ``robot-learning export``)."""
        return GreedyPolicy(self.actor)

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, temperature and the update counter."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": self.alpha_optim.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.alpha_optim.load_state_dict(state["alpha_optim"])
        self.updates = int(state["updates"])
