"""Base class of the chunked generative policies: conditioning, backbone, masking, sampling frame.

:class:`ChunkGenerativePolicy` builds the observation encoder and the conditional U-Net from the
config, turns a batch into (conditioning, normalised action chunk, valid mask), checks the noise
given to :meth:`predict_chunk` and unnormalises the sampled chunk. A family (diffusion, flow,
meanflow) adds only its loss (:meth:`compute_loss`) and its sampler (:meth:`sample`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar

import torch

from policies.common.config import ChunkPolicyConfig
from policies.common.encoders import ObservationEncoder
from policies.common.unet1d import ConditionalUnet1D
from robot_learning.features import ACTION, FeatureMismatchError, FeatureSpec
from robot_learning.policy import Policy

log = logging.getLogger(__name__)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid chunk steps only.

    pred, target [B, T, A]; valid [B, T] bool. Steps past the episode end (``action_is_pad``)
    hold copies of the last action, not demonstrations, so they must not be regressed.
    """
    return per_sample_mse(pred, target, valid).mean()


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[B, T, A] x2, valid [B, T] -> [B]: each sample's mean squared error over its valid steps."""
    assert pred.shape == target.shape and valid.shape == pred.shape[:2], (pred.shape, valid.shape)
    weight = valid.to(pred.dtype)[..., None]  # [B, T, 1]
    sq = ((pred - target) ** 2 * weight).sum(dim=(1, 2))
    count = (weight.sum(dim=(1, 2)) * pred.shape[-1]).clamp_min(1.0)
    return sq / count


class ChunkGenerativePolicy(Policy):
    """Observation encoder + FiLM U-Net over action chunks; subclasses add loss and sampler."""

    config_class: ClassVar[type[ChunkPolicyConfig]] = ChunkPolicyConfig
    #: time inputs of the U-Net (MeanFlow: 2) and their scale before the sinusoidal embedding
    num_time_inputs: ClassVar[int] = 1
    time_scale: ClassVar[float] = 1.0
    #: sampler name recorded in bundles (diffusion reads its own from the config)
    sampler_name: ClassVar[str] = "euler"

    def __init__(
        self, config: ChunkPolicyConfig, features: FeatureSpec, stats: dict | None
    ) -> None:
        super().__init__(config, features, stats)
        if len(self.features.action.shape) != 1:
            raise FeatureMismatchError(
                f"{ACTION!r} must be a vector, got shape {self.features.action.shape}"
            )
        self.obs_encoder = ObservationEncoder(
            self.features,
            self.state_keys,
            self.image_keys,
            config.n_obs_steps,
            state_mlp_dims=config.state_mlp_dims,
            vision_backbone=config.vision_backbone,
            crop_ratio=config.crop_ratio,
            num_keypoints=config.num_keypoints,
            image_feature_dim=config.image_feature_dim,
            image_obs_steps=config.image_obs_steps,
        )
        self.unet = ConditionalUnet1D(
            self.action_dim,
            self.obs_encoder.out_dim,
            down_dims=config.down_dims,
            kernel_size=config.kernel_size,
            n_groups=config.n_groups,
            time_embed_dim=config.time_embed_dim,
            num_time_inputs=self.num_time_inputs,
            time_scale=self.time_scale,
        )
        log.info(
            "%s policy: %.2fM parameters (encoder %.2fM, U-Net %.2fM), inputs %s",
            self.name,
            sum(p.numel() for p in self.parameters()) / 1e6,
            sum(p.numel() for p in self.obs_encoder.parameters()) / 1e6,
            sum(p.numel() for p in self.unet.parameters()) / 1e6,
            self.input_keys,
        )

    # ------------------------------------------------------------------ batch -> network space
    def encode_observations(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation keys [B, n_obs_steps, *shape] (raw) -> global conditioning [B, cond_dim]."""
        missing = [k for k in self.input_keys if k not in batch]
        if missing:
            raise FeatureMismatchError(
                f"Batch is missing {missing}; policy inputs are {self.input_keys}"
            )
        obs = {}
        for key in self.input_keys:
            value = batch[key]
            expected = (self.config.n_obs_steps, *self.features[key].shape)
            if tuple(value.shape[1:]) != expected:
                raise FeatureMismatchError(
                    f"{key!r}: expected [B, {', '.join(map(str, expected))}], got {list(value.shape)}"
                )
            obs[key] = self.normalizer.normalize(
                key, value if key in self.image_keys else value.float()
            )
        return self.obs_encoder(obs)

    def normalized_actions(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``action`` [B, horizon, A] raw -> (normalised [B, horizon, A], valid [B, horizon] bool)."""
        actions = batch[ACTION].float()
        expected = (self.config.horizon, self.action_dim)
        if tuple(actions.shape[1:]) != expected:
            raise FeatureMismatchError(
                f"{ACTION!r}: expected [B, {expected[0]}, {expected[1]}], got {list(actions.shape)}"
            )
        pad = batch.get("action_is_pad")
        valid = (
            torch.ones(actions.shape[:2], dtype=torch.bool, device=actions.device)
            if pad is None
            else ~pad.bool()
        )
        return self.normalizer.normalize(ACTION, actions), valid

    def initial_noise(
        self, noise: torch.Tensor | None, batch_size: int, device: torch.device
    ) -> torch.Tensor:
        """The sampler's starting point [B, horizon, A]: ``noise`` checked, or drawn from torch's RNG."""
        shape = (batch_size, self.config.horizon, self.action_dim)
        if noise is None:
            return torch.randn(shape, device=device)
        if tuple(noise.shape) != shape:
            raise ValueError(
                f"noise must have shape {list(shape)} ([B, horizon, action_dim]), got {list(noise.shape)}"
            )
        return noise.to(device=device, dtype=torch.float32)

    # ------------------------------------------------------------------ sampler settings
    def inference_settings(self) -> dict:
        """``{"name": sampler, "steps": network evaluations per chunk}``."""
        return {"name": self.sampler_name, "steps": int(self.config.num_inference_steps)}

    def set_inference(self, sampler: str | None = None, steps: int | None = None) -> None:
        """Set the step count (validated by the config); this family has one sampler."""
        if sampler is not None and sampler != self.sampler_name:
            raise ValueError(
                f"policy {self.name!r} samples with {self.sampler_name!r}; sampler={sampler!r} is not supported"
            )
        if steps is not None:
            self.config = dataclasses.replace(self.config, num_inference_steps=int(steps))

    # ------------------------------------------------------------------ inference frame
    def predict_chunk(
        self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Observations [B, n_obs_steps, ...] -> raw actions [B, horizon, A], determined by ``noise``."""
        cond = self.encode_observations(batch)
        x = self.sample(cond, self.initial_noise(noise, cond.shape[0], cond.device))
        return self.normalizer.unnormalize(ACTION, x)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Family sampler: cond [B, C], noise [B, horizon, A] -> normalised actions [B, horizon, A]."""
        raise NotImplementedError
