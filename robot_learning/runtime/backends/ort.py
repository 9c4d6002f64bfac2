"""onnxruntime: the default CPU runtime; CUDA / TensorRT execution providers when installed."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from robot_learning.runtime.base import RUNTIMES, Runtime
from robot_learning.runtime.bundle import GRAPH_FILE, BundleError

#: execution providers in order of preference; the first ones present are used
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(uint8)": "uint8",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
}


@RUNTIMES.register("onnxruntime")
class OnnxRuntime(Runtime):
    """``model.onnx`` in an ``onnxruntime.InferenceSession`` with full graph optimisation."""

    name: ClassVar[str] = "onnxruntime"
    speed_rank: ClassVar[int] = 10

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "the onnxruntime package is not installed (pip install onnxruntime)"
        return None

    @classmethod
    def missing_from(cls, bundle_dir: Path, spec: dict) -> str | None:
        return None if GRAPH_FILE in spec["files"] else f"the bundle has no {GRAPH_FILE}"

    def __init__(
        self, bundle_dir: Path, spec: dict, threads: int | None = None, graph: str = GRAPH_FILE
    ) -> None:
        """Load ``graph`` (default ``model.onnx``; residual bundles also load ``residual.onnx``)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = int(threads)
        available = set(ort.get_available_providers())
        providers = []
        for name in PREFERRED_PROVIDERS:
            if name not in available:
                continue
            if name == "TensorrtExecutionProvider":
                cache = Path(bundle_dir) / "tensorrt" / "onnxruntime"
                providers.append((name, {
                    "trt_fp16_enable": bool(spec.get("precision", {}).get("fp16")),
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                }))  # fmt: skip
            else:
                providers.append(name)
        try:
            self.session = ort.InferenceSession(
                str(Path(bundle_dir) / graph), options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise BundleError(
                f"onnxruntime cannot load {Path(bundle_dir) / graph}: {exc}. Re-export the bundle."
            ) from exc
        self.output_name = self.session.get_outputs()[0].name

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], inputs)[0]

    def input_signature(self) -> dict[str, tuple[str, tuple]]:
        return {
            i.name: (
                _DTYPES.get(i.type, i.type),
                tuple(d if isinstance(d, int) else None for d in i.shape),
            )
            for i in self.session.get_inputs()
        }

    @property
    def device(self) -> str:
        return self.session.get_providers()[0]
