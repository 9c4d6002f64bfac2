"""torch: the reference runtime, running the bundle's copy of the source checkpoint eagerly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np

from robot_learning.language import TOKEN_MASK_KEY, TOKENS_KEY
from robot_learning.runtime.base import RUNTIMES, Runtime
from robot_learning.runtime.bundle import NOISE, TORCH_DIR, BundleError


@RUNTIMES.register("torch")
class TorchRuntime(Runtime):
    """``Policy.load(bundle/torch)`` with the bundle's sampler settings; what the graph computes
    (``Policy.graph_reference``: ``predict_chunk``, or a classifier's probability) in eager mode."""

    name: ClassVar[str] = "torch"
    speed_rank: ClassVar[int] = 50

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if importlib.util.find_spec("torch") else "torch is not installed"

    @classmethod
    def missing_from(cls, bundle_dir: Path, spec: dict) -> str | None:
        if f"{TORCH_DIR}/model.safetensors" not in spec["files"]:
            return f"the bundle has no {TORCH_DIR}/ checkpoint (export with include_torch=true)"
        return None

    def __init__(self, bundle_dir: Path, spec: dict, threads: int | None = None) -> None:
        import torch

        from robot_learning.policy import Policy

        self._torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        self.policy = Policy.load(Path(bundle_dir) / TORCH_DIR)
        self.uses_noise = any(d["name"] == NOISE for d in spec["inputs"])
        sampler = spec["sampler"]
        if self.policy.inference_settings() != sampler:
            self.policy.set_inference(sampler=sampler["name"], steps=sampler["steps"])
        graph_policy = spec.get(
            "base_policy", spec["policy"]
        )  # residual bundles: torch/ is the base
        if self.policy.name != graph_policy or list(self.policy.input_keys) != list(
            spec["input_keys"]
        ):
            raise BundleError(
                f"{Path(bundle_dir) / TORCH_DIR} holds policy {self.policy.name!r} with inputs {self.policy.input_keys}, "
                f"but policy.json declares {graph_policy!r} with {spec['input_keys']}. Re-export the bundle."
            )

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        obs = {k: torch.from_numpy(v) for k, v in inputs.items() if k != NOISE}
        with torch.no_grad():
            noise = torch.from_numpy(inputs[NOISE]) if NOISE in inputs else None
            return self.policy.graph_reference(obs, noise=noise).numpy()

    def input_signature(self) -> dict[str, tuple[str, tuple]]:
        policy = self.policy
        sig = {}
        for key in policy.input_keys:
            dtype = "uint8" if policy.features[key].is_image else "float32"
            sig[key] = (dtype, (None, policy.config.n_obs_steps, *policy.features[key].shape))
        if policy.language_tokens is not None:  # the instruction's token ids and mask
            for key in (TOKENS_KEY, TOKEN_MASK_KEY):
                sig[key] = ("int64", (None, policy.language_tokens))
        if self.uses_noise:
            sig[NOISE] = ("float32", (None, *policy.noise_shape))
        return sig
