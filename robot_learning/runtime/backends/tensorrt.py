"""TensorRT: the fastest runtime on an NVIDIA GPU; the engine is built from ``model.onnx`` on first load.

Device buffers and the stream come from cuda-python, so this runtime needs neither torch nor
pycuda: ``pip install robot-learning[tensorrt]``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robot_learning.export import tensorrt_engine as te
from robot_learning.runtime.base import RUNTIMES, Runtime
from robot_learning.runtime.bundle import GRAPH_FILE, OUTPUT, BundleError


@RUNTIMES.register("tensorrt")
class TensorRTRuntime(Runtime):
    """A TensorRT engine (cached in ``<bundle>/tensorrt/``) run on one CUDA stream."""

    name: ClassVar[str] = "tensorrt"
    speed_rank: ClassVar[int] = 0

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return te.unavailable_reason()

    @classmethod
    def missing_from(cls, bundle_dir: Path, spec: dict) -> str | None:
        if GRAPH_FILE not in spec.get("files", {}) or not (Path(bundle_dir) / GRAPH_FILE).is_file():
            return f"the bundle has no {GRAPH_FILE} (TensorRT builds its engine from it)"
        return None

    def __init__(self, bundle_dir: Path, spec: dict, threads: int | None = None) -> None:
        # threads is ignored: the work runs on the GPU
        self._buffers: dict[str, tuple[int, int]] = {}  # tensor name -> (device pointer, bytes)
        self._stream: Any = None
        self._context: Any = None
        self._engine: Any = None
        self._trt_runtime: Any = None
        self._trt, self._cudart = te.require_tensorrt()
        self._device_index = te.cuda_check(
            self._cudart, self._cudart.cudaGetDevice(), "cudaGetDevice"
        )
        self._max_batch = te.build_settings(spec)[1]
        self._engine = self._load_engine(Path(bundle_dir), spec)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise RuntimeError(
                "TensorRT could not create an execution context (out of GPU memory?)"
            )
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if outputs != [OUTPUT]:
            raise BundleError(
                f"the TensorRT engine has outputs {outputs}, expected [{OUTPUT!r}]; re-export the bundle"
            )
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self._stream = self._call(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._stream_handle = _native_handle(self._stream)

    def _load_engine(self, bundle_dir: Path, spec: dict) -> Any:
        """Deserialize the cached engine; one rebuild if the cached file does not load (corrupt or foreign)."""
        runtime = self._trt.Runtime(te.trt_logger())
        self._trt_runtime = runtime  # the engine must not outlive its runtime
        for attempt in range(2):
            path = te.ensure_engine(bundle_dir, spec)
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is not None:
                return engine
            if attempt == 0:
                path.unlink(missing_ok=True)
        raise RuntimeError(
            f"TensorRT {self._trt.__version__} cannot load the engine it just built ({path})"
        )

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if set(inputs) != set(self._inputs):
            raise ValueError(
                f"the engine takes inputs {sorted(self._inputs)}, got {sorted(inputs)}"
            )
        arrays = {n: np.ascontiguousarray(inputs[n], dtype=self._dtypes[n]) for n in self._inputs}
        batches = sorted({a.shape[0] if a.ndim else 0 for a in arrays.values()})
        if len(batches) != 1 or not 1 <= batches[0] <= self._max_batch:
            raise ValueError(
                f"inputs must share one batch size in 1..{self._max_batch}, got {batches}"
            )
        ctx, cudart = self._context, self._cudart
        for name, array in arrays.items():
            if not ctx.set_input_shape(name, array.shape):
                raise ValueError(f"input {name!r} of shape {array.shape} does not fit the engine")
        out = np.empty(tuple(ctx.get_tensor_shape(OUTPUT)), dtype=self._dtypes[OUTPUT])
        to_device, to_host = (
            cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        for name, array in arrays.items():
            ptr = self._reserve(name, array.nbytes)
            self._call(
                cudart.cudaMemcpyAsync(
                    ptr, array.ctypes.data, array.nbytes, to_device, self._stream
                ),
                "cudaMemcpyAsync",
            )
            ctx.set_tensor_address(name, ptr)
        out_ptr = self._reserve(OUTPUT, out.nbytes)
        ctx.set_tensor_address(OUTPUT, out_ptr)
        if not ctx.execute_async_v3(self._stream_handle):
            raise RuntimeError("TensorRT failed to enqueue the inference (see the TensorRT log)")
        self._call(
            cudart.cudaMemcpyAsync(out.ctypes.data, out_ptr, out.nbytes, to_host, self._stream),
            "cudaMemcpyAsync",
        )
        # the host arrays stay referenced until here, so the async copies read/write live memory
        self._call(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return out.astype(np.float32, copy=False)

    def _reserve(self, name: str, nbytes: int) -> int:
        """A device buffer of at least ``nbytes`` for ``name``, reallocated when the batch grows."""
        ptr, size = self._buffers.get(name, (0, 0))
        if nbytes <= size:
            return ptr
        if ptr:
            # every run ends with a stream synchronize, so the old buffer is idle
            self._call(self._cudart.cudaFree(ptr), "cudaFree")
            del self._buffers[name]
        ptr = int(
            self._call(self._cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes} bytes for {name!r})")
        )
        self._buffers[name] = (ptr, nbytes)
        return ptr

    def _call(self, result: tuple, what: str) -> Any:
        return te.cuda_check(self._cudart, result, what)

    def input_signature(self) -> dict[str, tuple[str, tuple]]:
        signature = {}
        for name in self._inputs:
            shape = tuple(None if d < 0 else int(d) for d in self._engine.get_tensor_shape(name))
            signature[name] = (self._dtypes[name].name, shape)
        return signature

    @property
    def device(self) -> str:
        return f"cuda:{self._device_index} (TensorRT {self._trt.__version__})"

    def close(self) -> None:
        """Drop the context and engine, then free the device buffers and the stream; idempotent."""
        self._context = self._engine = self._trt_runtime = None
        cudart = getattr(self, "_cudart", None)
        buffers, stream = getattr(self, "_buffers", {}), getattr(self, "_stream", None)
        self._buffers, self._stream = {}, None
        if cudart is not None:
            for ptr, _ in buffers.values():
                cudart.cudaFree(ptr)
            if stream is not None:
                cudart.cudaStreamDestroy(stream)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown cuda-python may be gone
            self.close()


def _native_handle(stream: Any) -> int:
    """The stream's address as an int (``int(obj)`` is deprecated in cuda-bindings 13)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(stream)
    return int(get_cuda_native_handle(stream))
