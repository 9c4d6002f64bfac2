"""RLPD: SAC with prior data (Ball et al. 2023, "Efficient Online Reinforcement Learning with
Offline Data"); defaults follow the reference implementation ``ikostrikov/rlpd``
(``configs/rlpd_config.py`` on top of ``configs/sac_config.py``, learner ``SACLearner``).

What makes it RLPD rather than SAC:

* symmetric sampling: every batch is half demonstrations, half online data. The loop's
  :class:`~robot_learning.rl.sampling.SymmetricSampler` does this when ``demos=`` is set; without
  demonstrations the batches are online-only and this module logs a warning once;
* a LayerNorm critic ensemble of ``num_q`` (reference: 10) Q-networks;
* the TD target takes the minimum over a random subset of ``num_min_q`` (reference: 2) target
  critics, drawn afresh for every update (REDQ's in-target minimisation);
* a high update-to-data ratio: ``utd_ratio`` critic steps per actor and temperature step. The
  reference's ``update`` runs ``utd_ratio`` critic steps on consecutive mini-batches, then one
  actor step on the last mini-batch and one temperature step, once per environment step
  (paper/README: ``utd_ratio=20``). Here the loop owns the schedule; it runs at
  ``algo.utd_ratio`` unless the top-level ``utd_ratio`` is set, giving one actor step per environment step;
* the actor maximises the *mean* over the whole ensemble (reference ``update_actor``), the target
  entropy is ``-action_dim / 2`` and the entropy backup is on by default (``backup_entropy=True``
  in ``sac_config.py``; the reference README turns it off for the sparse-reward AntMaze and
  Adroit tasks, which is worth doing for sparse success rewards here too).
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robot_learning.features import Feature
from robot_learning.rl.algos import Batch, register_algo
from robot_learning.rl.encoders import EncoderConfig
from robot_learning.rl.networks import GreedyPolicy, QEnsemble, TanhGaussianActor, soft_update

log = logging.getLogger(__name__)


@dataclass
class RLPDConfig:
    """RLPD hyper-parameters (``configs/algo/rlpd.yaml``)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and of each Q-network (reference ``hidden_dims``)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic ensemble."""
    alpha_lr: float = 3e-4
    """Adam learning rate of the log-temperature (reference ``temp_lr``)."""
    tau: float = 0.005
    """Polyak factor of the target critics (applied after every critic step)."""
    num_q: int = 10
    """Critics in the LayerNorm ensemble (reference ``num_qs``)."""
    num_min_q: int = 2
    """Target critics drawn at random per update; the target is their minimum (reference ``num_min_qs``)."""
    utd_ratio: int = 4
    """Critic steps per actor/temperature step (paper 20); also the loop's default ``utd_ratio``."""
    layer_norm: bool = True
    """LayerNorm after every hidden layer of the critics (reference ``critic_layer_norm``)."""
    backup_entropy: bool = True
    """Subtract ``alpha * log_prob`` of the next action in the TD target (soft backup)."""
    init_alpha: float = 1.0
    """Initial temperature (the fixed one when ``autotune`` is off)."""
    autotune: bool = True
    """Learn the temperature so the policy's entropy tracks ``target_entropy``."""
    target_entropy: float | None = None
    """Entropy target; ``None`` means ``-action_dim / 2`` (the reference's default)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """Image encoder for tasks with cameras (DrQ; :class:`~robot_learning.rl.encoders.EncoderConfig`)."""

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.num_q < 1 or not 1 <= self.num_min_q <= self.num_q:
            raise ValueError(f"rlpd needs 1 <= num_min_q={self.num_min_q} <= num_q={self.num_q}")
        if self.utd_ratio < 1:
            raise ValueError(f"rlpd utd_ratio={self.utd_ratio} must be >= 1")
        if not 0 < self.tau <= 1:
            raise ValueError(f"rlpd tau={self.tau} must be in (0, 1]")
        if self.init_alpha <= 0:
            raise ValueError(f"rlpd init_alpha={self.init_alpha} must be > 0")


@register_algo("rlpd")
class RLPD:
    """SAC with a LayerNorm critic ensemble, random-subset min targets and a high UTD ratio."""

    Config = RLPDConfig

    pixels = True  # takes an image encoder (see robot_learning.rl.encoders)

    def __init__(
        self, cfg: RLPDConfig, obs_dim: int, action: Feature, encoder: nn.Module | None = None
    ) -> None:
        self.cfg = cfg
        act_dim = action.shape[0]
        self.actor = TanhGaussianActor(obs_dim, action, cfg.hidden, encoder=encoder)
        self.critic = QEnsemble(
            obs_dim,
            act_dim,
            cfg.hidden,
            num_q=cfg.num_q,
            layer_norm=cfg.layer_norm,
            encoder=encoder,
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=True)
        self.target_entropy = -act_dim / 2 if cfg.target_entropy is None else cfg.target_entropy
        self.actor_optim = torch.optim.Adam(self.actor.net.parameters(), lr=cfg.actor_lr)
        self.critic_optim = torch.optim.Adam(
            [p for p in self.critic.parameters() if p.requires_grad], lr=cfg.critic_lr
        )
        self.alpha_optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.updates = 0
        self._checked_demos = False

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature (a constant for the losses)."""
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def td_target(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft TD target ``[B]`` from the minimum over a random subset of target critics,
        and the subset's indices ``[num_min_q]`` (one draw per batch, as the reference)."""
        next_action, next_logp = self.actor(batch.next_obs)
        subset = torch.randperm(self.cfg.num_q)[: self.cfg.num_min_q]
        next_q = (
            self.critic_target(batch.next_obs, next_action, subset=subset.tolist()).min(0).values
        )
        if self.cfg.backup_entropy:
            next_q = next_q - self.alpha * next_logp
        return batch.reward + batch.discount * next_q, subset

    def update(self, batch: Batch) -> dict[str, float]:
        """Critic step every call; actor and temperature after every ``utd_ratio``-th critic step."""
        if not self._checked_demos:
            self._checked_demos = True
            if not bool(batch.is_demo.any()):
                log.warning(
                    "rlpd without demonstrations: batches are online-only (pass demos=DIR "
                    "for RLPD's symmetric 50/50 demo/online sampling)"
                )
        # --- critics: every ensemble member regresses to the same subset-min target
        target, _ = self.td_target(batch)
        q = self.critic(batch.obs, batch.action)  # [num_q, B]
        critic_loss = (q - target).pow(2).mean(1).sum()
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        self.updates += 1
        metrics = {"critic_loss": critic_loss.item(), "q": q.mean().item()}

        # --- actor and temperature, once per utd_ratio critic steps (on the last batch, as the reference)
        if self.updates % self.cfg.utd_ratio == 0:
            action, logp = self.actor(batch.obs)
            actor_q = self.critic(batch.obs, action, detach_encoder=True).mean(0)
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
        for name in (
            "actor",
            "critic",
            "critic_target",
            "actor_optim",
            "critic_optim",
            "alpha_optim",
        ):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.updates = int(state["updates"])
