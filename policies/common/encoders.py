"""Observation encoder: any mix of state vectors and cameras -> one flat conditioning vector.

Follows Diffusion Policy's visual encoder (Chi et al., RSS 2023, Sec. IV-B): one ResNet-18 per
camera, trained from scratch (no pretrained weights), with every BatchNorm replaced by GroupNorm
(BatchNorm interacts badly with the EMA of weights used for evaluation) and the global average
pool replaced by spatial-softmax keypoint pooling (as in robomimic) to keep spatial information;
random crops in training, center crops at evaluation. State vectors are concatenated (optionally
through an MLP). Features of every observation step are concatenated into the global
conditioning of the U-Net ("obs as global conditioning"). ``image_obs_steps`` < ``n_obs_steps``
encodes only the newest camera frames of the window (the trunk is most of a pixel policy's
cost on a CPU; the states still cover the whole window).

Inputs are already normalised by the policy's :class:`~robot_learning.normalize.Normalizer`:
states in network units, images float in [0, 1] with the dataset's HWC layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from robot_learning.features import FeatureSpec

VISION_BACKBONES = ("resnet18", "small")
#: channels per GroupNorm group when replacing BatchNorm, as in diffusion_policy's replace_bn_with_gn
GN_CHANNELS_PER_GROUP = 16


class SpatialSoftmax(nn.Module):
    """Keypoint pooling: per channel, the softmax-weighted mean image coordinate in [-1, 1].

    A 1x1 conv first maps the feature map to ``num_keypoints`` channels (Levine et al. 2016;
    robomimic's SpatialSoftmax).
    """

    def __init__(self, in_channels: int, height: int, width: int, num_keypoints: int) -> None:
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(
            torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij"
        )
        self.register_buffer("grid", torch.stack([xs, ys], dim=-1).reshape(-1, 2), persistent=False)
        self.shape = (in_channels, height, width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, num_keypoints * 2] (x, y per keypoint)."""
        assert features.shape[1:] == self.shape, f"{tuple(features.shape)} vs {self.shape}"
        logits = self.keypoints(features).flatten(2)  # [N, K, H*W]
        attention = logits.softmax(dim=-1)
        return (attention @ self.grid).flatten(1)  # [N, K, 2] -> [N, 2K]


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // GN_CHANNELS_PER_GROUP), channels)


def build_backbone(name: str, in_channels: int) -> tuple[nn.Module, int]:
    """Conv trunk without pooling/classifier and its output channels.

    ``resnet18``: torchvision ResNet-18, ``weights=None``, BatchNorm -> GroupNorm, avgpool and fc
    dropped (stride 32). ``small``: three GroupNorm convs (stride 4) for tests and tiny images.
    """
    if name == "resnet18":
        import torchvision  # lazy: torchvision adds seconds to import time

        net = torchvision.models.resnet18(weights=None, norm_layer=_group_norm)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        trunk = nn.Sequential(
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        return trunk, 512
    if name == "small":
        widths = (32, 32, 64)
        layers: list[nn.Module] = []
        for cin, cout, stride in zip((in_channels, *widths[:-1]), widths, (2, 1, 2), strict=True):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
                _group_norm(cout),
                nn.Mish(),
            ]
        return nn.Sequential(*layers), widths[-1]
    raise ValueError(f"vision_backbone={name!r} is not one of {VISION_BACKBONES}")


def random_crop(images: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, h, w] with ``(h, w) = crop``, an independent random crop per image."""
    n, _, height, width = images.shape
    ch, cw = crop
    top = torch.randint(0, height - ch + 1, (n, 1, 1), device=images.device)
    left = torch.randint(0, width - cw + 1, (n, 1, 1), device=images.device)
    rows = top + torch.arange(ch, device=images.device)[None, :, None]  # [N, h, 1]
    cols = left + torch.arange(cw, device=images.device)[None, None, :]  # [N, 1, w]
    batch = torch.arange(n, device=images.device)[:, None, None]
    # advanced indexing on dims 0, 2, 3 puts the indexed dims first: [N, h, w, C]
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def center_crop(images: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, h, w], the centred ``crop`` (evaluation)."""
    height, width = images.shape[-2:]
    ch, cw = crop
    top, left = (height - ch) // 2, (width - cw) // 2
    return images[..., top : top + ch, left : left + cw]


class CameraEncoder(nn.Module):
    """One camera: crop -> conv trunk -> spatial softmax -> linear + ReLU.

    Args:
        image_shape: (H, W, C) of the frames.
        crop_ratio: crop side / image side (Diffusion Policy crops 84 of 96 px, ~0.9).
        backbone: one of :data:`VISION_BACKBONES`.
        num_keypoints: spatial-softmax keypoints (32 in Diffusion Policy / robomimic).
        feature_dim: output size per frame.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        crop_ratio: float = 0.9,
        backbone: str = "resnet18",
        num_keypoints: int = 32,
        feature_dim: int = 64,
    ) -> None:
        super().__init__()
        height, width, channels = (int(s) for s in image_shape)
        self.crop = (max(1, round(height * crop_ratio)), max(1, round(width * crop_ratio)))
        self.image_shape = (height, width, channels)
        self.trunk, trunk_channels = build_backbone(backbone, channels)
        with torch.no_grad():  # feature-map size for the spatial softmax grid
            fmap = self.trunk(torch.zeros(1, channels, *self.crop))
        self.pool = SpatialSoftmax(trunk_channels, fmap.shape[2], fmap.shape[3], num_keypoints)
        self.head = nn.Sequential(nn.Linear(2 * num_keypoints, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def random_crop(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, h, w], an independent random crop per image (training)."""
        return random_crop(images, self.crop)

    def center_crop(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, h, w] (evaluation)."""
        return center_crop(images, self.crop)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[N, H, W, C] float in [0, 1] -> [N, feature_dim]."""
        assert tuple(images.shape[1:]) == self.image_shape, (
            f"{tuple(images.shape)} vs {self.image_shape}"
        )
        x = images.permute(0, 3, 1, 2)  # HWC (dataset layout) -> CHW (conv layout)
        x = self.random_crop(x) if self.training else self.center_crop(x)
        return self.head(self.pool(self.trunk(x)))


class ObservationEncoder(nn.Module):
    """All observation keys of a policy -> flat conditioning vector over the observation window.

    Args:
        features: the policy's features (shapes of each key).
        state_keys: non-image observation keys, concatenated in this order.
        image_keys: camera keys; each gets its own :class:`CameraEncoder`.
        n_obs_steps: observation window length T.
        state_mlp_dims: hidden/output sizes of an MLP on the concatenated state; () = identity,
            as in Diffusion Policy's low-dim variant.
        vision_backbone, crop_ratio, num_keypoints, image_feature_dim: see :class:`CameraEncoder`.
        image_obs_steps: newest frames per camera that are encoded (None: all ``n_obs_steps``).
    """

    def __init__(
        self,
        features: FeatureSpec,
        state_keys: Sequence[str],
        image_keys: Sequence[str],
        n_obs_steps: int,
        state_mlp_dims: Sequence[int] = (),
        vision_backbone: str = "resnet18",
        crop_ratio: float = 0.9,
        num_keypoints: int = 32,
        image_feature_dim: int = 64,
        image_obs_steps: int | None = None,
    ) -> None:
        super().__init__()
        if not state_keys and not image_keys:
            raise ValueError("ObservationEncoder needs at least one state or image key")
        self.state_keys = list(state_keys)
        self.image_keys = list(image_keys)
        self.n_obs_steps = n_obs_steps
        self.image_obs_steps = n_obs_steps if image_obs_steps is None else image_obs_steps
        if not 1 <= self.image_obs_steps <= n_obs_steps:
            raise ValueError(
                f"image_obs_steps={image_obs_steps} must be in [1, n_obs_steps={n_obs_steps}]"
            )
        self.state_dim = sum(math.prod(features[k].shape) for k in self.state_keys)
        layers: list[nn.Module] = []
        width = self.state_dim
        for hidden in state_mlp_dims:
            layers += [nn.Linear(width, hidden), nn.Mish()]
            width = hidden
        self.state_mlp = nn.Sequential(*layers)
        # ModuleDict keys may not contain dots
        self.cameras = nn.ModuleDict(
            {
                k.replace(".", "__"): CameraEncoder(
                    features[k].shape, crop_ratio, vision_backbone, num_keypoints, image_feature_dim
                )
                for k in self.image_keys
            }
        )
        self.state_step_dim = width if self.state_keys else 0
        self.image_step_dim = image_feature_dim * len(self.image_keys)
        self.out_dim = (
            self.state_step_dim * n_obs_steps + self.image_step_dim * self.image_obs_steps
        )

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """{key: [B, T, *shape]} normalised -> [B, out_dim], step by step (state, then cameras)."""
        batch = next(iter(obs[k] for k in (*self.state_keys, *self.image_keys))).shape[0]
        per_step: list[list[torch.Tensor]] = [[] for _ in range(self.n_obs_steps)]
        if self.state_keys:
            # [B, T, *shape] -> [B, T, prod(shape)] per key, then concat keys
            state = torch.cat([obs[k].flatten(2) for k in self.state_keys], dim=-1)
            assert state.shape == (batch, self.n_obs_steps, self.state_dim), tuple(state.shape)
            state = self.state_mlp(state)
            for t in range(self.n_obs_steps):
                per_step[t].append(state[:, t])
        first = self.n_obs_steps - self.image_obs_steps  # older frames are not encoded
        for key in self.image_keys:
            frames = obs[key][:, first:]
            flat = frames.reshape(-1, *frames.shape[2:])  # [B*k, H, W, C]
            feats = self.cameras[key.replace(".", "__")](flat).reshape(batch, frames.shape[1], -1)
            for t in range(first, self.n_obs_steps):
                per_step[t].append(feats[:, t - first])
        out = torch.cat([part for step in per_step for part in step], dim=-1)
        assert out.shape == (batch, self.out_dim), tuple(out.shape)
        return out
