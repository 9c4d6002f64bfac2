"""Vision-language-action policy with a flow-matching action expert (pi0, SmolVLA), as ``vla``.

Reads top to bottom: tokenizer and encoders, prefix (camera tokens + instruction tokens + one
token per state key, each segment with a learned type embedding) -> transformer backbone ->
prefix features; the action expert (a transformer over the noisy chunk, cross-attending to the
prefix in every block) predicts the flow velocity; training regresses it on the straight path
of :mod:`policies.common.flow_matching` (pi0's Beta time sampling); sampling encodes the prefix
once and takes ``num_inference_steps`` Euler steps from noise.

Language: the instruction arrives as strings (``batch["task"]``, LeRobot's key) or as token ids
(``observation.language.tokens`` + ``attention_mask``: what training windows carry, see
:meth:`VLAPolicy.prepare_training`, and what exported graphs take).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from policies.common.base import masked_mse
from policies.common.flow_matching import TIME_EMBED_SCALE, interpolate, sample_times
from policies.vla.blocks import Stack, sinusoidal
from policies.vla.configuration import VLAConfig
from policies.vla.encoders import HFTextEncoder, ImageTokens, ScratchTextEncoder, read_hf_folder
from policies.vla.lora import add_lora, merged_state_dict
from policies.vla.vlm import HFVLMBackbone, read_vlm_folder
from robot_learning.features import ACTION, FeatureMismatchError, FeatureSpec
from robot_learning.instruction_tokens import ByteTokenizer, HFTokenizer
from robot_learning.language import TASK_KEY, TOKEN_MASK_KEY, TOKENS_KEY, InstructionError
from robot_learning.policy import Policy, register_policy
from robot_learning.training.windows import WindowDataset

log = logging.getLogger(__name__)


def _module_key(feature_key: str) -> str:
    return feature_key.replace(".", "__")


@register_policy("vla")
class VLAPolicy(Policy):
    """Cameras + instruction + state -> backbone -> flow-matching action expert (chunks)."""

    config_class = VLAConfig
    uses_language = True

    def __init__(self, config: VLAConfig, features: FeatureSpec, stats: dict | None) -> None:
        super().__init__(config, features, stats)
        self.config: VLAConfig = config
        if len(self.features.action.shape) != 1:
            raise FeatureMismatchError(
                f"{ACTION!r} must be a vector, got shape {self.features.action.shape}"
            )
        d = config.d_model
        self.vlm = self._build_vlm(config)
        width = d if self.vlm is None else self.vlm.hidden  # of the prefix tokens
        self.tokenizer, self.text = self._build_text(config)
        if self.vlm is None:
            self.text_proj = nn.Linear(self.text.out_dim, d)
            self.cameras = nn.ModuleDict(
                {
                    _module_key(k): ImageTokens(
                        self.features[k].shape,
                        config.vision_backbone,
                        d,
                        config.image_grid,
                        config.crop_ratio,
                    )  # fmt: skip
                    for k in self.image_keys
                }
            )
        self.states = nn.ModuleDict(
            {
                _module_key(k): nn.Linear(
                    config.n_obs_steps * int(np.prod(self.features[k].shape)), width
                )
                for k in self.state_keys
            }
        )
        self.segment = nn.Parameter(torch.randn(3, width) * 0.02)  # image, text, state
        if self.vlm is None:
            self.backbone = Stack(d, config.n_heads, config.backbone_layers)
        else:  # the VLM's decoder, then down to the expert's width
            self.prefix_out = nn.Linear(width, d)
        self.action_in = nn.Linear(self.action_dim, d)
        self.action_pos = nn.Parameter(torch.randn(config.horizon, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.expert = Stack(d, config.n_heads, config.expert_layers, cross=True)
        self.action_out = nn.Linear(d, self.action_dim)
        self.set_gradient_checkpointing(config.gradient_checkpointing)
        self._apply_freeze(config.freeze)
        if config.lora_rank:
            add_lora(
                self, config.lora_targets, config.lora_rank, config.lora_alpha, config.lora_dropout
            )
        log.info(
            "vla policy: %.2fM parameters (%.2fM trainable), text=%s, inputs %s",
            sum(p.numel() for p in self.parameters()) / 1e6,
            sum(p.numel() for p in self.parameters() if p.requires_grad) / 1e6,
            config.text_encoder if self.vlm is None else config.vlm_model_config["model_type"],
            self.input_keys,
        )

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _build_vlm(config: VLAConfig) -> HFVLMBackbone | None:
        """backbone=huggingface: the VLM (its folder read once into the config), else None."""
        if config.backbone == "scratch":
            return None
        pretrained = None
        if config.vlm_model_config is None:  # first build: read the folder
            pretrained = config.vlm_model_path
            config.vlm_model_config = read_vlm_folder(pretrained)
            config.tokenizer_json = HFTokenizer.from_folder(pretrained, config.max_tokens).json
        return HFVLMBackbone(config.vlm_model_config, pretrained, config.vlm_layers)

    @staticmethod
    def _build_text(config: VLAConfig) -> tuple[ByteTokenizer | HFTokenizer, nn.Module | None]:
        """Tokenizer + text encoder (None with a VLM backbone: it embeds its own tokens); a
        Hugging Face folder is read once into the config."""
        if config.backbone == "huggingface":
            return HFTokenizer(config.tokenizer_json, config.max_tokens), None
        if config.text_encoder == "scratch":
            tok = ByteTokenizer(config.max_tokens)
            enc = ScratchTextEncoder(
                tok.vocab_size,
                config.max_tokens,
                config.d_model,
                config.n_heads,
                config.text_layers,
            )
            return tok, enc
        pretrained = None
        if config.text_model_config is None:  # first build: read the folder
            pretrained = config.text_model_path
            config.text_model_config = read_hf_folder(pretrained)
            config.tokenizer_json = HFTokenizer.from_folder(pretrained, config.max_tokens).json
        if config.tokenizer_json is None:
            raise InstructionError(
                "this VLA has a Hugging Face text model but no tokenizer (tokenizer_json is "
                "empty): rebuild it from the model folder with text_model_path=<folder>"
            )
        tok = HFTokenizer(config.tokenizer_json, config.max_tokens)
        return tok, HFTextEncoder(config.text_model_config, pretrained)

    def _parts(self) -> dict[str, list[nn.Module]]:
        if self.vlm is not None:
            model = self.vlm.model
            return {
                "text": [model.get_input_embeddings()],
                "vision": [
                    m for n, m in model.named_children() if n != self.vlm.family.language_model
                ],
                "backbone": [self.vlm.decoder, self.states, self.prefix_out],
                "expert": [self.expert, self.action_in, self.action_out, self.time_mlp],
            }
        return {
            "text": [self.text],
            "vision": [self.cameras],
            "backbone": [self.backbone, self.text_proj, self.states],
            "expert": [self.expert, self.action_in, self.action_out, self.time_mlp],
        }

    def _apply_freeze(self, parts: Sequence[str]) -> None:
        for name in parts:
            for module in self._parts()[name]:
                module.requires_grad_(False)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute transformer activations in the backward pass (text, backbone, expert)."""
        for stack in (
            getattr(self, "backbone", None),
            self.expert,
            getattr(self.text, "stack", None),
        ):
            if stack is not None:
                stack.gradient_checkpointing = enabled
        for hf in (self.text, self.vlm):
            if isinstance(hf, (HFTextEncoder, HFVLMBackbone)) and enabled:
                model = hf.model  # transformers 5 renamed the method; 4.x has the old name only
                enable = getattr(model, "activation_checkpointing_enable", None)
                (enable or model.gradient_checkpointing_enable)()

    # ------------------------------------------------------------------ inputs
    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Instructions -> (ids, mask) [B, max_tokens] int64 on the policy's device."""
        ids, mask = self.tokenizer.encode(list(texts))
        device = self.device
        return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)

    def language_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask of the batch: given as tensors, or tokenized from ``task``."""
        if TOKENS_KEY in batch:
            ids = batch[TOKENS_KEY].long()
            mask = batch.get(TOKEN_MASK_KEY)
            return ids, (ids != 0).long() if mask is None else mask.long()
        if TASK_KEY in batch:
            texts = batch[TASK_KEY]
            texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
            return self.tokenize(texts)
        raise InstructionError(
            f"the vla policy needs an instruction: batch[{TASK_KEY!r}] (strings) or "
            f"{TOKENS_KEY!r}; evaluation passes the task's, eval instruction='...' sets one"
        )

    def encode_prefix(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Observations + instruction -> (prefix features [B, P, d], mask [B, P] bool)."""
        missing = [k for k in self.input_keys if k not in batch]
        if missing:
            raise FeatureMismatchError(
                f"Batch is missing {missing}; policy inputs are {self.input_keys}"
            )
        for key in self.input_keys:
            expected = (self.config.n_obs_steps, *self.features[key].shape)
            if tuple(batch[key].shape[1:]) != expected:
                raise FeatureMismatchError(
                    f"{key!r}: expected [B, {', '.join(map(str, expected))}], got {list(batch[key].shape)}"
                )
        tokens = []
        for key in self.image_keys:
            frames = batch[key][:, -1]  # the newest frame of the window
            tokens.append(self._image_tokens(key, frames) + self.segment[0])
        ids, mask = self.language_inputs(batch)
        if ids.shape[0] != batch[self.input_keys[0]].shape[0]:
            raise InstructionError(
                f"{ids.shape[0]} instructions for a batch of {batch[self.input_keys[0]].shape[0]}"
            )
        tokens.append(self._text_tokens(ids, mask) + self.segment[1])
        for key in self.state_keys:
            x = self.normalizer.normalize(key, batch[key].float()).flatten(1)
            tokens.append(self.states[_module_key(key)](x)[:, None] + self.segment[2])
        b = ids.shape[0]
        masks = [torch.ones(b, t.shape[1], dtype=torch.bool, device=ids.device) for t in tokens]
        n_img = len(self.image_keys)
        masks[n_img] = mask.bool()
        prefix, prefix_mask = torch.cat(tokens, dim=1), torch.cat(masks, dim=1)
        if self.vlm is not None:
            return self.prefix_out(self.vlm(prefix, prefix_mask)), prefix_mask
        return self.backbone(prefix, prefix_mask), prefix_mask

    def _image_tokens(self, key: str, frames: torch.Tensor) -> torch.Tensor:
        """One camera's newest frames [B, H, W, C] -> tokens [B, n, width]."""
        x = self.normalizer.normalize(key, frames)  # [0, 1]
        if self.vlm is not None:
            return self.vlm.embed_images(x)
        return self.cameras[_module_key(key)](x)

    def _text_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] -> tokens [B, L, width]."""
        if self.vlm is not None:
            return self.vlm.embed_text(ids)
        if self.training and "text" in self.config.freeze:
            return self.text_proj(self._frozen_text(ids, mask))
        return self.text_proj(self.text(ids, mask))

    def _frozen_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """A frozen text encoder in training: each distinct instruction of the batch encoded once
        (in eval mode: fixed features, no dropout), without the padding columns no instruction
        uses (padding is masked out, so the features are the same; shapes then depend on the
        batch, so this never runs in an exported graph)."""
        length = max(int(mask.sum(1).max()), 1)
        rows = torch.cat([ids[:, :length], mask[:, :length].to(ids.dtype)], dim=1)
        unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
        self.text.eval()  # fixed features: no dropout either
        with torch.no_grad():
            features = self.text(unique[:, :length], unique[:, length:])
        self.text.train()
        out = features.new_zeros(ids.shape[0], ids.shape[1], features.shape[-1])
        out[:, :length] = features[inverse]
        return out

    # ------------------------------------------------------------------ action expert
    def velocity(
        self, x: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor, prefix_mask: torch.Tensor
    ) -> torch.Tensor:
        """Noisy chunk [B, H, A] at times t [B] -> velocity [B, H, A]."""
        time = self.time_mlp(sinusoidal(t, self.config.d_model, TIME_EMBED_SCALE))
        h = self.action_in(x) + self.action_pos + time[:, None]
        h = self.expert(h, None, prefix, prefix_mask)
        return self.action_out(h)

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Velocity regression ||v(z_t, t | prefix) - (eps - a)||^2 over valid chunk steps."""
        cfg = self.config
        prefix, prefix_mask = self.encode_prefix(batch)
        actions = self.normalizer.normalize(ACTION, batch[ACTION].float())
        if tuple(actions.shape[1:]) != (cfg.horizon, self.action_dim):
            raise FeatureMismatchError(
                f"{ACTION!r}: expected [B, {cfg.horizon}, {self.action_dim}], got {list(actions.shape)}"
            )
        pad = batch.get("action_is_pad")
        valid = torch.ones(actions.shape[:2], dtype=torch.bool) if pad is None else ~pad.bool()
        t = sample_times(
            actions.shape[0], actions.device, cfg.time_sampling,
            beta_alpha=cfg.time_beta_alpha, t_min=cfg.t_min,
        )  # fmt: skip
        z_t, target = interpolate(actions, torch.randn_like(actions), t)
        loss = masked_mse(self.velocity(z_t, t, prefix, prefix_mask), target, valid.to(z_t.device))
        return loss, {"loss": loss.item()}

    def sample(
        self, prefix: torch.Tensor, prefix_mask: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """k Euler steps from noise (t=1) to the normalised chunk (t=0), prefix reused."""
        steps = self.config.num_inference_steps
        x = noise
        for i in range(steps):
            t = torch.full((x.shape[0],), 1.0 - i / steps, device=x.device)
            x = x - self.velocity(x, t, prefix, prefix_mask) / steps
        return x

    def predict_chunk(self, batch: dict, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Observations + instruction -> raw action chunk [B, horizon, A], set by ``noise``."""
        prefix, prefix_mask = self.encode_prefix(batch)
        shape = (prefix.shape[0], self.config.horizon, self.action_dim)
        if noise is None:
            noise = torch.randn(shape, device=prefix.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {list(shape)}, got {list(noise.shape)}")
        x = self.sample(prefix, prefix_mask, noise.to(prefix.device, torch.float32))
        return self.normalizer.unnormalize(ACTION, x)

    # ------------------------------------------------------------------ export
    @property
    def language_tokens(self) -> int:
        return int(self.config.max_tokens)

    def bundle_metadata(self, checkpoint_meta: dict) -> dict:
        """``policy.json`` ``language``: the tokenizer a runtime turns instructions into ids with."""
        return {"language": {"tokenizer": self.tokenizer.to_dict()}}

    # ------------------------------------------------------------------ sampler settings
    def inference_settings(self) -> dict:
        return {"name": "euler", "steps": int(self.config.num_inference_steps)}

    def set_inference(self, sampler: str | None = None, steps: int | None = None) -> None:
        if sampler is not None and sampler != "euler":
            raise ValueError(
                f"the vla policy samples with 'euler'; sampler={sampler!r} is not supported"
            )
        if steps is not None:
            if steps < 1:
                raise ValueError(f"steps={steps} must be >= 1")
            self.config.num_inference_steps = int(steps)

    # ------------------------------------------------------------------ LoRA
    def merge_lora(self) -> VLAPolicy:
        """The same policy with its LoRA adapters merged into plain weights (``lora_rank=0``)."""
        if not self.config.lora_rank:
            return self
        config = dataclasses.replace(self.config, lora_rank=0)
        merged = VLAPolicy(config, self.features, None)
        merged.load_state_dict(merged_state_dict(self))
        return merged.to(self.device).train(self.training)

    # ------------------------------------------------------------------ training hooks
    def finish_training(self, windows: WindowDataset, out: Path) -> dict:
        """With LoRA: also save the adapters merged back into the weights as ``out/merged``."""
        if not self.config.lora_rank:
            return {}
        from robot_learning.training.checkpoint import write_atomic_dir

        merged = self.merge_lora()
        write_atomic_dir(Path(out) / "merged", lambda d: merged.save(d))
        return {"summary": f"LoRA adapters merged into plain weights: {Path(out) / 'merged'}"}

    def prepare_training(self, windows: WindowDataset) -> WindowDataset:
        """Attach each frame's instruction (the dataset's ``task`` string) as token ids."""
        tasks = windows.frame_tasks()
        unique, inverse = np.unique(tasks, return_inverse=True)
        ids, mask = self.tokenizer.encode(list(unique))
        log.info("vla: %d distinct instructions in the training data", len(unique))
        return windows.with_targets({TOKENS_KEY: ids[inverse], TOKEN_MASK_KEY: mask[inverse]})
