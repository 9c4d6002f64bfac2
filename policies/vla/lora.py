"""LoRA adapters on the VLA's transformer projections through ``peft``, and merging them back.

:func:`add_lora` injects ``peft`` LoRA layers (``inject_adapter_in_model``: no ``PeftModel``
wrapper, so the policy keeps its own save/load/export) into the attention and MLP projections
of the chosen parts and leaves only the adapters trainable. :func:`merged_state_dict` folds
``W + alpha / r * B @ A`` back into plain weights, the state dict of the same policy without
LoRA (what export and ``merge`` checkpoints use).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

import torch
from torch import nn

#: projections of our blocks (policies/vla/blocks.py) and of BERT-style Hugging Face encoders
_OWN = r"blocks\.\d+\.(self_attn|cross_attn)\.(q_proj|k_proj|v_proj|o_proj)|blocks\.\d+\.mlp\.(up|down)"
_HF = r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"
#: decoder layers of a Hugging Face VLM backbone (Llama / Gemma style projections)
_VLM = r"vlm\.model\.(text_model|language_model)\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
PATTERNS = {
    "backbone": rf"backbone\.({_OWN})|{_VLM}",
    "expert": rf"expert\.({_OWN})",
    "text": rf"text\.(stack\.({_OWN})|model\.({_HF}))",
}


def add_lora(
    policy: nn.Module, targets: Sequence[str], rank: int, alpha: float, dropout: float
) -> int:
    """Inject adapters into ``targets``' projections; freeze everything else. Returns the number
    of adapted layers (0 is an error: the pattern matched nothing)."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as exc:
        raise ImportError("policy.lora_rank > 0 needs peft: pip install -e '.[vla]'") from exc
    pattern = "(" + "|".join(PATTERNS[t] for t in targets) + ")"
    names = [
        n
        for n, m in policy.named_modules()
        if isinstance(m, nn.Linear) and re.fullmatch(pattern, n)
    ]
    if not names:
        raise ValueError(f"lora_targets={list(targets)} match no linear layer of this policy")
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none"
    )
    inject_adapter_in_model(config, policy)
    for name, param in policy.named_parameters():
        param.requires_grad = "lora_" in name
    return len(names)


def merged_state_dict(policy: nn.Module) -> dict[str, torch.Tensor]:
    """``policy``'s weights with every adapter merged into its base layer, keyed as the same
    policy without LoRA (``...q_proj.base_layer.weight`` -> ``...q_proj.weight``)."""
    from peft.tuners.lora import LoraLayer

    work = copy.deepcopy(policy)
    for module in work.modules():
        if isinstance(module, LoraLayer):
            module.merge()
    out = {}
    for key, value in work.state_dict().items():
        if "lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value
    return out
