"""``train init=DIR``: start a run from another checkpoint's weights (fine-tuning).

The checkpoint must be of the same policy family. Its architecture settings become the run's
policy config (``policy.<field>=`` on the command line still wins, e.g. ``policy.lora_rank=8``
or ``policy.freeze=[text]``); its weights are copied in except the normalisation statistics,
which come from the new dataset. A model that gained LoRA adapters takes each plain weight into
its adapted layer's base (``q_proj.weight`` -> ``q_proj.base_layer.weight``); the adapters start
as peft initialises them (B = 0, so the first step reproduces the checkpoint).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from robot_learning.policy import CONFIG_FILE, WEIGHTS_FILE, Policy

log = logging.getLogger(__name__)

NORMALIZER_PREFIX = "normalizer."


def init_policy_fields(
    init: str | Path, policy: str, fields: dict[str, Any], given: set[str]
) -> dict[str, Any]:
    """The run's policy fields: the checkpoint's config, then the ``given`` command-line ones."""
    meta = _meta(Path(init))
    if meta.get("policy") != policy:
        raise ValueError(
            f"init={init} is a {meta.get('policy')!r} checkpoint, not {policy!r}: "
            f"train policy={meta.get('policy')} init={init}, or drop init="
        )
    return {**meta["config"], **{k: v for k, v in fields.items() if k in given}}


def load_initial_weights(policy: Policy, init: str | Path) -> int:
    """Copy ``init``'s weights into ``policy`` (see the module docstring); returns how many
    tensors were copied. Any tensor that does not fit is an error naming it."""
    init = Path(init)
    _meta(init)
    state = load_file(str(init / WEIGHTS_FILE))
    own = policy.state_dict()
    copied, unexpected, misfit = {}, [], []
    for key, value in state.items():
        if key.startswith(NORMALIZER_PREFIX):
            continue
        target = key if key in own else _base_layer_key(key, own)
        if target is None:
            unexpected.append(key)
        elif own[target].shape != value.shape:
            misfit.append(f"{key} {list(value.shape)} vs {list(own[target].shape)}")
        else:
            copied[target] = value
    missing = [
        k
        for k in own
        if k not in copied and not k.startswith(NORMALIZER_PREFIX) and "lora_" not in k
    ]
    if unexpected or misfit or missing:
        raise ValueError(
            f"init={init} does not fit this policy's architecture: "
            + "; ".join(
                f"{what} {items[:5]}"
                for what, items in (
                    ("tensors it lacks:", missing),
                    ("tensors it has that this policy lacks:", unexpected),
                    ("different shapes:", misfit),
                )
                if items
            )
            + ". Keep the checkpoint's architecture settings (init= takes them unless "
            "policy.<field>= overrides them)"
        )
    policy.load_state_dict(copied, strict=False)
    log.info("init: %d tensors from %s", len(copied), init)
    return len(copied)


def _base_layer_key(key: str, own: dict) -> str | None:
    head, _, leaf = key.rpartition(".")
    candidate = f"{head}.base_layer.{leaf}"
    return candidate if candidate in own else None


def _meta(init: Path) -> dict[str, Any]:
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (init / name).is_file():
            raise FileNotFoundError(f"init={init} is not a policy checkpoint: {name} is missing")
    return json.loads((init / CONFIG_FILE).read_text())
