"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in
Actor-Critic Methods"); defaults follow the paper and CleanRL's ``td3_continuous_action``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from robot_learning.features import Feature
from robot_learning.rl.algos import Batch, register_algo
from robot_learning.rl.networks import DeterministicActor, GreedyPolicy, QEnsemble, soft_update


@dataclass
class TD3Config:
    """TD3 hyper-parameters (``configs/algo/td3.yaml``); noise scales are fractions of the half-range."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of each Q-network."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    tau: float = 0.005
    """Polyak factor of the target actor and critics."""
    policy_every: int = 2
    """Delayed policy updates: actor and targets move every this many critic updates."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to actions while collecting."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise."""

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.policy_every < 1:
            raise ValueError(f"td3 policy_every={self.policy_every} must be >= 1")
        if not 0 < self.tau <= 1:
            raise ValueError(f"td3 tau={self.tau} must be in (0, 1]")
        if min(self.exploration_noise, self.policy_noise, self.noise_clip) < 0:
            raise ValueError("td3 exploration_noise, policy_noise and noise_clip must be >= 0")


@register_algo("td3")
class TD3:
    """Clipped double-Q, target-policy smoothing and delayed actor updates."""

    Config = TD3Config

    def __init__(self, cfg: TD3Config, obs_dim: int, action: Feature) -> None:
        self.cfg = cfg
        self.actor = DeterministicActor(obs_dim, action, cfg.hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = QEnsemble(obs_dim, action.shape[0], cfg.hidden, num_q=2)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.low = self.actor.bias - self.actor.scale
        self.high = self.actor.bias + self.actor.scale
        self.updates = 0

    def update(self, batch: Batch) -> dict[str, float]:
        """Critic step every call; actor and target updates every ``policy_every`` calls."""
        # --- critics: clipped double-Q target with a smoothed target action
        with torch.no_grad():
            noise = (torch.randn_like(batch.action) * self.cfg.policy_noise).clamp(
                -self.cfg.noise_clip, self.cfg.noise_clip
            )
            next_action = (self.actor_target(batch.next_obs) + noise * self.actor.scale).clamp(
                self.low, self.high
            )
            target = (
                batch.reward
                + batch.discount * self.critic_target(batch.next_obs, next_action).min(0).values
            )
        q = self.critic(batch.obs, batch.action)  # [2, B]
        critic_loss = (q - target).pow(2).mean(1).sum()
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        metrics = {"critic_loss": critic_loss.item(), "q": q.mean().item()}

        # --- delayed actor (deterministic policy gradient through Q1) and targets
        if self.updates % self.cfg.policy_every == 0:
            actor_loss = -self.critic.qs[0](
                torch.cat([batch.obs, self.actor(batch.obs)], -1)
            ).mean()
            self.actor_optim.zero_grad()
            actor_loss.backward()
            self.actor_optim.step()
            soft_update(self.actor_target, self.actor, self.cfg.tau)
            soft_update(self.critic_target, self.critic, self.cfg.tau)
            metrics["actor_loss"] = actor_loss.item()
        self.updates += 1
        return metrics

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool) -> torch.Tensor:
        """Deterministic action, plus clipped Gaussian exploration noise when ``explore``."""
        action = self.actor(obs)
        if explore:
            action = (
                action + torch.randn_like(action) * self.cfg.exploration_noise * self.actor.scale
            )
        return action.clamp(self.low, self.high)

    def policy_module(self) -> torch.nn.Module:
        """The deterministic policy as a module ``[B, D] -> [B, A]`` (exported by ``robot-learning export``)."""
        return GreedyPolicy(self.actor)

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
