"""``robot-learning bench inference``: latency of exported bundles per policy, step count and runtime.

Each model is exported once per sampler step count into ``<out>/bundles/<name>`` (an existing
bundle is reused when it was exported from the same checkpoint at the same step count), loaded
with every requested runtime at ``threads`` CPU threads and timed: ``warmup`` calls, then
``calls`` ``predict_chunk`` calls at batch 1 on the bundle's neutral observation with fixed noise.

Models come from trained ``checkpoints`` or from synthetic ``cases``: a zoo policy with its
``configs/policy/<name>.yaml`` settings plus overrides, randomly initialised on a task's feature
spec with statistics made up from the feature bounds. Latency does not depend on the weights.
"""

from __future__ import annotations

import gc
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robot_learning.bench.sim import _cpu_count
from robot_learning.compat import guard_triton
from robot_learning.envs import OBS_MODES, TaskConfig, make_env
from robot_learning.export.exporter import ExportConfig, checkpoint_hash, export_checkpoint
from robot_learning.features import ACTION, FeatureSpec
from robot_learning.policy import CONFIG_FILE, POLICIES, Policy
from robot_learning.runtime import RUNTIMES, BundleError, available_runtimes, load_bundle
from robot_learning.runtime.bundle import GRAPH_FILE, TORCH_DIR, read_bundle
from robot_learning.training.config import build_policy_config

guard_triton()  # before any env is built: see robot_learning.compat

CASE_KEYS = ("name", "policy", "task", "obs", "cameras", "image_size", "steps", "overrides", "seed")
CHECKPOINT_STEPS = ("last", "final")


@dataclass
class InferenceBenchConfig:
    """Settings of ``bench inference`` (``configs/bench_inference.yaml``)."""

    checkpoints: list[str] = field(default_factory=list)
    """Trained checkpoint folders, exported at their own step count (plus ``steps[<policy>]``)."""
    steps: dict[str, list[int]] = field(default_factory=dict)
    """Policy family -> extra sampler step counts at which ``checkpoints`` of that family are exported."""
    cases: list[dict[str, Any]] = field(default_factory=list)
    """Synthetic models (keys: :data:`CASE_KEYS`); see ``configs/bench_inference.yaml``."""
    only: list[str] | None = None
    """Run only the cases/checkpoints with these names (None: all)."""
    runtimes: list[str] = field(default_factory=lambda: ["torch", "onnxruntime"])
    """Runtimes to time each bundle with; ones unavailable here are skipped and recorded."""
    threads: int = 1
    """CPU threads of every runtime (and of torch during export)."""
    calls: int = 200
    """Timed ``predict_chunk`` calls per (bundle, runtime)."""
    warmup: int = 10
    """Untimed calls before timing."""
    seed: int = 0
    """Seed of synthetic weights and of the fixed sampler noise."""
    out: str = "runs/bench_inference"
    """Output folder: ``checkpoints/``, ``bundles/`` and ``bench.json``."""

    def __post_init__(self) -> None:
        if self.calls < 1 or self.warmup < 0 or self.threads < 1:
            raise ValueError(
                f"need calls >= 1, warmup >= 0, threads >= 1; got calls={self.calls}, "
                f"warmup={self.warmup}, threads={self.threads}"
            )
        unknown = sorted(set(self.runtimes) - set(RUNTIMES.names()))
        if unknown or not self.runtimes:
            raise ValueError(
                f"runtimes={self.runtimes}: unknown {unknown}; registered runtimes: {RUNTIMES.names()}"
            )
        bad_family = sorted(set(self.steps) - set(POLICIES.names()))
        if bad_family:
            raise ValueError(
                f"steps has unknown policies {bad_family}; zoo policies: {POLICIES.names()}"
            )
        for name, counts in self.steps.items():
            _check_steps(counts or [], f"steps.{name}")
        self.cases = [check_case(case, i) for i, case in enumerate(self.cases)]
        if not self.cases and not self.checkpoints:
            raise ValueError("nothing to benchmark: give checkpoints=[DIR,...] and/or cases")


@dataclass
class Model:
    """One model to benchmark: a checkpoint folder and the step counts to export it at."""

    name: str
    source: str
    checkpoint: Path
    policy: str
    task: str | None
    obs: str
    cameras: list[str]
    steps: list[int]
    parameters: int
    n_action_steps: int


