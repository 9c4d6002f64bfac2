"""Which observation keys an RL learner reads, and how a numpy batch becomes network input.

State-only tasks give one flat float tensor ``[B, D]`` (the state keys concatenated in feature
order), exactly what the MLP actors and critics take. Tasks with cameras give a dict
``{"state": [B, D], <camera key>: uint8 [B, H, W, C]}`` for a
:class:`~robot_learning.rl.encoders.PixelEncoder`; training batches get DrQ random shifts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from robot_learning.features import FeatureSpec
from robot_learning.rl.encoders import (
    STATE,
    EncoderConfig,
    PixelEncoder,
    build_pixel_encoder,
    random_shift,
)
from robot_learning.rl.networks import obs_dim, obs_vector

ObsTensor = torch.Tensor | dict[str, torch.Tensor]


class LearnerObservations:
    """The learner's view of a task's observations (state keys, camera keys, conversion)."""

    def __init__(self, spec: FeatureSpec, skip_images: bool = False) -> None:
        self.spec = spec
        self.image_keys = [] if skip_images else list(spec.image_keys)
        self.state_keys = [k for k in spec.observation_keys if k not in spec.image_keys]
        if not self.state_keys and not self.image_keys:
            raise ValueError(f"the task declares no observation.* features: {sorted(spec)}")
        self.state_dim = obs_dim(spec, self.state_keys)

    @property
    def keys(self) -> list[str]:
        """Every key the learner stores and reads (state keys, then cameras)."""
        return [*self.state_keys, *self.image_keys]

    @property
    def pixels(self) -> bool:
        """True when the learner reads cameras (and its networks need an image encoder)."""
        return bool(self.image_keys)

    def encoder(self, cfg: EncoderConfig) -> PixelEncoder | None:
        """A fresh image encoder for the cameras, or None for a state-only learner."""
        return (
            build_pixel_encoder(self.spec, self.image_keys, self.state_dim, cfg)
            if self.pixels
            else None
        )

    def tensors(
        self,
        obs: Mapping[str, np.ndarray],
        device: torch.device | str = "cpu",
        shift_pad: int = 0,
        generator: torch.Generator | None = None,
    ) -> ObsTensor:
        """A batch ``{key: [B, ...]}`` as network input; ``shift_pad`` > 0 shifts the frames (training)."""
        if not self.pixels:
            return torch.as_tensor(obs_vector(obs, self.state_keys), device=device)
        first = obs[self.image_keys[0]]
        state = (
            obs_vector(obs, self.state_keys)
            if self.state_keys
            else np.zeros((len(first), 0), np.float32)
        )
        out = {STATE: torch.as_tensor(state, device=device)}
        for key in self.image_keys:
            frames = torch.as_tensor(np.asarray(obs[key], np.uint8), device=device)
            out[key] = random_shift(frames, shift_pad, generator)
        return out

    def single(
        self, obs: Mapping[str, np.ndarray], device: torch.device | str = "cpu"
    ) -> ObsTensor:
        """One environment observation (no batch axis) as a batch of one."""
        return self.tensors({k: np.asarray(obs[k])[None] for k in self.keys}, device)
