"""Conditional 1-D temporal U-Net with FiLM: the denoiser / velocity network of the chunk policies.

The layout follows the CNN backbone of Diffusion Policy (Chi et al., RSS 2023, Sec. IV-A): the
action chunk is a 1-D signal over time with action dimensions as channels; every residual block
is modulated by FiLM (per-channel scale and bias) computed from one *global* conditioning vector
made of the observation features and the embedding(s) of the noise level / flow time. Convs use
GroupNorm and Mish as in the paper.

Departures from the reference implementation (deliberate, documented):
- FiLM applies ``(1 + scale) * h + bias`` so that a freshly initialised block is the identity
  modulation instead of zeroing the features;
- every down-sampling level's skip connection is used on the way up (the reference discards the
  first one).
- up to two time inputs, each with its own embedding MLP: diffusion feeds the integer DDPM step,
  flow matching a continuous ``t`` in [0, 1], MeanFlow the pair ``(t, t - r)`` (the embedding the
  MeanFlow paper found best).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar time (integer step or continuous).

    Args:
        dim: embedding size (even).
        scale: multiplies the input first (1 for integer DDPM steps; flow times in [0, 1] use
            :data:`policies.common.flow_matching.TIME_EMBED_SCALE`).
    """

    def __init__(self, dim: int, scale: float = 1.0, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim % 2 or dim < 4:
            raise ValueError(f"time embedding dim={dim} must be even and >= 4")
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - 1)
        )
        # persistent=False: derived from (dim, max_period), so it is not part of checkpoints
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = float(scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """[B] (int or float) -> [B, dim]."""
        assert t.ndim == 1, f"time must be [B], got {tuple(t.shape)}"
        args = (t.to(self.freqs.dtype) * self.scale)[:, None] * self.freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish, length preserving (odd kernel)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int
    ) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )


class FiLMResidualBlock1D(nn.Module):
    """Two conv blocks; the first one's output is FiLM-modulated by the global conditioning."""

    def __init__(
        self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int
    ) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        self.block2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.skip = (
            nn.Conv1d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, T], cond [B, cond_dim] -> [B, C_out, T]."""
        h = self.block1(x)
        scale, bias = self.film(cond)[:, :, None].chunk(2, dim=1)  # each [B, C_out, 1]
        h = self.block2((1.0 + scale) * h + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """1-D U-Net over the chunk's time axis, FiLM-conditioned on observations and time(s).

    Args:
        action_dim: channels of the input/output signal.
        global_cond_dim: size of the observation conditioning vector.
        down_dims: channels per resolution level; the chunk length must be divisible by
            ``2 ** (len(down_dims) - 1)``.
        kernel_size: temporal kernel of every conv (odd).
        n_groups: GroupNorm groups (must divide every entry of ``down_dims``).
        time_embed_dim: size of each time embedding.
        num_time_inputs: 1 (diffusion step, flow time) or 2 (MeanFlow's ``(t, t - r)``).
        time_scale: see :class:`SinusoidalTimeEmbedding`.
    """

    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: Sequence[int] = (256, 512, 1024),
        kernel_size: int = 5,
        n_groups: int = 8,
        time_embed_dim: int = 128,
        num_time_inputs: int = 1,
        time_scale: float = 1.0,
    ) -> None:
        super().__init__()
        dims = [int(d) for d in down_dims]
        if not dims or any(d % n_groups for d in dims):
            raise ValueError(
                f"down_dims={tuple(dims)} must be non-empty multiples of n_groups={n_groups}"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd (length-preserving padding)")
        self.action_dim = action_dim
        self.num_time_inputs = num_time_inputs
        self.time_embeds = nn.ModuleList(
            nn.Sequential(
                SinusoidalTimeEmbedding(time_embed_dim, time_scale),
                nn.Linear(time_embed_dim, 4 * time_embed_dim),
                nn.Mish(),
                nn.Linear(4 * time_embed_dim, time_embed_dim),
            )
            for _ in range(num_time_inputs)
        )
        cond_dim = global_cond_dim + num_time_inputs * time_embed_dim

        def res(cin: int, cout: int) -> FiLMResidualBlock1D:
            return FiLMResidualBlock1D(cin, cout, cond_dim, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip([action_dim, *dims[:-1]], dims, strict=True)):
            is_last = i == len(dims) - 1
            resample = nn.Identity() if is_last else nn.Conv1d(cout, cout, 3, stride=2, padding=1)
            self.down.append(nn.ModuleList([res(cin, cout), res(cout, cout), resample]))
        self.mid = nn.ModuleList([res(dims[-1], dims[-1]), res(dims[-1], dims[-1])])
        self.up = nn.ModuleList()
        for fine, coarse in reversed(list(zip(dims[:-1], dims[1:], strict=True))):
            self.up.append(
                nn.ModuleList(
                    [
                        nn.ConvTranspose1d(coarse, coarse, 4, stride=2, padding=1),  # T -> 2T
                        res(coarse + fine, fine),
                        res(fine, fine),
                    ]
                )
            )
        self.final = nn.Sequential(
            Conv1dBlock(dims[0], dims[0], kernel_size, n_groups), nn.Conv1d(dims[0], action_dim, 1)
        )
        self.length_multiple = 2 ** (len(dims) - 1)

    def forward(
        self, sample: torch.Tensor, times: torch.Tensor, global_cond: torch.Tensor
    ) -> torch.Tensor:
        """sample [B, T, A], times [B, num_time_inputs], global_cond [B, C] -> [B, T, A]."""
        batch, length, dim = sample.shape
        assert dim == self.action_dim, f"sample has {dim} channels, expected {self.action_dim}"
        assert length % self.length_multiple == 0, (
            f"T={length} not a multiple of {self.length_multiple}"
        )
        assert times.shape == (batch, self.num_time_inputs), f"times {tuple(times.shape)}"
        assert global_cond.ndim == 2 and global_cond.shape[0] == batch, (
            f"cond {tuple(global_cond.shape)}"
        )
        time_feats = [emb(times[:, i]) for i, emb in enumerate(self.time_embeds)]
        cond = torch.cat([*time_feats, global_cond], dim=-1)  # [B, cond_dim]

        x = sample.transpose(1, 2)  # [B, A, T]: conv over time, actions as channels
        skips = []
        for block1, block2, downsample in self.down:
            x = block2(block1(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        skips.pop()  # the coarsest level feeds the middle blocks directly
        for block in self.mid:
            x = block(x, cond)
        for upsample, block1, block2 in self.up:
            x = torch.cat([upsample(x), skips.pop()], dim=1)
            x = block2(block1(x, cond), cond)
        out = self.final(x).transpose(1, 2)  # [B, T, A]
        assert out.shape == sample.shape
        return out
