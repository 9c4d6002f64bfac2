"""``robot-learning export``: a training checkpoint -> a self-contained, verified bundle folder.

The bundle is assembled in a staging folder next to ``out`` and renamed into place only when
complete, so an interrupted export never leaves a half-written bundle behind (and never
destroys a previous one unless ``overwrite=True``). Layout and checks: :mod:`robot_learning.runtime.bundle`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_learning.runtime.bundle import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    GRAPH_FILE,
    NOISE,
    REWARD_SECTION,
    TORCH_DIR,
    declared_inputs,
    declared_outputs,
    read_bundle,
    reward_outputs,
    sha256_file,
    write_policy_json,
)

log = logging.getLogger(__name__)

FORMATS = ("onnx", "tensorrt")


class ExportError(RuntimeError):
    """The policy could not be turned into a valid graph; the message says why."""


@dataclass
class ExportConfig:
    """Settings of one export (``configs/export.yaml``)."""

    checkpoint: str
    """Policy checkpoint folder (``config.json`` + ``model.safetensors``)."""
    out: str
    """Bundle folder to create."""
    format: str = "onnx"
    """``onnx``, or ``tensorrt`` (ONNX + a TensorRT engine built now; needs a GPU)."""
    fp16: bool = False
    """Build TensorRT engines (this export's or later ones) in FP16; the ONNX graph stays FP32."""
    sampler: str | None = None
    """Override the checkpoint's sampler (diffusion exports ``ddim`` only)."""
    steps: int | None = None
    """Override the sampler's step count (fixed in the graph)."""
    simplify: bool = True
    """Simplify the graph with onnxslim when it still matches the torch policy."""
    include_torch: bool = True
    """Copy the checkpoint into ``torch/`` so the torch reference runtime can serve the bundle."""
    max_batch: int = 64
    """Largest batch the TensorRT engines are built for (ONNX graphs take any batch)."""
    control_rate_hz: float | None = None
    """Control rate; None = the training dataset's fps recorded in the checkpoint."""
    overwrite: bool = False
    """Replace an existing bundle at ``out``."""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format={self.format!r} is not one of {FORMATS}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch={self.max_batch} must be >= 1")
        if self.control_rate_hz is not None and self.control_rate_hz <= 0:
            raise ValueError(f"control_rate_hz={self.control_rate_hz} must be > 0")


def export_checkpoint(cfg: ExportConfig, report=None) -> Path:
    """Write the bundle described by ``cfg``; returns its folder. ``report(message)`` hears progress."""
    from robot_learning.export.onnx_graph import export_onnx
    from robot_learning.policy import CONFIG_FILE, Policy

    report = report or (lambda message: None)
    source, out = Path(cfg.checkpoint), Path(cfg.out)
    check_out(out, cfg.overwrite)
    if cfg.format == "tensorrt":
        _require_tensorrt()
    meta = (
        json.loads((source / CONFIG_FILE).read_text()) if (source / CONFIG_FILE).is_file() else None
    )
    policy = Policy.load(source)  # raises a clear error for a non-checkpoint folder
    if cfg.sampler is not None or cfg.steps is not None:
        policy.set_inference(sampler=cfg.sampler, steps=cfg.steps)
    rate = cfg.control_rate_hz or _control_rate(meta)
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        settings = policy.inference_settings()
        report(f"tracing {policy.name} ({settings['name']}, {settings['steps']} steps) to ONNX")
        started = time.perf_counter()
        graph = export_onnx(policy, staging / GRAPH_FILE, simplify=cfg.simplify)
        graph["seconds"] = round(time.perf_counter() - started, 1)
        report(
            f"graph checked: {graph['nodes']} nodes, max |onnx - torch| = {graph['parity_max_abs_error']:.1e}"
        )
        if cfg.include_torch:
            (staging / TORCH_DIR).mkdir()
            policy.save(
                staging / TORCH_DIR,
                extra={k: v for k, v in meta.items() if k in ("train_config", "step")},
            )
        write_policy_json(staging, _policy_json(policy, meta, source, rate, cfg, graph, staging))
        if cfg.format == "tensorrt":
            from robot_learning.export.tensorrt_engine import ensure_engine

            report("building the TensorRT engine")
            ensure_engine(staging, read_bundle(staging))
        read_bundle(staging)  # the bundle we hand out must pass the checks its users run
        swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _policy_json(
    policy, meta: dict, source: Path, rate: float, cfg: ExportConfig, graph: dict, root: Path
) -> dict[str, Any]:
    import onnx
    import torch

    settings = policy.inference_settings()
    horizon, n_obs = policy.config.horizon, policy.config.n_obs_steps
    extra = policy.bundle_metadata(meta)
    outputs = (
        reward_outputs() if REWARD_SECTION in extra else declared_outputs(policy.features, horizon)
    )
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        files[path.relative_to(root).as_posix()] = {
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "policy": policy.name,
        "features": policy.features.to_dict(),
        "input_keys": list(policy.input_keys),
        "inputs": declared_inputs(
            policy.features,
            list(policy.input_keys),
            n_obs,
            horizon,
            noise=NOISE in graph["graph_inputs"],
            language_tokens=policy.language_tokens,
        ),
        "outputs": outputs,
        "n_obs_steps": n_obs,
        "horizon": horizon,
        "n_action_steps": policy.config.n_action_steps,
        "control_rate_hz": rate,
        "sampler": settings,
        "normalization": {
            "in_graph": True,
            "modes": policy.normalizer.modes,
            "stats": policy.normalizer.stats_dict(),
        },
        "precision": {"graph": "fp32", "fp16": bool(cfg.fp16)},
        "max_batch": cfg.max_batch,
        "policy_config": dataclasses.asdict(policy.config),
        "task": (meta.get("train_config") or {}).get("task"),
        "files": files,
        "source": {
            "checkpoint": str(source.resolve()),
            "sha256": checkpoint_hash(source),
            "step": meta.get("step"),
        },
        "export": {
            **graph,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
        },
        **extra,
    }


def checkpoint_hash(source: Path) -> str:
    """SHA-256 over the checkpoint's config.json and weights hashes (identifies the source exactly)."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        digest.update(f"{name}:{sha256_file(source / name)}\n".encode())
    return digest.hexdigest()


def _control_rate(meta: dict) -> float:
    train = meta.get("train_config") or {}
    if train.get("fps"):
        return float(train["fps"])
    info = Path(train.get("dataset") or "") / "meta" / "info.json"
    if train.get("dataset") and info.is_file():
        return float(json.loads(info.read_text())["fps"])
    raise ValueError(
        "The checkpoint does not record its control rate (no fps in its training config and its dataset "
        "is not at hand); pass control_rate_hz=<Hz>"
    )


def _require_tensorrt() -> None:
    from robot_learning.runtime.base import RUNTIMES, RuntimeUnavailable

    why = RUNTIMES.get("tensorrt").unavailable_reason()
    if why is not None:
        raise RuntimeUnavailable(
            f"format=tensorrt needs TensorRT and a CUDA GPU: {why}. Export format=onnx instead "
            "(the TensorRT engine is then built on the robot at first load)."
        )


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse to write over anything but an existing bundle, and over one only with ``overwrite``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (out / BUNDLE_FILE).is_file():
            raise FileExistsError(
                f"{out} exists and is not a bundle; choose another out= (nothing was written)"
            )
        if not overwrite:
            raise FileExistsError(
                f"{out} already holds a bundle; pass overwrite=true to replace it"
            )


def swap_into_place(staging: Path, out: Path) -> None:
    """Rename the finished staging folder to ``out`` (an old bundle is removed only afterwards)."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)
