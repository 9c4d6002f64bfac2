"""DSAC-T: distributional SAC with three refinements (Duan et al., "Distributional Soft
Actor-Critic with Three Refinements", arXiv 2310.05858, a.k.a. DSAC-v2). Losses follow the
reference ``Jingliang-Duan/DSAC-v2`` (``dsac.py``, class ``DSAC``); defaults follow its MuJoCo
example (``example_train/dsac_mlp_humanoidconti_offserial.py``) except where noted.

Each critic ``i`` models the soft return as a Gaussian ``Z_i(s, a) ~ N(Q_i, sigma_i^2)`` (a mean
head and a softplus std head). With ``a' ~ pi_target(s')``:

* twin value distributions: two critics and two targets; the target distribution is the one of
  ``j = argmin_i Q'_i(s', a')`` (per sample), used by both critics;
* expected value substitution: the mean is trained towards the *expected* target
  ``y_q = r + discount * (Q'_j(s', a') - alpha * log pi(a'|s'))`` instead of a sampled return;
* the std is trained towards a *sampled* target
  ``y_z = r + discount * (Q'_j + clip(eps, -3, 3) * sigma'_j - alpha * log pi(a'|s'))``,
  eps ~ N(0, 1), clipped to ``Q_i +- xi * b_i`` (``xi = 3``), where ``b_i`` is the running mean of
  ``sigma_i`` over batches (``b <- (1 - tau_b) b + tau_b E[sigma]``, ``tau_b = tau``);
* variance-based critic gradient adjustment: the Gaussian negative log-likelihood gradients are
  divided by ``sigma^2 + eps_std`` (mean) and ``sigma^3 + eps_std`` (std), then the whole critic
  gradient is scaled by ``b_i^2 + eps_std`` (``eps_std = 0.1``), so the step size does not depend
  on the reward scale. The loss below is the reference's surrogate whose gradient is exactly that:
  ``(b^2 + eps) * [-(y_q - Q).detach() / (s^2 + eps) * Q - ((Q.detach() - y_z)^2 - s^2) / (s^3 + eps) * sigma]``
  with ``s = sigma.detach()``;
* actor: ``alpha * log pi - min_i Q_i``; temperature: ``-log_alpha * (log pi + target_entropy)``;
  actor, temperature and all targets (critics and actor, Polyak ``tau``) move every
  ``actor_every`` critic steps.

Simplifications against the reference: ReLU instead of GELU hidden layers; the actor loss uses the
critics after this update's critic step (the reference computes every gradient before stepping);
``init_alpha=1`` (the reference starts at ``log_alpha = 1``); the std-clip constant of the target
sample (3) is fixed, as in the reference.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robot_learning.features import Feature
from robot_learning.rl.algos import Batch, register_algo
from robot_learning.rl.networks import GreedyPolicy, TanhGaussianActor, mlp, soft_update

#: the target return sample uses standard-normal noise clipped to +-3 (reference ``__q_evaluate``)
NOISE_CLIP = 3.0


@dataclass
class DSACTConfig:
    """DSAC-T hyper-parameters (``configs/algo/dsac_t.yaml``)."""

    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the actor and of each critic (reference example: three layers of 256)."""
    actor_lr: float = 1e-4
    """Adam learning rate of the actor (reference ``policy_learning_rate``)."""
    critic_lr: float = 1e-4
    """Adam learning rate of the two critics (reference ``value_learning_rate``)."""
    alpha_lr: float = 3e-4
    """Adam learning rate of the log-temperature."""
    tau: float = 0.005
    """Polyak factor of the target critics and target actor."""
    tau_b: float | None = None
    """Rate of the running mean ``b`` of the critics' std; ``None`` means ``tau`` (reference default)."""
    clip_xi: float = 3.0
    """Sampled targets are clipped to ``Q +- clip_xi * b`` (the paper's xi)."""
    std_eps: float = 0.1
    """Small constant in the gradient adjustment's denominators and scale (reference ``bias``)."""
    actor_every: int = 2
    """Actor, temperature and target updates every this many critic steps (reference ``delay_update``)."""
    init_alpha: float = 1.0
    """Initial temperature (the fixed one when ``autotune`` is off)."""
    autotune: bool = True
    """Learn the temperature so the policy's entropy tracks ``target_entropy``."""
    target_entropy: float | None = None
    """Entropy target; ``None`` means ``-action_dim`` (the reference's default)."""

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.actor_every < 1:
            raise ValueError(f"dsac_t actor_every={self.actor_every} must be >= 1")
        for name in ("tau", "tau_b"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"dsac_t {name}={value} must be in (0, 1]")
        if self.clip_xi <= 0 or self.std_eps <= 0 or self.init_alpha <= 0:
            raise ValueError(
                f"dsac_t clip_xi={self.clip_xi}, std_eps={self.std_eps} and "
                f"init_alpha={self.init_alpha} must be > 0"
            )


