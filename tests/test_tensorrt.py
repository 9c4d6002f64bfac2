"""TensorRT runtime: engine cache keys and explicit unavailability everywhere; build and run on a GPU."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from robot_learning.export import tensorrt_engine as te
from robot_learning.runtime.backends.tensorrt import TensorRTRuntime
from robot_learning.runtime.base import RuntimeUnavailable, resolve_runtime
from robot_learning.runtime.bundle import GRAPH_FILE, sha256_file

REASON = TensorRTRuntime.unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"TensorRT cannot run here: {REASON}")


def _spec(sha: str = "ab" * 32, fp16: bool | None = False, max_batch: int | None = 64) -> dict:
    spec: dict = {"files": {GRAPH_FILE: {"sha256": sha, "bytes": 1}}}
    if fp16 is not None:
        spec["precision"] = {"graph": "fp32", "fp16": fp16}
    if max_batch is not None:
        spec["max_batch"] = max_batch
    return spec


# ---------------------------------------------------------------- engine paths (no GPU)
def test_engine_path_is_stable_and_inside_the_bundle(tmp_path):
    a = te.engine_path(tmp_path, _spec(), "10.13.0")
    assert a == te.engine_path(tmp_path, _spec(), "10.13.0")
    assert a.parent == tmp_path / "tensorrt" and a.suffix == ".engine"
    assert (
        te.engine_path(tmp_path, _spec(fp16=None, max_batch=None), "10.13.0") == a
    )  # defaults: fp32, 64


@pytest.mark.parametrize(
    ("spec", "version", "gpu"),
    [
        (_spec(sha="cd" * 32), "10.13.0", ""),
        (_spec(), "10.13.1", ""),
        (_spec(fp16=True), "10.13.0", ""),
        (_spec(max_batch=8), "10.13.0", ""),
        (_spec(), "10.13.0", "NVIDIA L4 sm89"),
    ],
    ids=["onnx", "tensorrt-version", "fp16", "max-batch", "gpu"],
)
def test_engine_path_changes_with_every_build_input(tmp_path, spec, version, gpu):
    assert te.engine_path(tmp_path, spec, version, gpu=gpu) != te.engine_path(
        tmp_path, _spec(), "10.13.0"
    )


def test_only_engines_of_another_graph_are_stale(tmp_path):
    current = te.engine_path(tmp_path, _spec(), "10.13.0")
    same_graph = te.engine_path(tmp_path, _spec(fp16=True), "10.13.0")
    other_graph = te.engine_path(tmp_path, _spec(sha="cd" * 32), "10.13.0")
    current.parent.mkdir()
    unrelated = current.parent / "notes.engine"
    in_progress = current.parent / f".{current.name}.x1y2.tmp"
    for path in (current, same_graph, other_graph, unrelated, in_progress):
        path.write_bytes(b"x")
    assert te.remove_stale_engines(current) == [other_graph]
    assert all(p.exists() for p in (current, same_graph, unrelated, in_progress))


# ---------------------------------------------------------------- unavailability (no GPU)
@pytest.mark.skipif(REASON is None, reason="TensorRT and a CUDA GPU are present")
def test_unavailable_reason_is_explicit():
    assert isinstance(REASON, str) and (
        "tensorrt" in REASON or "GPU" in REASON or "cuda-python" in REASON
    )


@pytest.mark.skipif(REASON is None, reason="TensorRT and a CUDA GPU are present")
def test_requesting_tensorrt_names_what_is_missing(tmp_path):
    with pytest.raises(RuntimeUnavailable) as info:
        resolve_runtime("tensorrt", tmp_path, _spec())
    assert REASON in str(info.value)
    with pytest.raises(RuntimeUnavailable, match="TensorRT cannot run here"):
        te.ensure_engine(tmp_path, _spec())
    with pytest.raises(RuntimeUnavailable, match="TensorRT cannot run here"):
        TensorRTRuntime(tmp_path, _spec())


def _fake_cudart(err: int, count: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        cudaError_t=types.SimpleNamespace(cudaSuccess=0),
        cudaGetDeviceCount=lambda: (err, count),
        cudaGetErrorName=lambda e: (0, b"cudaErrorNoDevice"),
        cudaGetErrorString=lambda e: (0, b"no CUDA-capable device is detected"),
    )


@pytest.mark.parametrize(
    ("err", "count", "expected"), [(0, 0, "found 0 devices"), (100, 0, "cudaErrorNoDevice")]
)
def test_without_a_gpu_the_reason_says_so(monkeypatch, err, count, expected):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(te, "import_cudart", lambda: _fake_cudart(err, count))
    reason = TensorRTRuntime.unavailable_reason()
    assert reason is not None and reason.startswith("no CUDA GPU is visible") and expected in reason


def test_missing_graph_is_reported(tmp_path):
    assert "model.onnx" in TensorRTRuntime.missing_from(tmp_path, _spec())
    assert "model.onnx" in TensorRTRuntime.missing_from(tmp_path, {"files": {}})


# ---------------------------------------------------------------- a tiny graph
def _tiny_graph(path: Path) -> None:
    """action = 2 * x + noise + img / 255 with x [B, 1, 3] float32, img [B, 1, 3] uint8, noise [B, 4, 3]."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 3]),
        helper.make_tensor_value_info("img", TensorProto.UINT8, ["batch", 1, 3]),
        helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", 4, 3]),
    ]
    output = helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", 4, 3])
    consts = [
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("inv255", TensorProto.FLOAT, [], [1.0 / 255.0]),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Cast", ["img"], ["imgf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["imgf", "inv255"], ["imgn"]),
        helper.make_node("Add", ["x2", "imgn"], ["obs"]),
        helper.make_node("Add", ["obs", "noise"], ["action"]),
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, [output], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _tiny_inputs(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((batch, 1, 3)).astype(np.float32),
        "img": rng.integers(0, 256, (batch, 1, 3), dtype=np.uint8),
        "noise": rng.standard_normal((batch, 4, 3)).astype(np.float32),
    }


