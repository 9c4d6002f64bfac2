"""Config fields shared by the chunked generative policies (diffusion, flow, meanflow)."""

from __future__ import annotations

from dataclasses import dataclass

from policies.common.encoders import VISION_BACKBONES
from robot_learning.policy import PolicyConfig


@dataclass
class ChunkPolicyConfig(PolicyConfig):
    """Observation encoder + conditional 1-D U-Net settings (defaults: Diffusion Policy, CNN)."""

    down_dims: tuple[int, ...] = (256, 512, 1024)
    """U-Net channels per resolution level (Diffusion Policy: 256, 512, 1024)."""
    kernel_size: int = 5
    """Temporal conv kernel of the U-Net (paper: 5)."""
    n_groups: int = 8
    """GroupNorm groups in the U-Net (paper: 8)."""
    time_embed_dim: int = 128
    """Size of each time / diffusion-step embedding (paper: 128)."""
    state_mlp_dims: tuple[int, ...] = ()
    """MLP on the concatenated state vectors; () = identity (paper's low-dim variant)."""
    vision_backbone: str = "resnet18"
    """Per-camera trunk: resnet18 (GroupNorm, from scratch) or small (3 convs, for tests)."""
    crop_ratio: float = 0.9
    """Random (train) / center (eval) crop side as a fraction of the image side; 1 = no crop."""
    num_keypoints: int = 32
    """Spatial-softmax keypoints per camera (paper / robomimic: 32)."""
    image_feature_dim: int = 64
    """Feature size per camera frame after the keypoint head."""
    image_obs_steps: int | None = None
    """Camera frames encoded per window: the newest k of the ``n_obs_steps`` (None: all). The
    camera trunk is most of a pixel policy's compute; 1 halves it at ``n_obs_steps=2``."""
    num_inference_steps: int | None = 10
    """Network evaluations per predicted chunk (sampler steps)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # JSON round trips (config.json) turn tuples into lists
        self.down_dims = tuple(int(d) for d in self.down_dims)
        self.state_mlp_dims = tuple(int(d) for d in self.state_mlp_dims)
        if not self.down_dims or any(d % self.n_groups for d in self.down_dims):
            raise ValueError(
                f"down_dims={self.down_dims} must be non-empty multiples of n_groups={self.n_groups}"
            )
        multiple = 2 ** (len(self.down_dims) - 1)
        if self.horizon % multiple:
            raise ValueError(
                f"horizon={self.horizon} must be a multiple of 2 ** (len(down_dims) - 1) = {multiple} "
                f"(down_dims={self.down_dims}): the U-Net halves the chunk length per level"
            )
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={self.kernel_size} must be odd")
        if self.time_embed_dim % 2 or self.time_embed_dim < 4:
            raise ValueError(f"time_embed_dim={self.time_embed_dim} must be even and >= 4")
        if self.vision_backbone not in VISION_BACKBONES:
            raise ValueError(
                f"vision_backbone={self.vision_backbone!r} is not one of {VISION_BACKBONES}"
            )
        if self.image_obs_steps is not None and not 1 <= self.image_obs_steps <= self.n_obs_steps:
            raise ValueError(
                f"image_obs_steps={self.image_obs_steps} must be in [1, n_obs_steps={self.n_obs_steps}] "
                "(or null for every observation step)"
            )
        if not 0.0 < self.crop_ratio <= 1.0:
            raise ValueError(f"crop_ratio={self.crop_ratio} must be in (0, 1]")
        if self.num_inference_steps is not None and self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={self.num_inference_steps} must be >= 1")
