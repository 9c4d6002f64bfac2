"""Export and runtimes: every zoo policy's bundle matches torch, and broken bundles fail at load.

Bundles are exported from test-sized policies (``test_policies.make_policy``: small U-Net, the
``small`` camera trunk, horizon 8) with short samplers, to keep tracing fast.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from test_policies import CAMERA, NAMES, make_policy

from robot_learning.export import ExportConfig, ExportError, export_checkpoint
from robot_learning.export.onnx_graph import example_inputs
from robot_learning.policy import Policy
from robot_learning.runtime import (
    BundleError,
    BundlePolicy,
    ObservationError,
    RuntimeUnavailable,
    load_bundle,
)
from robot_learning.runtime.bundle import (
    BUNDLE_FILE,
    GRAPH_FILE,
    NOISE,
    sha256_file,
    write_policy_json,
)

#: sampler settings that keep the unrolled graphs small (DDIM is what diffusion exports)
SHORT = {
    "diffusion": {"sampler": "ddim", "steps": 2},
    "flow": {"steps": 2},
    "meanflow": {"steps": 1},
    "vla": {"steps": 2},
}
TOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_checkpoint(policy: Policy, directory: Path) -> Path:
    """A checkpoint as training writes it (with the control rate in its training config)."""
    return policy.save(
        directory, extra={"train_config": {"fps": 10, "task": {"name": "reach"}}, "step": 0}
    )


def export(policy: Policy, root: Path, name: str, **overrides) -> Path:
    source = save_checkpoint(policy, root / f"{name}_ckpt")
    settings = {**SHORT.get(policy.name, {}), **overrides}
    return export_checkpoint(ExportConfig(checkpoint=str(source), out=str(root / name), **settings))


@pytest.fixture(scope="module")
def state_bundle(tmp_path_factory) -> tuple[Policy, Path]:
    """A flow policy (state only) and its bundle, shared by the corruption tests (copied first)."""
    torch.manual_seed(0)
    policy = make_policy("flow")
    bundle = export(policy, tmp_path_factory.mktemp("state"), "flow")
    policy.set_inference(**SHORT["flow"])  # what the bundle runs
    return policy.eval(), bundle


def copy_bundle(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "bundle"))


def torch_reference(policy: Policy, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        obs = {k: torch.from_numpy(v) for k, v in inputs.items() if k != NOISE}
        return policy.predict_chunk(obs, noise=torch.from_numpy(inputs[NOISE])).numpy()


# ---------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", NAMES)
def test_bundle_matches_torch_policy_with_state_and_camera(name, tmp_path):
    torch.manual_seed(1)
    policy = make_policy(name, camera=True).eval()
    if name == "diffusion":
        policy.set_inference(
            sampler="ddpm"
        )  # export must switch it to DDIM (sampler=ddim in SHORT)
    bundle = export(policy, tmp_path, name)
    policy.set_inference(**SHORT[name])
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    assert spec["sampler"] == policy.inference_settings()
    onnx.checker.check_model(onnx.load(str(bundle / GRAPH_FILE)), full_check=True)
    graph_inputs = {
        i.name: i.type.tensor_type.elem_type
        for i in onnx.load(str(bundle / GRAPH_FILE)).graph.input
    }
    assert (
        graph_inputs[CAMERA] == onnx.TensorProto.UINT8
        and graph_inputs[NOISE] == onnx.TensorProto.FLOAT
    )
    for runtime in ("onnxruntime", "torch"):
        loaded = load_bundle(bundle, runtime=runtime)
        for batch in (1, 4):  # dynamic batch
            inputs = example_inputs(policy, batch, seed=batch)
            want = torch_reference(policy, inputs)
            got = loaded.predict_chunk(
                {k: v for k, v in inputs.items() if k != NOISE}, noise=inputs[NOISE]
            )
            assert got.shape == want.shape == (batch, policy.config.horizon, policy.action_dim)
            np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_bundle_of_a_policy_encoding_only_the_newest_frame_matches_torch(tmp_path):
    torch.manual_seed(2)
    policy = make_policy("flow", camera=True, image_obs_steps=1).eval()
    bundle = export(policy, tmp_path, "flow_newest")
    policy.set_inference(**SHORT["flow"])
    loaded = load_bundle(bundle, runtime="onnxruntime")
    inputs = example_inputs(policy, 2, seed=3)
    got = loaded.predict_chunk({k: v for k, v in inputs.items() if k != NOISE}, noise=inputs[NOISE])
    np.testing.assert_allclose(got, torch_reference(policy, inputs), atol=TOL, rtol=0)


def test_diffusion_ddpm_export_is_refused_with_the_fix(tmp_path):
    policy = make_policy("diffusion", sampler="ddpm", num_inference_steps=4)
    with pytest.raises(ExportError, match="sampler=ddim"):
        export(policy, tmp_path, "ddpm", sampler=None, steps=None)
    assert not (tmp_path / "ddpm").exists() and not list(tmp_path.glob(".ddpm.staging-*"))


def test_select_action_follows_the_torch_policy(state_bundle):
    policy, bundle = state_bundle
    loaded = load_bundle(bundle, runtime="onnxruntime")
    rng = np.random.default_rng(0)
    policy.reset(), loaded.reset()
    for _ in range(2 * policy.config.n_action_steps + 1):  # crosses two re-plans
        obs = {
            k: rng.uniform(-1, 1, policy.features[k].shape).astype(np.float32)
            for k in policy.input_keys
        }
        noise = rng.standard_normal(policy.noise_shape).astype(np.float32)
        want = policy.select_action(obs, noise=torch.from_numpy(noise)[None])
        got = loaded.select_action(obs, noise=noise)
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_policy_json_records_what_a_robot_needs(state_bundle):
    policy, bundle = state_bundle
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    assert spec["control_rate_hz"] == 10
    assert (spec["n_obs_steps"], spec["horizon"], spec["n_action_steps"]) == (2, 8, 4)
    assert spec["normalization"]["stats"]["action"]["min"] == [-2.0] * 3
    assert spec["files"][GRAPH_FILE]["sha256"] == sha256_file(bundle / GRAPH_FILE)
    assert len(spec["source"]["sha256"]) == 64 and spec["source"]["step"] == 0
    assert spec["export"]["parity_max_abs_error"] <= TOL


def test_auto_runtime_picks_onnxruntime_without_a_gpu(state_bundle):
    loaded = load_bundle(state_bundle[1], runtime="auto")
    assert loaded.runtime == "onnxruntime" and loaded.backend.device == "CPUExecutionProvider"


# ---------------------------------------------------------------------- inputs at run time
def test_bad_observations_are_rejected_by_name(state_bundle):
    loaded = load_bundle(state_bundle[1], runtime="onnxruntime")
    good = loaded.neutral_observation()
    bad = {**good, "observation.state": good["observation.state"].copy()}
    bad["observation.state"][0, 0, 2] = np.nan
    with pytest.raises(ObservationError, match="observation.state.*NaN"):
        loaded.predict_chunk(bad)
    with pytest.raises(ObservationError, match="missing"):
        loaded.predict_chunk({"observation.state": good["observation.state"]})
    with pytest.raises(ObservationError, match=r"expected shape \[B, 2, 2\]"):
        loaded.predict_chunk(
            {**good, "observation.environment_state": np.zeros((1, 2, 3), np.float32)}
        )
    assert np.isfinite(loaded.predict_chunk(good)).all()  # still serving after the rejections


# ---------------------------------------------------------------------- broken bundles fail at load
def test_missing_graph_fails_at_load(state_bundle, tmp_path):
    bundle = copy_bundle(state_bundle[1], tmp_path)
    (bundle / GRAPH_FILE).unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        load_bundle(bundle, runtime="onnxruntime")


def test_missing_policy_json_fails_at_load(state_bundle, tmp_path):
    bundle = copy_bundle(state_bundle[1], tmp_path)
    (bundle / BUNDLE_FILE).unlink()
    with pytest.raises(BundleError, match="policy.json is missing"):
        load_bundle(bundle)


def test_tampered_graph_fails_at_load(state_bundle, tmp_path):
    bundle = copy_bundle(state_bundle[1], tmp_path)
    data = bytearray((bundle / GRAPH_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights
    (bundle / GRAPH_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(bundle, runtime="onnxruntime")


def test_spec_that_does_not_follow_the_features_fails_at_load(state_bundle, tmp_path):
    bundle = copy_bundle(state_bundle[1], tmp_path)
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    spec["features"]["observation.state"]["shape"] = [6]  # the graph still takes 5
    write_policy_json(bundle, spec)  # re-hashed: the deeper check must catch it
    with pytest.raises(BundleError, match="do not follow from the feature spec"):
        load_bundle(bundle, runtime="onnxruntime")


def test_graph_from_another_export_fails_at_load(state_bundle, tmp_path):
    """policy.json consistent with itself and hashes updated, but the graph takes other inputs."""
    bundle = copy_bundle(state_bundle[1], tmp_path)
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    spec["features"]["observation.state"]["shape"] = [6]
    spec["inputs"][0]["shape"] = ["batch", 2, 6]
    write_policy_json(bundle, spec)
    with pytest.raises(BundleError, match=r"Graph and policy.json disagree.*observation.state"):
        load_bundle(bundle, runtime="onnxruntime")


def test_unknown_format_version_fails_with_advice(state_bundle, tmp_path):
    bundle = copy_bundle(state_bundle[1], tmp_path)
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    spec["format_version"] = 99
    (bundle / BUNDLE_FILE).write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="format_version=99.*Re-export"):
        BundlePolicy(bundle)


def test_torch_runtime_needs_the_torch_copy(tmp_path):
    torch.manual_seed(0)
    bundle = export(make_policy("meanflow"), tmp_path, "lean", include_torch=False)
    assert not (bundle / "torch").exists()
    with pytest.raises(RuntimeUnavailable, match="include_torch=true"):
        load_bundle(bundle, runtime="torch")
    assert load_bundle(bundle, runtime="auto").runtime == "onnxruntime"


# ---------------------------------------------------------------------- export safety
def test_export_never_clobbers_or_leaves_partial_bundles(state_bundle, tmp_path, monkeypatch):
    policy, _ = state_bundle
    source = save_checkpoint(policy, tmp_path / "ckpt")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a bundle"):
        export_checkpoint(
            ExportConfig(checkpoint=str(source), out=str(tmp_path / "notes"), steps=1)
        )
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"

    import robot_learning.export.onnx_graph as onnx_graph

    def boom(*args, **kwargs):
        raise ExportError("simulated failure while tracing")

    monkeypatch.setattr(onnx_graph, "export_onnx", boom)
    with pytest.raises(ExportError, match="simulated"):
        export_checkpoint(ExportConfig(checkpoint=str(source), out=str(tmp_path / "b"), steps=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "notes"]


def test_tensorrt_format_without_tensorrt_fails_fast_with_the_reason(state_bundle, tmp_path):
    from robot_learning.runtime.base import RUNTIMES

    reason = RUNTIMES.get("tensorrt").unavailable_reason()
    if reason is None:
        pytest.skip(
            "TensorRT is available here; the GPU tests in test_tensorrt.py cover format=tensorrt"
        )
    source = save_checkpoint(state_bundle[0], tmp_path / "ckpt")
    with pytest.raises(RuntimeUnavailable, match="format=tensorrt needs TensorRT") as err:
        export_checkpoint(
            ExportConfig(checkpoint=str(source), out=str(tmp_path / "trt"), format="tensorrt")
        )
    assert reason in str(err.value) and not (tmp_path / "trt").exists()
