"""TensorRT engines built from a bundle's ``model.onnx`` and cached in ``<bundle>/tensorrt/``.

An engine is specific to the graph, the TensorRT version, the precision, the batch range and
the GPU, so its file name is a hash of all five (:func:`engine_path`): changing any of them
leads to a new file and a rebuild, never to loading a wrong engine. Engines are written
atomically, so an interrupted build leaves no truncated engine behind. No torch here: device
memory and CUDA queries go through cuda-python.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from robot_learning.runtime.base import RuntimeUnavailable
from robot_learning.runtime.bundle import GRAPH_FILE

log = logging.getLogger(__name__)

ENGINE_DIR = "tensorrt"
INSTALL_HINT = "pip install robot-learning[tensorrt]"
DEFAULT_MAX_BATCH = 64
#: engine file names: <first 12 hex of the ONNX sha256>-<12 hex of the full build key>.engine
_ENGINE_NAME = re.compile(r"^([0-9a-f]{12})-([0-9a-f]{12})\.engine$")

_logger: Any = None


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build an engine from it; the message says why."""


class CudaError(RuntimeError):
    """A CUDA runtime call returned an error."""


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or :class:`RuntimeUnavailable` saying why it cannot be imported."""
    try:
        import tensorrt
    except ModuleNotFoundError as exc:
        if exc.name != "tensorrt":
            raise RuntimeUnavailable(
                f"the tensorrt Python package cannot be imported ({exc}); reinstall it ({INSTALL_HINT})"
            ) from exc
        raise RuntimeUnavailable(
            f"the tensorrt Python package is not installed ({INSTALL_HINT})"
        ) from exc
    except (ImportError, OSError) as exc:  # a wheel whose native libraries do not load
        raise RuntimeUnavailable(
            f"the tensorrt Python package cannot be imported ({exc}); reinstall it ({INSTALL_HINT})"
        ) from exc
    return tensorrt


def import_cudart() -> Any:
    """cuda-python's runtime API (``cuda.bindings.runtime``; ``cuda.cudart`` before cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError as exc:
            raise RuntimeUnavailable(
                f"the cuda-python package is not installed ({INSTALL_HINT})"
            ) from exc
    return runtime


def cuda_error_text(cudart: Any, err: Any) -> str:
    """``cudaErrorX: description`` for a cudaError_t."""
    _, name = cudart.cudaGetErrorName(err)
    _, text = cudart.cudaGetErrorString(err)
    return f"{_text(name)}: {_text(text)}"


def _text(value: Any) -> str:
    return value.decode(errors="replace").rstrip("\x00") if isinstance(value, bytes) else str(value)


