"""Pixel observations for off-policy RL: DrQ random shifts and one image encoder shared by the critics.

Follows DrQ (Kostrikov et al. 2021, "Image Augmentation Is All You Need") and SAC-AE
(Yarats et al. 2021): each camera goes through a conv trunk, a linear layer, LayerNorm and tanh;
the features of every camera are concatenated with the flattened state. The encoder belongs to
the critic ensemble (one encoder for all critics, trained by the critic loss); the actor reads the
same encoder with its gradient stopped, and the target critics hold a Polyak-averaged copy.
Training batches are augmented by random shifts (pad by ``shift_pad`` pixels with edge
replication, crop back at a random offset), drawn independently for observation and next
observation, never at action time.

``encoder.pretrained`` starts every camera from a zoo policy's camera encoder (a ``train`` run,
its checkpoint, e.g. a flow or diffusion policy or a reward classifier trained on the same
cameras); ``encoder.freeze=true`` keeps those weights fixed and trains only the projection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from robot_learning.features import FeatureSpec

log = logging.getLogger(__name__)

#: conv trunks: (channels, stride) per 3x3 layer. ``drq`` is DrQ's (84 px: 35x35 maps, 39k
#: features per camera); ``fast`` strides three times (96 px: 12x12 maps), ~6x fewer FLOPs on CPU.
TRUNKS: dict[str, tuple[tuple[int, int], ...]] = {
    "drq": ((32, 2), (32, 1), (32, 1), (32, 1)),
    "fast": ((32, 2), (32, 2), (32, 2)),
}
#: the key of the concatenated state vector in an observation dict fed to :class:`PixelEncoder`
STATE = "state"


@dataclass
class EncoderConfig:
    """Image encoder of pixel RL (``algo.encoder.*``; unused when the task has no cameras)."""

    trunk: str = "fast"
    """Conv trunk per camera: ``fast`` (three stride-2 convs, the CPU default) or ``drq`` (DrQ's)."""
    feature_dim: int = 50
    """Features per camera after the projection, LayerNorm and tanh (DrQ: 50)."""
    shift_pad: int = 4
    """DrQ random shift: pad by this many pixels and crop back at random (0: no augmentation)."""
    pretrained: str | None = None
    """A zoo policy (``train`` run or checkpoint) whose camera encoders replace the conv trunk."""
    freeze: bool = False
    """Keep the pretrained camera encoders fixed (only the projection trains); needs ``pretrained``."""

    def __post_init__(self) -> None:
        if self.trunk not in TRUNKS:
            raise ValueError(f"algo.encoder.trunk={self.trunk!r} is not one of {sorted(TRUNKS)}")
        if self.feature_dim < 1 or self.shift_pad < 0:
            raise ValueError(
                f"algo.encoder needs feature_dim >= 1 and shift_pad >= 0, got "
                f"{self.feature_dim} and {self.shift_pad}"
            )
        if self.freeze and not self.pretrained:
            raise ValueError(
                "algo.encoder.freeze=true needs algo.encoder.pretrained=<zoo policy run or checkpoint> "
                "(a randomly initialised encoder would stay random)"
            )


def random_shift(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DrQ's augmentation on ``[B, H, W, C]`` frames (any dtype): replicate-pad by ``pad``, then
    crop ``H x W`` at an independent integer offset per frame (a shift of up to ``pad`` pixels)."""
    if pad == 0:
        return images
    b, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2)
    padded = nn.functional.pad(x.float(), (pad, pad, pad, pad), mode="replicate").to(x.dtype)
    top = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=generator)
    rows = (top + torch.arange(h)[None, :, None]).to(images.device)
    cols = (left + torch.arange(w)[None, None, :]).to(images.device)
    batch = torch.arange(b, device=images.device)[:, None, None]
    # advanced indexing on dims 0, 2, 3 of NHWC puts the indexed dims first: [B, H, W, C]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols]


def conv_trunk(name: str, channels: int) -> nn.Sequential:
    """The :data:`TRUNKS` entry ``name`` as ``Conv2d + ReLU`` layers on ``channels`` inputs."""
    layers: list[nn.Module] = []
    for width, stride in TRUNKS[name]:
        layers += [nn.Conv2d(channels, width, 3, stride=stride), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers)


class CameraFeatures(nn.Module):
    """One camera: uint8 ``[B, H, W, C]`` -> trunk -> linear -> LayerNorm -> tanh ``[B, feature_dim]``.

    ``trunk`` maps float ``[B, C, H, W]`` in [0, 1] to a feature map (a :func:`conv_trunk`), or,
    when ``hwc_trunk``, float ``[B, H, W, C]`` to a vector (a zoo ``CameraEncoder``).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        trunk: nn.Module,
        feature_dim: int,
        hwc_trunk: bool = False,
    ) -> None:
        super().__init__()
        self.image_shape, self.hwc_trunk = tuple(int(s) for s in image_shape), hwc_trunk
        self.trunk = trunk
        with torch.no_grad():
            width = self._trunk(torch.zeros(1, *self.image_shape, dtype=torch.uint8)).shape[1]
        self.project = nn.Sequential(
            nn.Linear(width, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh()
        )

    def _trunk(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if not self.hwc_trunk:
            x = x.permute(0, 3, 1, 2)
        return self.trunk(x).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, C]`` -> ``[B, feature_dim]``."""
        return self.project(self._trunk(images))


class PixelEncoder(nn.Module):
    """``{"state": [B, D], <camera key>: uint8 [B, H, W, C], ...}`` -> ``[B, out_dim]``.

    ``out_dim = D + feature_dim * cameras``: the state passes through unchanged (the MLP heads
    normalise nothing else either), each camera through its :class:`CameraFeatures`.
    """

    def __init__(
        self, cameras: Mapping[str, CameraFeatures], state_dim: int, feature_dim: int
    ) -> None:
        super().__init__()
        self.image_keys = list(cameras)
        self.cameras = nn.ModuleDict({k.replace(".", "__"): m for k, m in cameras.items()})
        self.state_dim = state_dim
        self.out_dim = state_dim + feature_dim * len(self.image_keys)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = [obs[STATE]] if self.state_dim else []
        parts += [self.cameras[k.replace(".", "__")](obs[k]) for k in self.image_keys]
        return torch.cat(parts, dim=-1)

    def train(self, mode: bool = True) -> PixelEncoder:
        super().train(mode)
        for cam in self.cameras.values():  # a zoo trunk always runs as at evaluation (center crop)
            if cam.hwc_trunk:
                cam.trunk.eval()
        return self


def build_pixel_encoder(
    spec: FeatureSpec, image_keys: Sequence[str], state_dim: int, cfg: EncoderConfig
) -> PixelEncoder:
    """A :class:`PixelEncoder` for ``image_keys`` of ``spec`` with the trunks ``cfg`` asks for."""
    zoo = _zoo_cameras(cfg.pretrained, spec, image_keys) if cfg.pretrained else {}
    cameras = {}
    for key in image_keys:
        shape = spec[key].shape
        if key in zoo:
            trunk = zoo[key].requires_grad_(not cfg.freeze)
            cameras[key] = CameraFeatures(shape, trunk.eval(), cfg.feature_dim, hwc_trunk=True)
        else:
            cameras[key] = CameraFeatures(shape, conv_trunk(cfg.trunk, shape[-1]), cfg.feature_dim)
    return PixelEncoder(cameras, state_dim, cfg.feature_dim)


def _zoo_cameras(path: str, spec: FeatureSpec, image_keys: Sequence[str]) -> dict[str, nn.Module]:
    """The camera encoders of the zoo policy at ``path`` for ``image_keys`` (shapes must match)."""
    from policies.common.encoders import ObservationEncoder
    from robot_learning.cli.eval import checkpoint_dir
    from robot_learning.policy import Policy

    directory = Path(path)
    if (directory / "final" / "config.json").is_file():
        directory = directory / "final"  # a train run folder
    try:
        policy = Policy.load(checkpoint_dir(directory))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"algo.encoder.pretrained: {exc}") from exc
    found = [m for m in policy.modules() if isinstance(m, ObservationEncoder)]
    if not found or not found[0].image_keys:
        raise ValueError(
            f"algo.encoder.pretrained={path}: the {type(policy).__name__} there has no camera "
            "encoder; pass a policy trained on the task's cameras (obs=pixels)"
        )
    zoo = found[0]
    missing = [k for k in image_keys if k not in zoo.image_keys]
    if missing:
        raise ValueError(
            f"algo.encoder.pretrained={path} encodes cameras {zoo.image_keys}, not {missing}"
        )
    cameras = {}
    for key in image_keys:
        camera = zoo.cameras[key.replace(".", "__")]
        if tuple(camera.image_shape) != tuple(spec[key].shape):
            raise ValueError(
                f"algo.encoder.pretrained={path}: {key} was {tuple(camera.image_shape)} there but is "
                f"{tuple(spec[key].shape)} in this task (use the same task.image_size)"
            )
        cameras[key] = camera
    log.info("pixel RL encoder: cameras %s start from %s", list(cameras), path)
    return cameras
