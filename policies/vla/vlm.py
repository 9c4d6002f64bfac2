"""A Hugging Face vision-language model as the VLA's backbone (SmolVLA / pi0 style).

:class:`HFVLMBackbone` builds a SmolVLM, Idefics3 or PaliGemma model from a local folder (or
from the config kept in a checkpoint; never a download) and exposes what the VLA's prefix needs:
the language model's token embeddings, the vision tower + connector's image tokens, and the
language model run over the concatenated prefix embeddings (``inputs_embeds``; SmolVLA does the
same and keeps only the first layers). Each model family differs only in where its parts live,
which :data:`VLM_FAMILIES` records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from policies.vla.encoders import read_hf_folder


def _idefics_image_tokens(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """SmolVLM / Idefics3: vision encoder -> pixel-shuffle connector (SmolVLA calls these two
    directly: ``get_image_features`` drops all-zero images, a data-dependent shape)."""
    return model.connector(model.vision_model(pixel_values=pixels).last_hidden_state)


def _paligemma_image_tokens(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """PaliGemma: SigLIP tower -> linear projector (scaled as the model scales it)."""
    out = model.get_image_features(pixels)
    return out.pooler_output if hasattr(out, "pooler_output") else out


@dataclass(frozen=True)
class VLMFamily:
    """Where a VLM family keeps its decoder and how its images become tokens."""

    language_model: str
    """Attribute of the base model holding the decoder (``text_model``, ``language_model``)."""
    image_tokens: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    """(base model, pixels [B, C, H, W] normalised) -> image tokens [B, n, hidden]."""
    image_mean: float = 0.5
    image_std: float = 0.5


#: ``model_type`` of config.json -> family; add an entry to support another VLM
VLM_FAMILIES: dict[str, VLMFamily] = {
    "smolvlm": VLMFamily("text_model", _idefics_image_tokens),
    "idefics3": VLMFamily("text_model", _idefics_image_tokens),
    "paligemma": VLMFamily("language_model", _paligemma_image_tokens),
}


def read_vlm_folder(folder: str | Path) -> dict[str, Any]:
    """config.json of a local VLM folder, checked to be a supported family."""
    config = read_hf_folder(folder)
    family_of(config)
    return config


def family_of(model_config: dict[str, Any]) -> VLMFamily:
    """The :class:`VLMFamily` of a VLM's config.json, or an error naming the supported ones."""
    model_type = model_config.get("model_type")
    if model_type not in VLM_FAMILIES:
        raise ValueError(
            f"vlm model_type {model_type!r} is not supported as a VLA backbone; supported: "
            f"{sorted(VLM_FAMILIES)} (e.g. HuggingFaceTB/SmolVLM2-500M-Video-Instruct or "
            "google/paligemma-3b-pt-224 saved to a local folder)"
        )
    return VLM_FAMILIES[model_type]


class HFVLMBackbone(nn.Module):
    """Token embeddings, image tokens and the (truncated) decoder of a Hugging Face VLM.

    ``pretrained``: a local folder whose weights are loaded (``local_files_only``); None builds
    the architecture from ``model_config`` alone (a checkpoint's weights follow). ``layers``
    keeps the decoder's first layers only (None: all).
    """

    def __init__(
        self, model_config: dict[str, Any], pretrained: str | Path | None, layers: int | None
    ) -> None:
        super().__init__()
        try:
            from transformers import AutoConfig, AutoModel
        except ImportError as exc:
            raise ImportError(
                "backbone=huggingface needs transformers: pip install -e '.[vla]'"
            ) from exc
        self.family = family_of(model_config)
        data = {k: v for k, v in model_config.items() if not k.startswith("_")}
        config = AutoConfig.for_model(data.pop("model_type"), **data)
        text_config = config.text_config
        if layers is not None and not 1 <= layers <= text_config.num_hidden_layers:
            raise ValueError(
                f"vlm_layers={layers}: the VLM's decoder has "
                f"{text_config.num_hidden_layers} layers; choose 1..{text_config.num_hidden_layers}"
            )
        if pretrained is not None:
            self.model = AutoModel.from_pretrained(
                str(pretrained), config=config, local_files_only=True
            )
        else:
            self.model = AutoModel.from_config(config)
        decoder = self.decoder
        if layers is not None:  # SmolVLA: the first half of the decoder is enough
            decoder.layers = decoder.layers[:layers]
            decoder.config.num_hidden_layers = layers
        self.hidden = int(text_config.hidden_size)
        self.image_size = int(config.vision_config.image_size)

    @property
    def decoder(self) -> nn.Module:
        """The language model (decoder stack) the prefix runs through."""
        return getattr(self.model, self.family.language_model)

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] -> embeddings [B, L, hidden]."""
        return self.model.get_input_embeddings()(ids)

    def embed_images(self, frames: torch.Tensor) -> torch.Tensor:
        """Camera frames [B, H, W, C] in [0, 1] -> image tokens [B, n, hidden]."""
        x = frames.permute(0, 3, 1, 2)
        if x.shape[-2:] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = (x - self.family.image_mean) / self.family.image_std
        return self.family.image_tokens(self.model, x)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Prefix embeddings [B, P, hidden] + mask [B, P] -> decoder features [B, P, hidden]."""
        return self.decoder(inputs_embeds=embeds, attention_mask=mask.long()).last_hidden_state
