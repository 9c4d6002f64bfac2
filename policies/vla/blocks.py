"""Transformer blocks of the VLA, written out so that every projection is a named ``nn.Linear``.

``q_proj``/``k_proj``/``v_proj``/``o_proj`` and the MLP's ``up``/``down`` are what LoRA
(``peft``) targets, and plain ``scaled_dot_product_attention`` exports to ONNX as ordinary ops
(``nn.MultiheadAttention`` keeps its input projection as one fused parameter and has an eager
fast path that neither ``peft`` nor the exporter handle well). Pre-norm blocks, GELU MLPs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class Attention(nn.Module):
    """Multi-head attention of ``x`` over ``context`` (self-attention when ``context is x``)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"d_model={dim} must be a multiple of n_heads={heads}")
        context_dim = context_dim or dim
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(context_dim, dim)
        self.v_proj = nn.Linear(context_dim, dim)
        self.o_proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, N, D], context [B, M, Dc], key_mask [B, M] bool (True = attend) -> [B, N, D]."""
        b, n, d = x.shape
        m = context.shape[1]
        h = self.heads
        q = self.q_proj(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.k_proj(context).view(b, m, h, d // h).transpose(1, 2)
        v = self.v_proj(context).view(b, m, h, d // h).transpose(1, 2)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # [B, 1, 1, M]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    """Two linear layers with GELU (4x expansion)."""

    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__()
        self.up = nn.Linear(dim, dim * ratio)
        self.down = nn.Linear(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to a context, MLP."""

    def __init__(self, dim: int, heads: int, cross: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.cross = cross
        if cross:
            self.norm_x = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h, h, mask)
        if self.cross:
            x = x + self.cross_attn(self.norm_x(x), context, context_mask)
        return x + self.mlp(self.norm2(x))


class Stack(nn.Module):
    """``depth`` blocks and a final LayerNorm; optional gradient checkpointing per block."""

    def __init__(self, dim: int, heads: int, depth: int, cross: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, cross) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.gradient_checkpointing = False

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, mask, context, context_mask, use_reentrant=False)
            else:
                x = block(x, mask, context, context_mask)
        return self.norm(x)


def sinusoidal(t: torch.Tensor, dim: int, scale: float) -> torch.Tensor:
    """[B] times -> [B, dim] sine/cosine features of ``t * scale`` (dim even)."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=t.device)  # float: onnxscript 0.6
    freqs = torch.exp(-math.log(10000.0) * steps / half)
    angles = (t.float() * scale)[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
