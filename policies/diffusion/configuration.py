"""Config of the Diffusion Policy (Chi et al., RSS 2023); defaults are the paper's CNN variant."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from policies.common.config import ChunkPolicyConfig

log = logging.getLogger(__name__)

SAMPLERS = ("ddim", "ddpm")
PREDICTION_TYPES = ("epsilon", "sample")


@dataclass
class DiffusionConfig(ChunkPolicyConfig):
    """DDPM-trained conditional U-Net over action chunks, sampled with DDIM or DDPM."""

    num_train_timesteps: int = 100
    """Diffusion steps of the training noise schedule (paper: 100)."""
    beta_schedule: str = "squaredcos_cap_v2"
    """diffusers beta schedule (paper: squaredcos_cap_v2, the iDDPM cosine schedule)."""
    prediction_type: str = "epsilon"
    """What the network regresses: epsilon (paper) or sample (the clean chunk)."""
    clip_sample: bool = True
    """Clip the predicted clean chunk at every sampler step (paper: True; assumes min_max actions)."""
    clip_sample_range: float = 1.0
    """Clip range in normalised action units (min_max normalisation maps to [-1, 1])."""
    sampler: str = "ddim"
    """ddim (deterministic, eta=0, few steps) or ddpm (stochastic, ancestral)."""
    num_inference_steps: int | None = None
    """Sampler steps; None = 10 for ddim, num_train_timesteps for ddpm."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} is not one of {SAMPLERS}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type={self.prediction_type!r} is not one of {PREDICTION_TYPES}"
            )
        if self.num_inference_steps is None:
            self.num_inference_steps = 10 if self.sampler == "ddim" else self.num_train_timesteps
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps={self.num_inference_steps} exceeds "
                f"num_train_timesteps={self.num_train_timesteps}"
            )
        if self.clip_sample and self.action_norm != "min_max" and self.clip_sample_range <= 1.0:
            log.warning(
                "clip_sample=True with clip_sample_range=%s assumes actions in [-1, 1], but "
                "action_norm=%r is unbounded; consider clip_sample=False",
                self.clip_sample_range,
                self.action_norm,
            )