def run_inference_bench(
    cfg: InferenceBenchConfig, report=None, progress: bool = True
) -> dict[str, Any]:
    """Export, load and time every (model, step count, runtime); returns the bench.json payload.

    ``report(row)`` hears each result row as it is measured.
    """
    report = report or (lambda row: None)
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, report, progress)
    finally:
        torch.set_num_threads(before)


def _run(cfg: InferenceBenchConfig, report, progress: bool) -> dict[str, Any]:
    out = Path(cfg.out)
    reasons = available_runtimes()
    runtimes = [r for r in cfg.runtimes if reasons[r] is None]
    skipped = {r: reasons[r] for r in cfg.runtimes if reasons[r] is not None}
    checkpoint_names = [_checkpoint_label(Path(c)) for c in cfg.checkpoints]
    names = [c["name"] for c in cfg.cases] + checkpoint_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"case names {duplicates} are used twice; give the cases distinct `name`s")
    unknown = sorted(set(cfg.only or []) - set(names))
    if unknown:
        raise ValueError(f"only={cfg.only}: no case named {unknown}; cases: {names}")
    wanted = set(cfg.only or names)
    rows, bundles = [], []
    columns = [
        TextColumn("[bold]bench inference[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, disable=not progress) as bar:
        task_id = bar.add_task("preparing models", total=None)
        models = [
            synthetic_model(c, out / "checkpoints", cfg.seed)
            for c in cfg.cases
            if c["name"] in wanted
        ]
        models += [
            _checkpoint_model(Path(c), n, cfg.steps)
            for c, n in zip(cfg.checkpoints, checkpoint_names, strict=True)
            if n in wanted
        ]
        bar.update(task_id, total=sum(len(m.steps) for m in models), completed=0)
        for model in models:
            for steps in model.steps:
                label = f"{model.name} @ {steps} steps"
                bar.update(task_id, description=f"export {label}")
                bundle_dir, record = ensure_bundle(model, steps, out / "bundles")
                bundles.append(record)
                for runtime in runtimes:
                    bar.update(task_id, description=f"{runtime} {label}")
                    row = _measure(model, steps, bundle_dir, runtime, cfg)
                    rows.append(row)
                    report(row)
                bar.advance(task_id)
    _add_speedups(rows)
    return {
        "benchmark": "inference",
        "machine": _machine(cfg.threads),
        "config": asdict(cfg),
        "skipped_runtimes": skipped,
        "bundles": bundles,
        "results": rows,
    }


# ---------------------------------------------------------------------- configuration checks
def _check_steps(counts: list, where: str) -> None:
    if not isinstance(counts, list | tuple) or any(not isinstance(s, int) or s < 1 for s in counts):
        raise ValueError(f"{where}={counts!r} must be a list of positive step counts")


def check_case(case: dict[str, Any], index: int) -> dict[str, Any]:
    """A case dict with defaults filled in; ValueError naming the bad key otherwise."""
    case = dict(case)
    unknown = sorted(set(case) - set(CASE_KEYS))
    if unknown:
        raise ValueError(
            f"cases[{index}] has unknown keys {unknown}; valid keys: {list(CASE_KEYS)}"
        )
    if "policy" not in case:
        raise ValueError(f"cases[{index}] needs policy=<zoo name> ({POLICIES.names()})")
    if case["policy"] not in POLICIES:
        raise ValueError(
            f"cases[{index}]: unknown policy {case['policy']!r}; zoo policies: {POLICIES.names()}"
        )
    case.setdefault("task", "lift")
    case.setdefault("obs", "state")
    if case["obs"] not in OBS_MODES:
        raise ValueError(f"cases[{index}]: obs={case['obs']!r} is not one of {OBS_MODES}")
    case["cameras"] = list(case.get("cameras") or []) if case["obs"] == "pixels" else []
    from robot_learning.config import coerce

    case["image_size"] = coerce(case.get("image_size", 96), int, f"cases[{index}].image_size")
    if case["image_size"] < 8:
        raise ValueError(
            f"cases[{index}].image_size={case['image_size']} is too small; use >= 8 pixels"
        )
    case["overrides"] = dict(case.get("overrides") or {})
    case["seed"] = coerce(case.get("seed"), int | None, f"cases[{index}].seed")
    if case.get("steps") is not None:
        _check_steps(case["steps"], f"cases[{index}].steps")
        case["steps"] = list(dict.fromkeys(case["steps"]))
    if not case.get("name"):
        cams = "_" + "-".join(case["cameras"]) if case["cameras"] else ""
        case["name"] = f"{case['policy']}_{case['task']}_{case['obs']}{cams}"
    return case


# ---------------------------------------------------------------------- models
def zoo_settings(policy: str) -> dict[str, Any]:
    """The fields of ``configs/policy/<policy>.yaml`` (empty for a policy without one)."""
    from omegaconf import OmegaConf

    path = resources.files("configs") / "policy" / f"{policy}.yaml"
    if not path.is_file():
        return {}
    data = OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)
    data.pop("name", None)
    return data


def synthetic_stats(features: FeatureSpec) -> dict[str, dict[str, list[float]]]:
    """min/max/mean/std of every non-image feature from its bounds ([-1, 1] where it has none)."""
    stats = {}
    for key, feat in features.items():
        if feat.is_image:
            continue
        size = int(np.prod(feat.shape))
        low = np.asarray(feat.low if feat.low is not None else [-1.0] * size, np.float64)
        high = np.asarray(feat.high if feat.high is not None else [1.0] * size, np.float64)
        std = np.maximum((high - low) / 2, 1e-3)
        stats[key] = {
            "min": low.tolist(),
            "max": high.tolist(),
            "mean": ((low + high) / 2).tolist(),
            "std": std.tolist(),
        }
    return stats


def synthetic_model(case: dict[str, Any], root: Path, seed: int) -> Model:
    """Build (or reuse) the randomly initialised checkpoint of one synthetic case."""
    task = TaskConfig(
        name=case["task"],
        obs=case["obs"],
        image_size=case["image_size"],
        cameras=tuple(case["cameras"]) or None,
    )
    env = make_env(task)
    try:
        features, fps = env.features, getattr(env, "fps", None) or 10
    finally:
        env.close()
    cls = POLICIES.get(case["policy"])
    config = build_policy_config(cls, {**zoo_settings(case["policy"]), **case["overrides"]})
    directory = root / case["name"]
    meta_path = directory / CONFIG_FILE
    wanted = {
        "policy": cls.name,
        "config": _jsonable(asdict(config)),
        "features": features.to_dict(),
    }
    existing = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if (
        all(existing.get(k) == v for k, v in wanted.items())
        and (directory / "model.safetensors").is_file()
    ):
        policy = Policy.load(directory)
    else:
        torch.manual_seed(seed if case["seed"] is None else case["seed"])
        policy = cls(config, features, synthetic_stats(features))
        policy.save(
            directory,
            extra={
                "train_config": {"fps": fps, "task": _jsonable(asdict(task))},
                "synthetic": True,
            },
        )
    native = policy.inference_settings()["steps"]
    return Model(
        name=case["name"],
        source="synthetic",
        checkpoint=directory,
        policy=cls.name,
        task=task.name,
        obs=task.obs,
        cameras=list(case["cameras"]),
        steps=case["steps"] or [native],
        parameters=_parameters(policy),
        n_action_steps=policy.config.n_action_steps,
    )


def _checkpoint_model(path: Path, name: str, extra_steps: dict[str, list[int]]) -> Model:
    """A trained checkpoint, exported at its own step count plus ``extra_steps[<its policy>]``."""
    policy = Policy.load(path)
    meta = json.loads((path / CONFIG_FILE).read_text())
    task = (meta.get("train_config") or {}).get("task") or {}
    native = policy.inference_settings()["steps"]
    cameras = [k.rsplit(".", 1)[-1] for k in policy.image_keys]
    return Model(
        name=name,
        source="checkpoint",
        checkpoint=path,
        policy=policy.name,
        task=task.get("name"),
        obs="pixels" if cameras else "state",
        cameras=cameras,
        steps=list(dict.fromkeys([native, *(extra_steps.get(policy.name) or [])])),
        parameters=_parameters(policy),
        n_action_steps=policy.config.n_action_steps,
    )


def _checkpoint_label(path: Path) -> str:
    """A readable name for a checkpoint folder: the run folder it lives in plus its own name."""
    parts = path.resolve().parts
    if parts[-1] in CHECKPOINT_STEPS or parts[-1].startswith("step"):
        parts = [p for p in parts[:-1] if p not in ("train", "checkpoints")] + [parts[-1]]
    return "/".join(parts[-2:])


def _parameters(policy: Policy) -> int:
    return sum(p.numel() for p in policy.parameters())


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------------- bundles and timing
def ensure_bundle(model: Model, steps: int, root: Path) -> tuple[Path, dict[str, Any]]:
    """Export ``model`` at ``steps`` unless a matching bundle is already there."""
    directory = root / f"{model.name.replace('/', '_')}_s{steps}"
    record = {"case": model.name, "steps": steps, "bundle": str(directory)}
    source_hash = checkpoint_hash(model.checkpoint)
    try:
        spec = read_bundle(directory)
        files = spec["files"]
        if (
            spec["source"].get("sha256") == source_hash
            and spec["sampler"].get("steps") == steps
            and GRAPH_FILE in files
            and f"{TORCH_DIR}/model.safetensors" in files
        ):
            return directory, {**record, "reused": True, "sampler": spec["sampler"]["name"]}
    except BundleError:
        pass
    started = time.perf_counter()
    export_checkpoint(
        ExportConfig(
            checkpoint=str(model.checkpoint), out=str(directory), steps=steps, overwrite=True
        )
    )
    sampler = read_bundle(directory, verify_hashes=False)["sampler"]["name"]
    return directory, {
        **record,
        "reused": False,
        "sampler": sampler,
        "export_seconds": round(time.perf_counter() - started, 1),
    }


def time_predict_chunk(policy, calls: int, warmup: int, seed: int = 0) -> list[float]:
    """Milliseconds of each of ``calls`` batch-1 ``predict_chunk`` calls on the neutral observation."""
    batch = policy.neutral_observation(1)
    noise = np.random.default_rng(seed).standard_normal(
        (1, policy.horizon, *policy.action_shape), dtype=np.float32
    )
    for _ in range(warmup):
        policy.predict_chunk(batch, noise=noise)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        policy.predict_chunk(batch, noise=noise)
        times.append(1000 * (time.perf_counter() - started))
    return times


def _measure(
    model: Model, steps: int, bundle_dir: Path, runtime: str, cfg: InferenceBenchConfig
) -> dict[str, Any]:
    policy = load_bundle(bundle_dir, runtime=runtime, threads=cfg.threads, seed=cfg.seed)
    try:
        times = time_predict_chunk(policy, cfg.calls, cfg.warmup, cfg.seed)
        device, sampler = policy.backend.device, policy.spec["sampler"]["name"]
        action_dim = int(np.prod(policy.features[ACTION].shape))
    finally:
        close = getattr(policy.backend, "close", None)
        if close is not None:
            close()
        del policy
        gc.collect()
    p50, mean = float(np.percentile(times, 50)), float(np.mean(times))
    return {
        "case": model.name,
        "source": model.source,
        "policy": model.policy,
        "task": model.task,
        "obs": model.obs,
        "cameras": model.cameras,
        "sampler": sampler,
        "steps": steps,
        "runtime": runtime,
        "device": device,
        "threads": cfg.threads,
        "parameters": model.parameters,
        "action_dim": action_dim,
        "batch_size": 1,
        "calls": cfg.calls,
        "p50_ms": round(p50, 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "mean_ms": round(mean, 3),
        "min_ms": round(min(times), 3),
        "calls_per_s": round(1000 / mean, 2),
        "per_action_p50_ms": round(p50 / model.n_action_steps, 3),
    }


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """``speedup_vs_torch`` = torch p50 / this row's p50, for rows whose (case, steps) has a torch row."""
    torch_p50 = {(r["case"], r["steps"]): r["p50_ms"] for r in rows if r["runtime"] == "torch"}
    for row in rows:
        base = torch_p50.get((row["case"], row["steps"]))
        row["speedup_vs_torch"] = (
            round(base / row["p50_ms"], 2) if base and row["p50_ms"] > 0 else None
        )


def _machine(threads: int) -> dict[str, Any]:
    versions = {"torch": torch.__version__}
    for name in ("onnxruntime", "onnx", "tensorrt"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": _cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        **versions,
    }