def _expected(inputs: dict[str, np.ndarray]) -> np.ndarray:
    return 2 * inputs["x"] + inputs["img"].astype(np.float32) / 255 + inputs["noise"]


@pytest.fixture
def tiny_bundle(tmp_path) -> tuple[Path, dict]:
    _tiny_graph(tmp_path / GRAPH_FILE)
    sha = sha256_file(tmp_path / GRAPH_FILE)
    spec = {
        "files": {GRAPH_FILE: {"sha256": sha, "bytes": (tmp_path / GRAPH_FILE).stat().st_size}},
        "max_batch": 8,
    }
    return tmp_path, spec


def test_tiny_graph_computes_what_the_gpu_tests_expect(tiny_bundle):
    ort = pytest.importorskip("onnxruntime")
    bundle, _ = tiny_bundle
    session = ort.InferenceSession(str(bundle / GRAPH_FILE), providers=["CPUExecutionProvider"])
    inputs = _tiny_inputs(3)
    np.testing.assert_allclose(
        session.run(["action"], inputs)[0], _expected(inputs), rtol=1e-6, atol=1e-6
    )


# ---------------------------------------------------------------- GPU
@needs_gpu
def test_gpu_build_run_and_reuse(tiny_bundle):
    bundle, spec = tiny_bundle
    runtime = TensorRTRuntime(bundle, spec)
    try:
        assert runtime.input_signature() == {
            "x": ("float32", (None, 1, 3)), "img": ("uint8", (None, 1, 3)), "noise": ("float32", (None, 4, 3)),
        }  # fmt: skip
        assert runtime.device.startswith("cuda:") and "TensorRT" in runtime.device
        for batch in (1, 5, 2, 8):  # grows, shrinks, grows again: buffers are reused or reallocated
            inputs = _tiny_inputs(batch, seed=batch)
            out = runtime.run(inputs)
            assert out.dtype == np.float32 and out.shape == (batch, 4, 3)
            np.testing.assert_allclose(out, _expected(inputs), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="batch size"):
            runtime.run(_tiny_inputs(9))
    finally:
        runtime.close()
    engines = list((bundle / "tensorrt").glob("*.engine"))
    assert len(engines) == 1
    built = engines[0].stat().st_mtime_ns
    assert te.ensure_engine(bundle, spec) == engines[0] and engines[0].stat().st_mtime_ns == built


@needs_gpu
def test_gpu_new_graph_rebuilds_and_drops_the_stale_engine(tiny_bundle):
    bundle, spec = tiny_bundle
    old = te.ensure_engine(bundle, spec)
    changed = {**spec, "files": {GRAPH_FILE: {**spec["files"][GRAPH_FILE], "sha256": "cd" * 32}}}
    new = te.ensure_engine(bundle, changed)
    assert new != old and new.is_file() and not old.exists()


@needs_gpu
def test_gpu_unparsable_graph_is_a_clear_error(tmp_path):
    (tmp_path / GRAPH_FILE).write_bytes(b"not an onnx file")
    with pytest.raises(te.EngineBuildError, match="cannot parse"):
        te.build_engine(tmp_path / GRAPH_FILE, tmp_path / "x.engine", {"max_batch": 2})
    assert not (tmp_path / "x.engine").exists()