class GaussianCritics(nn.Module):
    """Two critics, each a Gaussian return distribution on ``concat(obs, action)``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.qs = nn.ModuleList(mlp(obs_dim + action_dim, 2, hidden) for _ in range(2))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, D]``, ``[B, A]`` -> (means ``[2, B]``, stds ``[2, B]``; softplus keeps std > 0)."""
        x = torch.cat([obs, action], dim=-1)
        out = torch.stack([q(x) for q in self.qs])  # [2, B, 2]
        return out[..., 0], nn.functional.softplus(out[..., 1])


def clip_target(sample: torch.Tensor, mean: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """Clip sampled target returns ``[B]`` to ``mean +- bound`` per critic (``mean`` ``[2, B]``,
    ``bound`` ``[2]``, i.e. ``xi * b``) -> ``[2, B]``."""
    return mean + (sample - mean).clamp(-bound[:, None], bound[:, None])


@register_algo("dsac_t")
class DSACT:
    """Twin Gaussian value distributions, expected-value mean targets, clipped sampled std targets,
    variance-scaled critic gradients, learned temperature."""

    Config = DSACTConfig

    def __init__(self, cfg: DSACTConfig, obs_dim: int, action: Feature) -> None:
        self.cfg = cfg
        act_dim = action.shape[0]
        self.actor = TanhGaussianActor(obs_dim, action, cfg.hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = GaussianCritics(obs_dim, act_dim, cfg.hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=True)
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.tau_b = cfg.tau if cfg.tau_b is None else cfg.tau_b
        self.std_mean = torch.full((2,), -1.0)
        """Running mean ``b`` of each critic's std (negative until the first batch)."""
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.updates = 0

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature (a constant for the losses)."""
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(expected target ``y_q`` ``[B]``, sampled target ``y_z`` ``[B]``) from the target
        distribution with the smaller mean."""
        next_action, next_logp = self.actor_target(batch.next_obs)
        mean, std = self.critic_target(batch.next_obs, next_action)  # [2, B] each
        pick = (mean[1] < mean[0]).long()[None]  # [1, B]: the twin with the smaller mean
        next_mean, next_std = mean.gather(0, pick)[0], std.gather(0, pick)[0]
        noise = torch.randn_like(next_mean).clamp(-NOISE_CLIP, NOISE_CLIP)
        soft = -self.alpha * next_logp
        y_q = batch.reward + batch.discount * (next_mean + soft)
        y_z = batch.reward + batch.discount * (next_mean + noise * next_std + soft)
        return y_q, y_z

    def update(self, batch: Batch) -> dict[str, float]:
        """Critic step every call; actor, temperature and targets every ``actor_every`` calls."""
        # --- critics: Gaussian NLL gradients with the three refinements (module docstring)
        q, std = self.critic(batch.obs, batch.action)  # [2, B] each
        batch_std = std.detach().mean(1)
        self.std_mean = torch.where(
            self.std_mean < 0, batch_std, (1 - self.tau_b) * self.std_mean + self.tau_b * batch_std
        )
        y_q, y_z = self.targets(batch)
        y_z = clip_target(y_z, q.detach(), self.cfg.clip_xi * self.std_mean)  # [2, B]
        s, eps = std.detach(), self.cfg.std_eps
        mean_term = -(y_q - q).detach() / (s.pow(2) + eps) * q
        std_term = -((q.detach() - y_z).pow(2) - s.pow(2)) / (s.pow(3) + eps) * std
        scale = self.std_mean.pow(2) + eps  # [2]
        critic_loss = (scale * (mean_term + std_term).mean(1)).sum()
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        metrics = {
            "critic_loss": critic_loss.item(),
            "q": q.mean().item(),
            "q_std": std.mean().item(),
            "q_std_running": self.std_mean.mean().item(),
        }

        # --- delayed actor, temperature and targets
        if self.updates % self.cfg.actor_every == 0:
            action, logp = self.actor(batch.obs)
            actor_q = self.critic(batch.obs, action)[0].min(0).values
            actor_loss = (self.alpha * logp - actor_q).mean()
            self.actor_optim.zero_grad()
            actor_loss.backward()
            self.actor_optim.step()
            metrics.update(actor_loss=actor_loss.item(), entropy=-logp.mean().item())
            if self.cfg.autotune:
                alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
                self.alpha_optim.zero_grad()
                alpha_loss.backward()
                self.alpha_optim.step()
            soft_update(self.critic_target, self.critic, self.cfg.tau)
            soft_update(self.actor_target, self.actor, self.cfg.tau)
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
        """Networks, targets, optimisers, temperature, the std running mean and the update counter."""
        return {
            "actor": self.actor.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "std_mean": self.std_mean.clone(),
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "alpha_optim": self.alpha_optim.state_dict(),
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
            "alpha_optim",
        ):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.std_mean = state["std_mean"].clone()
        self.updates = int(state["updates"])
