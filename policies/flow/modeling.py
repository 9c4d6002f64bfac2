"""Conditional flow-matching policy (rectified flow; Lipman et al. 2023, Liu et al. 2023, pi0).

Reads top to bottom: config, networks (shared encoder + FiLM U-Net from
:class:`~policies.common.base.ChunkGenerativePolicy`, predicting a velocity), loss, sampling.

Path and time convention: :mod:`policies.common.flow_matching` (``z_t = (1 - t) a + t eps``,
``v = eps - a``, data at t=0, noise at t=1, as pi0 and MeanFlow). Training times follow pi0's
``Beta(1.5, 1)`` by default; sampling is k explicit Euler steps from t=1 to t=0 on a uniform grid,
a deterministic function of the initial noise.
"""

from __future__ import annotations

import torch

from policies.common.base import ChunkGenerativePolicy, masked_mse
from policies.common.flow_matching import TIME_EMBED_SCALE, interpolate, sample_times
from policies.flow.configuration import FlowConfig
from robot_learning.features import FeatureSpec
from robot_learning.policy import register_policy


@register_policy("flow")
class FlowPolicy(ChunkGenerativePolicy):
    """Regresses the velocity of the straight noise -> action path; k-step Euler sampling."""

    config_class = FlowConfig
    num_time_inputs = 1
    time_scale = TIME_EMBED_SCALE

    def __init__(self, config: FlowConfig, features: FeatureSpec, stats: dict | None) -> None:
        super().__init__(config, features, stats)
        self.config: FlowConfig = config

    # ------------------------------------------------------------------ loss
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Velocity regression ||v_theta(z_t, t) - (eps - a)||^2 over valid steps."""
        cfg = self.config
        cond = self.encode_observations(batch)
        actions, valid = self.normalized_actions(batch)  # [B, H, A], [B, H]
        t = sample_times(
            actions.shape[0], actions.device, cfg.time_sampling,
            beta_alpha=cfg.time_beta_alpha, mean=cfg.time_mean, std=cfg.time_std, t_min=cfg.t_min,
        )  # fmt: skip
        z_t, velocity = interpolate(actions, torch.randn_like(actions), t)
        pred = self.unet(z_t, t[:, None], cond)
        loss = masked_mse(pred, velocity, valid)
        return loss, {"loss": loss.item(), "mse": loss.item()}

    # ------------------------------------------------------------------ sampling
    def sample(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """cond [B, C], noise [B, horizon, A] -> normalised chunk [B, horizon, A]."""
        steps = self.config.num_inference_steps
        x = noise
        for i in range(steps):
            t = torch.full((x.shape[0], 1), 1.0 - i / steps, device=x.device)
            x = x - self.unet(x, t, cond) / steps  # Euler step dt = -1/k towards the data end
        return x
