"""The VLA's input encoders: instruction tokens and camera frames -> sequences of tokens.

Text: :class:`ScratchTextEncoder` (byte embeddings + a small transformer, trained with the
policy) or :class:`HFTextEncoder` (any Hugging Face encoder built from a local folder or from the
config stored in a checkpoint, e.g. MiniLM-L6; never a download). Images: :class:`ImageTokens`
(conv trunk -> average-pooled grid -> one token per cell, with learned positions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from policies.common.encoders import build_backbone, center_crop, random_crop
from policies.vla.blocks import Stack


class ScratchTextEncoder(nn.Module):
    """Token embeddings + learned positions + a transformer: ids [B, L] -> [B, L, dim]."""

    def __init__(self, vocab_size: int, max_tokens: int, dim: int, heads: int, depth: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.stack = Stack(dim, heads, depth)
        self.out_dim = dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        return self.stack(x, mask.bool())


def read_hf_folder(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of a local Hugging Face model folder, with a clear error when absent."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"text_model_path={folder} is not a Hugging Face model folder (no config.json); "
            "point it at a folder written by model.save_pretrained(...), e.g. MiniLM-L6's"
        )
    return json.loads(path.read_text())


class HFTextEncoder(nn.Module):
    """A Hugging Face encoder (BERT/MiniLM-style ``AutoModel``): last hidden states [B, L, H].

    ``pretrained``: a local folder whose weights are loaded (``local_files_only``: no network);
    None builds the architecture from ``model_config`` alone (a checkpoint's weights follow).
    """

    def __init__(self, model_config: dict[str, Any], pretrained: str | Path | None) -> None:
        super().__init__()
        try:
            from transformers import AutoConfig, AutoModel
        except ImportError as exc:
            raise ImportError(
                "text_encoder=huggingface needs transformers: pip install -e '.[vla]'"
            ) from exc
        data = {k: v for k, v in model_config.items() if not k.startswith("_")}
        model_type = data.pop("model_type", None)
        if model_type is None:
            raise ValueError("the text model's config.json has no model_type")
        config = AutoConfig.for_model(model_type, **data)
        if pretrained is not None:
            self.model = AutoModel.from_pretrained(
                str(pretrained), config=config, local_files_only=True
            )
        else:
            self.model = AutoModel.from_config(config)
        self.out_dim = int(config.hidden_size)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state


class ImageTokens(nn.Module):
    """One camera: crop -> conv trunk -> average pool to about ``grid`` x ``grid`` -> tokens.

    [B, H, W, C] float in [0, 1] -> [B, n_tokens, dim]. The pooling window is fixed at build
    time from the trunk's feature-map size, so the graph exports with static shapes.
    """

    def __init__(
        self, image_shape: Sequence[int], backbone: str, dim: int, grid: int, crop_ratio: float
    ) -> None:
        super().__init__()
        height, width, channels = (int(s) for s in image_shape)
        self.image_shape = (height, width, channels)
        self.crop = (max(1, round(height * crop_ratio)), max(1, round(width * crop_ratio)))
        self.trunk, trunk_channels = build_backbone(backbone, channels)
        with torch.no_grad():
            fmap = self.trunk(torch.zeros(1, channels, *self.crop))
        kernel = (max(1, fmap.shape[2] // grid), max(1, fmap.shape[3] // grid))
        self.pool = nn.AvgPool2d(kernel, stride=kernel)
        self.proj = nn.Conv2d(trunk_channels, dim, kernel_size=1)
        with torch.no_grad():
            self.n_tokens = int(self.pool(fmap).shape[2] * self.pool(fmap).shape[3])
        self.pos = nn.Parameter(torch.randn(self.n_tokens, dim) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2)  # HWC (dataset layout) -> CHW
        x = random_crop(x, self.crop) if self.training else center_crop(x, self.crop)
        x = self.proj(self.pool(self.trunk(x)))  # [B, dim, h, w]
        return x.flatten(2).transpose(1, 2) + self.pos
