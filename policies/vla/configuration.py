"""Config of the vision-language-action policy (pi0 / SmolVLA shape, sized for a CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.common.encoders import VISION_BACKBONES
from policies.common.flow_matching import TIME_SAMPLINGS
from robot_learning.policy import PolicyConfig

TEXT_ENCODERS = ("scratch", "huggingface")
BACKBONES = ("scratch", "huggingface")
#: parts that ``freeze`` may name (their parameters get no gradient)
FREEZABLE = ("text", "vision", "backbone", "expert")
#: parts that may carry LoRA adapters (their attention and MLP projections)
LORA_TARGETS = ("text", "backbone", "expert")


@dataclass
class VLAConfig(PolicyConfig):
    """Image + instruction + state prefix -> transformer backbone -> flow-matching action expert.

    The expert is a transformer over the action chunk that cross-attends to the backbone's
    prefix features in every block (SmolVLA's interleaving; pi0 shares one attention instead).
    The prefix is encoded once per chunk and reused by every Euler step.
    """

    n_obs_steps: int = 1
    """Observation frames the policy sees (pi0, SmolVLA: the current one)."""
    horizon: int = 16
    """Length of each predicted action chunk."""
    n_action_steps: int = 8
    """Executed steps per chunk before re-planning."""
    d_model: int = 128
    """Width of the backbone and the action expert."""
    n_heads: int = 4
    """Attention heads of every transformer block (d_model must be a multiple)."""
    backbone_layers: int = 4
    """Transformer blocks over the prefix (image, instruction and state tokens)."""
    expert_layers: int = 4
    """Action-expert blocks (self-attention over the chunk + cross-attention to the prefix)."""
    backbone: str = "scratch"
    """``scratch``: our transformer over our camera and instruction tokens (trained with the
    policy); ``huggingface``: a vision-language model from a local folder (``vlm_model_path``:
    SmolVLM, Idefics3 or PaliGemma) embeds the images and the instruction with its own vision
    tower and tokenizer and runs its decoder over the prefix (SmolVLA's layout)."""
    vlm_model_path: str | None = None
    """backbone=huggingface: a local Hugging Face VLM folder (config.json, tokenizer.json,
    weights). Read once when the policy is first built; checkpoints keep what they need."""
    vlm_model_config: dict[str, Any] | None = None
    """Filled from ``vlm_model_path``'s config.json at the first build."""
    vlm_layers: int | None = None
    """backbone=huggingface: keep the VLM decoder's first layers only (SmolVLA keeps half);
    None: all of them."""
    text_encoder: str = "scratch"
    """``scratch``: byte tokens + a small transformer trained with the policy; ``huggingface``:
    a pretrained text model from a local folder (``text_model_path``), e.g. MiniLM-L6."""
    text_model_path: str | None = None
    """text_encoder=huggingface: a local Hugging Face model folder (config.json, tokenizer.json,
    weights). Read once when the policy is first built; checkpoints keep what they need."""
    text_model_config: dict[str, Any] | None = None
    """Filled from ``text_model_path``'s config.json at the first build (checkpoints rebuild the
    text model from it without the folder)."""
    tokenizer_json: str | None = None
    """Filled from ``text_model_path``'s (or ``vlm_model_path``'s) tokenizer.json at the first
    build."""
    text_layers: int = 2
    """text_encoder=scratch: transformer blocks over the instruction's bytes."""
    max_tokens: int = 48
    """Longest instruction in tokens (bytes + 1 for the scratch encoder); longer is an error."""
    vision_backbone: str = "small"
    """Per-camera conv trunk: ``small`` (3 convs) or ``resnet18`` (GroupNorm, from scratch)."""
    image_grid: int = 4
    """Each camera frame becomes about image_grid x image_grid tokens (average-pooled features)."""
    crop_ratio: float = 0.9
    """Random (train) / centre (eval) crop side as a fraction of the image side."""
    num_inference_steps: int = 10
    """Euler steps of the action expert per chunk (pi0: 10)."""
    time_sampling: str = "beta"
    """Training-time distribution of the flow time (pi0: Beta(1.5, 1) favouring the noisy end)."""
    time_beta_alpha: float = 1.5
    """time_sampling=beta: t ~ Beta(time_beta_alpha, 1) (pi0: 1.5)."""
    t_min: float = 0.001
    """Training times are mapped to [t_min, 1] (pi0: 0.001)."""
    freeze: tuple[str, ...] = ()
    """Parts trained no further: any of text, vision, backbone, expert."""
    gradient_checkpointing: bool = False
    """Recompute the transformer blocks' activations in the backward pass (less memory)."""
    lora_rank: int = 0
    """LoRA adapters (``peft``) of this rank on the attention and MLP projections of
    ``lora_targets``; 0: off. With LoRA on, only the adapters train (fine-tune from ``init=``)."""
    lora_alpha: float = 16.0
    """LoRA scale numerator (the update is ``alpha / rank * B @ A``)."""
    lora_dropout: float = 0.0
    """Dropout on the adapters' input during training."""
    lora_targets: tuple[str, ...] = ("backbone", "expert")
    """Parts whose projections get adapters: any of text, backbone, expert."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.freeze = tuple(str(p) for p in self.freeze)
        unknown = [p for p in self.freeze if p not in FREEZABLE]
        if unknown:
            raise ValueError(f"freeze={list(self.freeze)}: {unknown} not among {FREEZABLE}")
        self.lora_targets = tuple(str(p) for p in self.lora_targets)
        bad = [p for p in self.lora_targets if p not in LORA_TARGETS]
        if bad or (self.lora_rank and not self.lora_targets):
            raise ValueError(
                f"lora_targets={list(self.lora_targets)} must be a non-empty subset of {LORA_TARGETS}"
            )
        if self.lora_rank < 0 or self.lora_alpha <= 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(
                f"need lora_rank >= 0, lora_alpha > 0 and 0 <= lora_dropout < 1; got "
                f"{self.lora_rank}, {self.lora_alpha}, {self.lora_dropout}"
            )
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r} is not one of {BACKBONES}")
        if self.backbone == "huggingface":
            if self.vlm_model_path is None and self.vlm_model_config is None:
                raise ValueError(
                    "backbone=huggingface needs vlm_model_path=<local Hugging Face VLM folder> "
                    "(e.g. the folder of HuggingFaceTB/SmolVLM2-500M-Video-Instruct)"
                )
            if self.text_encoder != "scratch":
                raise ValueError(
                    "backbone=huggingface embeds the instruction with the VLM's own tokenizer "
                    "and embeddings: remove text_encoder=huggingface"
                )
            if "text" in self.lora_targets and self.lora_rank:
                raise ValueError(
                    "backbone=huggingface has no separate text encoder: lora_targets may be "
                    "backbone and expert"
                )
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder={self.text_encoder!r} is not one of {TEXT_ENCODERS}")
        if (
            self.text_encoder == "huggingface"
            and self.text_model_path is None
            and self.text_model_config is None
        ):
            raise ValueError(
                "text_encoder=huggingface needs text_model_path=<local Hugging Face model folder> "
                "(e.g. the folder of sentence-transformers/all-MiniLM-L6-v2)"
            )
        if self.d_model % self.n_heads or self.d_model % 2:
            raise ValueError(
                f"d_model={self.d_model} must be even and a multiple of n_heads={self.n_heads}"
            )
        for name in ("backbone_layers", "expert_layers", "text_layers", "max_tokens", "image_grid"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.vlm_layers is not None and self.vlm_layers < 1:
            raise ValueError(f"vlm_layers={self.vlm_layers} must be >= 1 (or null: all layers)")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={self.num_inference_steps} must be >= 1")
        if self.vision_backbone not in VISION_BACKBONES:
            raise ValueError(
                f"vision_backbone={self.vision_backbone!r} is not one of {VISION_BACKBONES}"
            )
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling={self.time_sampling!r} is not one of {TIME_SAMPLINGS}")
        if not 0.0 < self.crop_ratio <= 1.0:
            raise ValueError(f"crop_ratio={self.crop_ratio} must be in (0, 1]")
