"""Config of the conditional flow-matching policy (rectified flow; pi0's action-expert objective)."""

from __future__ import annotations

from dataclasses import dataclass

from policies.common.config import ChunkPolicyConfig
from policies.common.flow_matching import TIME_SAMPLINGS


@dataclass
class FlowConfig(ChunkPolicyConfig):
    """Velocity-field U-Net trained by conditional flow matching, sampled with k Euler steps."""

    num_inference_steps: int | None = 10
    """Euler steps from noise (t=1) to actions (t=0) (pi0: 10)."""
    time_sampling: str = "beta"
    """Training-time distribution of t: beta (pi0), uniform, or logit_normal (SD3)."""
    time_beta_alpha: float = 1.5
    """time_sampling=beta: t ~ Beta(time_beta_alpha, 1), favouring the noisy end (pi0: 1.5)."""
    time_mean: float = 0.0
    """time_sampling=logit_normal: mean of the normal before the sigmoid."""
    time_std: float = 1.0
    """time_sampling=logit_normal: std of the normal before the sigmoid."""
    t_min: float = 0.001
    """Training times are mapped to [t_min, 1] (pi0: 0.001); v is ill-posed at t=0."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_inference_steps is None:
            self.num_inference_steps = 10
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling={self.time_sampling!r} is not one of {TIME_SAMPLINGS}")
        if self.time_beta_alpha <= 0 or self.time_std <= 0 or not 0.0 <= self.t_min < 1.0:
            raise ValueError(
                "need time_beta_alpha > 0, time_std > 0 and 0 <= t_min < 1; got "
                f"time_beta_alpha={self.time_beta_alpha}, time_std={self.time_std}, t_min={self.t_min}"
            )
