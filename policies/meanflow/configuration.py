"""Config of the MeanFlow policy (Geng et al. 2025, "Mean Flows"; MP1 for robot policies)."""

from __future__ import annotations

from dataclasses import dataclass

from policies.common.config import ChunkPolicyConfig
from policies.common.flow_matching import TIME_SAMPLINGS


@dataclass
class MeanFlowConfig(ChunkPolicyConfig):
    """Average-velocity U-Net u(z, r, t) trained with the MeanFlow identity; one-step sampling."""

    num_inference_steps: int | None = 1
    """Network evaluations per chunk (1 = one-step generation; more for ablations)."""
    ratio_r_neq_t: float = 0.25
    """Fraction of training samples with r < t; the rest use r = t, i.e. plain flow matching
    (MeanFlow ablation: 25% is best, 0% degenerates to flow matching)."""
    time_sampling: str = "logit_normal"
    """Distribution of the two drawn times before sorting into r <= t (paper: logit_normal)."""
    time_mean: float = -0.4
    """logit_normal mean (MeanFlow's best: -0.4)."""
    time_std: float = 1.0
    """logit_normal std (MeanFlow's best: 1.0)."""
    time_beta_alpha: float = 1.5
    """time_sampling=beta: Beta(time_beta_alpha, 1)."""
    adaptive_weight_p: float = 1.0
    """Adaptive loss weight w = 1 / (mse + c)^p, stop-gradient (paper's best p = 1; 0 = plain MSE)."""
    adaptive_weight_c: float = 1e-3
    """Constant c of the adaptive weight, in normalised action units squared (paper: 1e-3)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_inference_steps is None:
            self.num_inference_steps = 1
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling={self.time_sampling!r} is not one of {TIME_SAMPLINGS}")
        if not 0.0 <= self.ratio_r_neq_t <= 1.0:
            raise ValueError(f"ratio_r_neq_t={self.ratio_r_neq_t} must be in [0, 1]")
        if self.adaptive_weight_p < 0 or self.adaptive_weight_c <= 0:
            raise ValueError(
                f"need adaptive_weight_p >= 0 and adaptive_weight_c > 0; got "
                f"adaptive_weight_p={self.adaptive_weight_p}, adaptive_weight_c={self.adaptive_weight_c}"
            )
        if self.time_std <= 0 or self.time_beta_alpha <= 0:
            raise ValueError(
                f"need time_std > 0 and time_beta_alpha > 0; got time_std={self.time_std}, "
                f"time_beta_alpha={self.time_beta_alpha}"
            )
