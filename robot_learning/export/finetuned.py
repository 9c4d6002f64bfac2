"""``robot-learning export checkpoint=<finetune run>``: RL policies -> the same verified bundle format.

* ``sac``, ``td3``, ``dsac_t``, ``rlpd``: the deterministic actor becomes ``model.onnx`` with
  ``n_obs_steps = horizon = n_action_steps = 1`` and no noise input, so :class:`BundlePolicy`,
  ``eval bundle=`` and the ROS 2 policy node serve it as any other bundle.
* ``residual``: the base policy's bundle (exported from its checkpoint, or copied when the base
  was a bundle) plus ``residual.onnx`` (``[obs, base action] -> executed action``) and a
  ``residual`` section in ``policy.json``. Every consumer pops the base's chunk action and calls
  ``refine``, which runs the residual graph, so one ``select_action`` gives base + residual.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robot_learning.export.exporter import (
    ExportConfig,
    ExportError,
    check_out,
    export_checkpoint,
    swap_into_place,
)
from robot_learning.features import ACTION, FeatureSpec
from robot_learning.rl.encoders import STATE
from robot_learning.runtime.bundle import (
    BASE_ACTION,
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    GRAPH_FILE,
    RESIDUAL_GRAPH,
    declared_inputs,
    declared_outputs,
    read_bundle,
    residual_inputs,
    sha256_file,
    write_policy_json,
)

#: file a finetune run folder always holds (written before the first step)
RUN_CONFIG = "finetune_config.json"


def finetune_checkpoint(path: str | Path) -> tuple[Path, Path | None] | None:
    """``(run folder, checkpoint)`` for a ``robot-learning finetune`` run folder (checkpoint None:
    its last) or one of its checkpoints (``<run>/checkpoints/step_XXXXXX``); None for anything else."""
    path = Path(path)
    if (path / RUN_CONFIG).is_file():
        return path, None
    if path.parent.name == "checkpoints" and (path.parent.parent / RUN_CONFIG).is_file():
        return path.parent.parent, path
    return None


def is_finetune_run(path: str | Path) -> bool:
    """True for a ``robot-learning finetune`` run folder or one of its checkpoints."""
    return finetune_checkpoint(path) is not None


class ActorGraph(nn.Module):
    """Per-key observations ``[B, 1, *shape]`` (in ``keys`` order) -> ``module`` -> ``[B, 1, A]``.

    State keys are flattened and concatenated; with ``image_keys`` (a pixel actor) the module
    gets the :class:`~robot_learning.rl.encoders.PixelEncoder` dict, frames as uint8 ``[B, H, W, C]``.
    """

    def __init__(self, module: nn.Module, keys: list[str], image_keys: list[str] = ()) -> None:
        super().__init__()
        self.module, self.keys, self.image_keys = module, list(keys), list(image_keys)

    def forward(self, *obs: torch.Tensor) -> torch.Tensor:
        by_key = dict(zip(self.keys, obs, strict=True))
        state = [o.reshape(o.shape[0], -1) for k, o in by_key.items() if k not in self.image_keys]
        if not self.image_keys:
            return self.module(torch.cat(state, dim=1))[:, None]
        x = {k: by_key[k][:, 0] for k in self.image_keys}
        x[STATE] = (
            torch.cat(state, dim=1)
            if state
            else obs[0].new_zeros((obs[0].shape[0], 0), dtype=torch.float32)
        )
        return self.module(x)[:, None]


def export_finetuned(cfg: ExportConfig, report=None) -> Path:
    """Write the bundle of ``cfg.checkpoint`` (a finetune run: its last checkpoint; or one of its
    ``checkpoints/step_XXXXXX``) to ``cfg.out``."""
    from robot_learning.rl.config import FinetuneConfig
    from robot_learning.rl.learner_state import load_learner
    from robot_learning.rl.loop import (
        build_algo,
        learner_observations,
        make_learner_env,
        run_algo_config,
    )
    from robot_learning.rl.networks import action_feature

    report = report or (lambda message: None)
    found = finetune_checkpoint(cfg.checkpoint)
    if found is None:
        raise FileNotFoundError(
            f"{cfg.checkpoint} is neither a finetune run nor one of its checkpoints"
        )
    (run, at), out = found, Path(cfg.out)
    check_out(out, cfg.overwrite)
    if cfg.format != "onnx":
        raise ExportError(
            "finetuned policies export as format=onnx (TensorRT engines are built from it at load)"
        )
    run_cfg = FinetuneConfig(**json.loads((run / RUN_CONFIG).read_text()))
    saved = load_learner(run / "checkpoints", at=at)
    if saved is None:
        raise FileNotFoundError(
            f"{run} has no checkpoint yet (checkpoints/last); let the run save one first"
        )
    algo_cfg = run_algo_config(run_cfg, run)  # residual: the run's copy of its base
    env = make_learner_env(run_cfg, algo_cfg)
    spec, rate = env.features, cfg.control_rate_hz or getattr(env.unwrapped, "fps", None)
    env.close()
    if not rate:
        raise ValueError(
            f"task {run_cfg.task.name!r} does not declare a control rate; pass control_rate_hz=<Hz>"
        )
    observations = learner_observations(run_cfg, spec, algo_cfg)
    action = action_feature(spec)
    keys = observations.keys
    algo = build_algo(run_cfg, observations, action, algo_cfg)
    algo.load_state_dict(saved.state["algo"])
    graph = ActorGraph(algo.policy_module(), keys, observations.image_keys).eval()
    source = {
        "run": str(run.resolve()),
        "checkpoint": str(saved.path.resolve()),
        "algo": run_cfg.algo,
        "env_steps": saved.meta.get("env_steps"),
        "sha256": _learner_hash(saved.path),
    }
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if BASE_ACTION in keys:
            _write_residual(
                cfg, run_cfg, algo_cfg, graph, spec, keys, float(rate), source, staging, report
            )
        else:
            _write_actor(
                cfg, run_cfg, algo_cfg, graph, spec, keys, float(rate), source, staging, report
            )
        read_bundle(staging)
        swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_actor(
    cfg, run_cfg, algo_cfg, graph, spec: FeatureSpec, keys, rate: float, source, root: Path, report
) -> None:
    from robot_learning.export.onnx_graph import export_graph

    root.mkdir(parents=True)
    report(f"tracing the {run_cfg.algo} actor to ONNX")
    facts = _export(
        graph, spec, keys, root / GRAPH_FILE, cfg.simplify, f"{run_cfg.algo} actor", export_graph
    )
    features = spec.select([*keys, ACTION])
    bundle = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "policy": run_cfg.algo,
        "features": features.to_dict(),
        "input_keys": keys,
        "inputs": declared_inputs(features, keys, 1, 1, noise=False),
        "outputs": declared_outputs(features, 1),
        "n_obs_steps": 1,
        "horizon": 1,
        "n_action_steps": 1,
        "control_rate_hz": rate,
        "sampler": {"name": "deterministic actor", "steps": 1},
        "normalization": {"in_graph": True, "modes": {}, "stats": {}},
        "precision": {"graph": "fp32", "fp16": bool(cfg.fp16)},
        "max_batch": cfg.max_batch,
        "policy_config": _jsonable(algo_cfg),
        "task": dataclasses.asdict(run_cfg.task),
        "source": source,
        "export": _export_facts(facts),
    }
    _write_spec(root, bundle)


def _write_residual(
    cfg, run_cfg, algo_cfg, graph, spec: FeatureSpec, keys, rate: float, source, root: Path, report
) -> None:
    from robot_learning.export.onnx_graph import export_graph
    from robot_learning.policy import CONFIG_FILE

    base = Path(algo_cfg.base)
    if (base / BUNDLE_FILE).is_file():
        report(f"copying the base bundle {base}")
        read_bundle(base)  # a broken base bundle fails here, naming what is wrong
        root.mkdir(parents=True)
        for name in json.loads((base / BUNDLE_FILE).read_text())["files"]:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base / name, root / name)
        shutil.copy2(base / BUNDLE_FILE, root / BUNDLE_FILE)
    else:
        from robot_learning.cli.eval import checkpoint_dir

        checkpoint = checkpoint_dir(base)
        if not (checkpoint / CONFIG_FILE).is_file():
            raise ExportError(f"the residual's base {base} is neither a bundle nor a checkpoint")
        report(f"exporting the base policy {checkpoint}")
        base_cfg = dataclasses.replace(
            cfg, checkpoint=str(checkpoint), out=str(root), overwrite=False
        )
        export_checkpoint(base_cfg, report)
    bundle = json.loads((root / BUNDLE_FILE).read_text())
    from robot_learning.evaluation import check_control_rate

    check_control_rate(
        bundle["control_rate_hz"],
        rate,
        policy=f"the residual's base policy {base}",
        task=f"the residual's task {run_cfg.task.name!r}",
    )
    outside = [k for k in keys if k != BASE_ACTION and k not in bundle["input_keys"]]
    if outside:
        raise ExportError(
            f"the residual reads {outside}, which the base policy's bundle does not take as inputs "
            f"({bundle['input_keys']}); the policy node would never receive them"
        )
    report("tracing the residual actor to ONNX")
    facts = _export(
        graph, spec, keys, root / RESIDUAL_GRAPH, cfg.simplify, "residual actor", export_graph
    )
    features = spec.select(keys)
    bundle["residual"] = {
        "graph": RESIDUAL_GRAPH,
        "input_keys": keys,
        "features": features.to_dict(),
        "inputs": residual_inputs(features, keys),
        "scale": algo_cfg.scale,
        "config": _jsonable(algo_cfg),
        "export": _export_facts(facts),
    }
    bundle["base_policy"] = bundle["policy"]  # what model.onnx and torch/ hold
    bundle["policy"] = f"residual({bundle['policy']})"
    bundle["task"] = dataclasses.asdict(run_cfg.task)  # the task the residual was trained on
    bundle["base_source"], bundle["source"] = bundle["source"], source
    bundle.pop("files")
    _write_spec(root, bundle)


def _export(
    graph: ActorGraph,
    spec: FeatureSpec,
    keys: list[str],
    path: Path,
    simplify: bool,
    what: str,
    export_graph,
) -> dict[str, Any]:
    def make_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {}
        for key in keys:
            feat, shape = spec[key], (batch, 1, *spec[key].shape)
            if feat.is_image:
                out[key] = rng.integers(0, 256, shape, dtype=np.uint8)
            elif feat.low is not None:  # inside the bounds (e.g. the base action)
                low = np.broadcast_to(np.asarray(feat.low, np.float32), feat.shape)
                high = np.broadcast_to(np.asarray(feat.high, np.float32), feat.shape)
                out[key] = (low + (high - low) * rng.uniform(size=shape)).astype(np.float32)
            else:
                out[key] = rng.standard_normal(shape).astype(np.float32)
        return out

    def reference(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return graph(*(torch.from_numpy(inputs[k]) for k in keys)).numpy()

    started = time.perf_counter()
    facts = export_graph(graph, keys, make_inputs, reference, path, simplify=simplify, what=what)
    return {**facts, "seconds": round(time.perf_counter() - started, 1)}


def _export_facts(facts: dict[str, Any]) -> dict[str, Any]:
    import onnx

    return {
        **facts,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }


def _write_spec(root: Path, bundle: dict[str, Any]) -> None:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != BUNDLE_FILE):
        files[path.relative_to(root).as_posix()] = {
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
    bundle["files"] = files
    write_policy_json(root, bundle)


def _jsonable(cfg: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _learner_hash(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(
        p for p in path.iterdir() if p.is_file() and not p.name.startswith("replay")
    ):
        digest.update(f"{file.name}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()