def cuda_check(cudart: Any, result: tuple, what: str) -> Any:
    """Unpack a cuda-python result ``(err, *values)``: the value(s), or :class:`CudaError`."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise CudaError(f"{what} failed ({cuda_error_text(cudart, err)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def unavailable_reason() -> str | None:
    """None when TensorRT can run here (package importable, >= 1 CUDA GPU visible), else why not."""
    try:
        import_tensorrt()
        cudart = import_cudart()
    except RuntimeUnavailable as exc:
        return str(exc)
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess:
        return f"no CUDA GPU is visible (cudaGetDeviceCount: {cuda_error_text(cudart, err)})"
    if count < 1:
        return "no CUDA GPU is visible (cudaGetDeviceCount found 0 devices)"
    return None


def require_tensorrt() -> tuple[Any, Any]:
    """``(tensorrt, cudart)`` when TensorRT can run here, else :class:`RuntimeUnavailable`."""
    why = unavailable_reason()
    if why is not None:
        raise RuntimeUnavailable(f"TensorRT cannot run here: {why}")
    return import_tensorrt(), import_cudart()


def trt_logger() -> Any:
    """The process-wide TensorRT logger (TensorRT keeps a single logger per process)."""
    global _logger
    if _logger is None:
        trt = import_tensorrt()
        _logger = trt.Logger(trt.Logger.WARNING)
    return _logger


def gpu_key(cudart: Any, device: int | None = None) -> str:
    """The current (or given) GPU's name and compute capability, e.g. ``NVIDIA L4 sm89``."""
    if device is None:
        device = cuda_check(cudart, cudart.cudaGetDevice(), "cudaGetDevice")
    prop = cuda_check(cudart, cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    return f"{_text(prop.name)} sm{prop.major}{prop.minor}"


def build_settings(spec: dict) -> tuple[bool, int]:
    """``(fp16, max_batch)`` asked for by ``policy.json``."""
    fp16 = bool((spec.get("precision") or {}).get("fp16", False))
    max_batch = int(spec.get("max_batch", DEFAULT_MAX_BATCH))
    if max_batch < 1:
        raise ValueError(
            f"policy.json has max_batch={max_batch}; it must be >= 1 (re-export the bundle)"
        )
    return fp16, max_batch


def engine_path(bundle_dir: str | Path, spec: dict, trt_version: str, gpu: str = "") -> Path:
    """Where the engine for this graph, TensorRT version, precision, batch range (and GPU) lives.

    Pure: the name hashes the ONNX SHA-256 recorded in ``policy.json``, ``trt_version``, the
    fp16 flag, ``max_batch`` and ``gpu`` (see :func:`gpu_key`), so any change gives another path.
    """
    onnx_sha = spec["files"][GRAPH_FILE]["sha256"]
    fp16, max_batch = build_settings(spec)
    key = f"onnx={onnx_sha};trt={trt_version};fp16={int(fp16)};max_batch={max_batch};gpu={gpu}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return Path(bundle_dir) / ENGINE_DIR / f"{onnx_sha[:12]}-{digest[:12]}.engine"


def build_engine(
    onnx_path: str | Path, engine_out: str | Path, spec: dict, workspace_bytes: int = 1 << 30
) -> Path:
    """Parse ``onnx_path``, build an engine with a batch profile 1..max_batch, write it atomically to ``engine_out``.

    Raises :class:`RuntimeUnavailable` without TensorRT or a GPU, :class:`EngineBuildError`
    listing the parser's errors when the graph does not parse or TensorRT cannot build it.
    """
    trt, _ = require_tensorrt()
    onnx_path, engine_out = Path(onnx_path), Path(engine_out)
    fp16, max_batch = build_settings(spec)
    logger = trt_logger()
    builder = trt.Builder(logger)
    # 0 = explicit batch on 10.x (implicit batch is gone); 11.x networks are always strongly typed
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or [
            "(the parser gave no details)"
        ]
        raise EngineBuildError(
            f"TensorRT {trt.__version__} cannot parse {onnx_path}:\n  - " + "\n  - ".join(errors)
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if fp16:
        _enable_fp16(trt, config)
    profile = _batch_profile(builder, network, max_batch)
    if profile is not None and config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(
            f"TensorRT rejected the batch profile 1..{max_batch} for {onnx_path}"
        )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            f"TensorRT {trt.__version__} could not build an engine from {onnx_path} (its errors are logged above); "
            "try a smaller max_batch or a larger workspace, or run the bundle with runtime=onnxruntime"
        )
    _write_atomic(engine_out, serialized)
    return engine_out


def ensure_engine(bundle_dir: str | Path, spec: dict) -> Path:
    """The engine for this bundle on this machine: the cached one if present, else built now.

    After a build, engines of the same folder built from a *different* ``model.onnx`` are
    removed (they can never serve this bundle again); engines of this graph for other TensorRT
    versions, precisions or GPUs are kept, as another machine sharing the folder may use them.
    """
    trt, cudart = require_tensorrt()
    bundle_dir = Path(bundle_dir)
    path = engine_path(bundle_dir, spec, trt.__version__, gpu=gpu_key(cudart))
    if path.is_file():
        return path
    onnx_path = bundle_dir / GRAPH_FILE
    if not onnx_path.is_file():
        raise FileNotFoundError(
            f"{onnx_path} is missing; TensorRT builds its engine from it (re-export the bundle)"
        )
    log.info(
        "building TensorRT engine %s from %s (takes a while, once per machine)",
        path.name,
        onnx_path,
    )
    build_engine(onnx_path, path, spec)
    remove_stale_engines(path)
    return path


def remove_stale_engines(current: Path) -> list[Path]:
    """Delete engines next to ``current`` that were built from another graph; returns them.

    Only files named like our engines are considered, and in-progress temp files never match.
    """
    match = _ENGINE_NAME.match(current.name)
    if match is None:
        return []
    removed = []
    for other in current.parent.iterdir():
        found = _ENGINE_NAME.match(other.name)
        if found is None or found.group(1) == match.group(1) or not other.is_file():
            continue
        try:
            other.unlink()
            removed.append(other)
        except OSError as exc:
            log.warning("could not remove stale TensorRT engine %s: %s", other, exc)
    return removed


def _enable_fp16(trt: Any, config: Any) -> None:
    if hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
        return
    # TensorRT 11 removed weak typing: layer precisions come from the graph's own types
    log.warning(
        "TensorRT %s has no FP16 builder flag (strongly typed networks only); the engine keeps the graph's "
        "FP32 types. For FP16 kernels export a mixed-precision graph (e.g. with ModelOpt AutoCast).",
        trt.__version__,
    )


def _batch_profile(builder: Any, network: Any, max_batch: int) -> Any:
    """An optimisation profile with batch min 1 / opt 1 / max ``max_batch``; None for a static graph."""
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape[1:]):
            raise EngineBuildError(
                f"graph input {tensor.name!r} has shape {list(shape)}: only the batch (first) dimension may be dynamic"
            )
        if shape and shape[0] < 0:
            dynamic = True
            rest = shape[1:]
            profile.set_shape(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))
    return profile if dynamic else None


def _write_atomic(path: Path, data: Any) -> None:
    """Write ``data`` (bytes-like) to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise EngineBuildError(
            f"cannot write the TensorRT engine cache {path.parent} ({exc}); make the bundle folder writable"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
