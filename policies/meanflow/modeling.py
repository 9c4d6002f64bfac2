"""MeanFlow policy: one-step action chunks from the interval-averaged velocity (MeanFlow; MP1).

Reads top to bottom: config, networks (shared encoder + FiLM U-Net from
:class:`~policies.common.base.ChunkGenerativePolicy`, with two time inputs), loss, sampling.

On the straight path of :mod:`policies.common.flow_matching` (data at t=0, noise at t=1,
``v = eps - a``) the network ``u(z_t, r, t)`` learns the *average* velocity over ``[r, t]``, so
``z_r = z_t - (t - r) u(z_t, r, t)`` and one evaluation at ``(r, t) = (0, 1)`` maps noise to an
action chunk. Training uses the MeanFlow identity (Geng et al. 2025, Eq. 6)::

    u_tgt = v - (t - r) * du/dt,    du/dt = v . d_z u + d_t u   (total derivative along the path)

where du/dt is one Jacobian-vector product with tangents (dz, dr, dt) = (v, 0, 1)
(``torch.func.jvp``) and the target is stop-gradient. Paper choices kept: the network sees
``(t, t - r)``; t and r are two logit-normal(-0.4, 1) draws sorted so r <= t; 75 % of samples
set r = t (plain flow matching); adaptive weight ``1 / (mse + c)^p`` with p = 1, c = 1e-3.
Our mse is a per-element mean (not a sum over the chunk), so c does not depend on chunk size.
"""

from __future__ import annotations

import warnings

import torch
from torch.func import jvp

from policies.common.base import ChunkGenerativePolicy, per_sample_mse
from policies.common.flow_matching import TIME_EMBED_SCALE, interpolate, sample_times
from policies.meanflow.configuration import MeanFlowConfig
from robot_learning.features import FeatureSpec
from robot_learning.policy import register_policy


@register_policy("meanflow")
class MeanFlowPolicy(ChunkGenerativePolicy):
    """Learns u(z, r, t), the average velocity over [r, t]; samples with one network call."""

    config_class = MeanFlowConfig
    num_time_inputs = 2  # (t, t - r)
    sampler_name = "meanflow"
    time_scale = TIME_EMBED_SCALE

    def __init__(self, config: MeanFlowConfig, features: FeatureSpec, stats: dict | None) -> None:
        super().__init__(config, features, stats)
        self.config: MeanFlowConfig = config

    def average_velocity(
        self, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """u(z, r, t): z [B, H, A], r and t [B], cond [B, C] -> [B, H, A]."""
        return self.unet(z, torch.stack([t, t - r], dim=-1), cond)

    # ------------------------------------------------------------------ loss
    def draw_times(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, t), each [n], with r <= t and r = t for a (1 - ratio_r_neq_t) fraction."""
        cfg = self.config
        kw = dict(beta_alpha=cfg.time_beta_alpha, mean=cfg.time_mean, std=cfg.time_std)
        a = sample_times(n, device, cfg.time_sampling, **kw)
        b = sample_times(n, device, cfg.time_sampling, **kw)
        t, r = torch.maximum(a, b), torch.minimum(a, b)
        flow_matching = torch.rand(n, device=device) >= cfg.ratio_r_neq_t
        return torch.where(flow_matching, t, r), t

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Adaptively weighted ||u_theta - sg(u_tgt)||^2 over valid steps (MeanFlow, Eq. 9)."""
        cfg = self.config
        cond = self.encode_observations(batch)
        actions, valid = self.normalized_actions(batch)  # [B, H, A], [B, H]
        r, t = self.draw_times(actions.shape[0], actions.device)
        z_t, velocity = interpolate(actions, torch.randn_like(actions), t)

        def u_fn(z: torch.Tensor, r_: torch.Tensor, t_: torch.Tensor) -> torch.Tensor:
            return self.average_velocity(z, r_, t_, cond)

        with (
            warnings.catch_warnings()
        ):  # torch's forward-AD decompositions warn about torch.jit once
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit\.script.*", category=FutureWarning
            )
            u, du_dt = jvp(u_fn, (z_t, r, t), (velocity, torch.zeros_like(r), torch.ones_like(t)))
        target = (velocity - (t - r)[:, None, None] * du_dt).detach()
        mse = per_sample_mse(u, target, valid)  # [B]
        weight = (mse.detach() + cfg.adaptive_weight_c) ** -cfg.adaptive_weight_p
        loss = (weight * mse).mean()
        return loss, {"loss": loss.item(), "mse": mse.mean().item()}

    # ------------------------------------------------------------------ sampling
    def sample(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """cond [B, C], noise [B, horizon, A] -> normalised chunk [B, horizon, A]."""
        steps = self.config.num_inference_steps
        z = noise
        for i in range(steps):  # uniform grid 1 -> 0; steps = 1 is the one-step sampler
            t = torch.full((z.shape[0],), 1.0 - i / steps, device=z.device)
            r = torch.full((z.shape[0],), 1.0 - (i + 1) / steps, device=z.device)
            z = z - (t - r)[:, None, None] * self.average_velocity(z, r, t, cond)
        return z
