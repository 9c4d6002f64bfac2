"""Policy zoo tests generated from the registry: every registered policy gets every generic test.

Policies are built with test-sized settings (small U-Net, ``small`` camera trunk) on synthetic
features and statistics, with (a) state only and (b) state + one 32x32 camera.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from robot_learning.ema import EMA
from robot_learning.features import Feature, FeatureMismatchError, FeatureSpec
from robot_learning.normalize import NormalizationError
from robot_learning.policy import POLICIES, Policy

#: the controllers (reward_classifier predicts no actions: tests/test_reward_classifier.py)
NAMES = [n for n in POLICIES.names() if POLICIES.get(n).predicts_actions]
H, T, A = 8, 2, 3  # horizon, n_obs_steps, action dim
#: test-sized settings, applied where a policy's config has the field
SMALL = dict(
    horizon=H,
    n_obs_steps=T,
    n_action_steps=4,
    down_dims=(32, 64),
    time_embed_dim=32,
    vision_backbone="small",
    num_keypoints=8,
    image_feature_dim=16,
    d_model=32,
    n_heads=2,
    backbone_layers=1,
    expert_layers=1,
    text_layers=1,
    max_tokens=24,
)
#: the instruction of every sample, for policies that follow one (``uses_language``)
INSTRUCTION = "lift the red cube"
CAMERA = "observation.images.front"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # the test models are tiny, so per-op threading overhead dominates on 2 cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_spec(camera: bool) -> FeatureSpec:
    features = {
        "observation.state": Feature("float32", (5,)),
        "observation.environment_state": Feature("float32", (2,)),
    }
    if camera:
        features[CAMERA] = Feature("video", (32, 32, 3))
    features["action"] = Feature("float32", (A,), low=(-2.0,) * A, high=(2.0,) * A)
    return FeatureSpec(features)


def make_stats() -> dict:
    return {
        "observation.state": {
            "min": [-3.0] * 5,
            "max": [3.0] * 5,
            "mean": [0.0] * 5,
            "std": [1.0] * 5,
        },
        "observation.environment_state": {"min": [-1.0, -1.0], "max": [1.0, 1.0]},
        "action": {"min": [-2.0] * A, "max": [2.0] * A},
    }


def make_policy(name: str, camera: bool = False, stats: dict | None = None, **overrides) -> Policy:
    cls = POLICIES.get(name)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    kwargs = {k: v for k, v in {**SMALL, **overrides}.items() if k in fields}
    return cls(
        cls.config_class(**kwargs), make_spec(camera), make_stats() if stats is None else stats
    )


def make_batch(spec: FeatureSpec, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in spec.observation_keys:
        shape = (batch, T, *spec[key].shape)
        if spec[key].is_image:
            out[key] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        else:
            out[key] = torch.randn(shape, generator=g)
    # smooth chunks (random walks), like real trajectories
    out["action"] = torch.cumsum(torch.randn(batch, H, A, generator=g) * 0.3, dim=1).clamp(-2, 2)
    out["action_is_pad"] = torch.zeros(batch, H, dtype=torch.bool)
    out["action_is_pad"][0, -3:] = True  # one episode ended inside its chunk
    out["task"] = [INSTRUCTION] * batch  # read by language policies, ignored by the others
    return out


def noise(batch: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, H, A, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("camera", [False, True], ids=["state", "state+camera"])
@pytest.mark.parametrize("name", NAMES)
def test_loss_is_finite_scalar_and_every_parameter_gets_a_gradient(name, camera):
    torch.manual_seed(0)
    policy = make_policy(name, camera).train()
    loss, metrics = policy.compute_loss(make_batch(policy.features, 4))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(math.isfinite(v) for v in metrics.values())
    loss.backward()
    params = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)
    if camera:  # the camera trunk is trained end to end
        camera_grads = [p.grad.abs().sum() for n, p in params if "images" in n]
        assert camera_grads and sum(camera_grads) > 0


@pytest.mark.parametrize("name", NAMES)
def test_overfits_a_tiny_dataset(name):
    """8 fixed (observation, chunk) pairs: the regression error drops >= 10x in 200 steps."""
    torch.manual_seed(0)
    policy = make_policy(name).train()
    pairs = make_batch(policy.features, 8, seed=1)
    # the 8 pairs repeated 8x: fresh noise/times per copy, at almost no extra cost on CPU
    batch = {
        k: v * 8 if k == "task" else v.repeat(8, *([1] * (v.ndim - 1))) for k, v in pairs.items()
    }
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    history = []
    for _ in range(200):
        loss, metrics = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # "mse": the unweighted regression error (meanflow's optimised loss is adaptively
        # weighted, ~mse / (mse + c), and saturates near 1 by design)
        history.append(metrics.get("mse", loss.item()))
    first, last = np.mean(history[:5]), np.mean(history[-10:])
    assert first / last >= 10, f"{name}: mse {first:.3f} -> {last:.4f} ({first / last:.1f}x)"


@pytest.mark.parametrize("camera", [False, True], ids=["state", "state+camera"])
@pytest.mark.parametrize("name", NAMES)
def test_predict_chunk_shape_and_determinism_given_noise(name, camera):
    policy = make_policy(name, camera).eval()
    batch = make_batch(policy.features, 3)
    with torch.no_grad():
        a = policy.predict_chunk(batch, noise(3, 0))
        b = policy.predict_chunk(batch, noise(3, 0))
        c = policy.predict_chunk(batch, noise(3, 1))
    assert a.shape == (3, H, A)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="noise must have shape"):
        policy.predict_chunk(batch, torch.zeros(3, H + 1, A))


@pytest.mark.parametrize("camera", [False, True], ids=["state", "state+camera"])
@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_reproduces_predictions(name, camera, tmp_path):
    torch.manual_seed(0)
    policy = make_policy(name, camera)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    batch = make_batch(policy.features, 4)
    for _ in range(2):  # move the weights away from their initialisation
        loss, _ = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    policy.save(tmp_path / "ckpt")
    loaded = Policy.load(tmp_path / "ckpt")
    assert type(loaded) is type(policy) and loaded.config == policy.config
    assert not loaded.training
    with torch.no_grad():
        expected = policy.predict_chunk(batch, noise(4, 3))
        actual = loaded.predict_chunk(batch, noise(4, 3))
    assert torch.equal(expected, actual)


@pytest.mark.parametrize("name", NAMES)
def test_select_action_executes_n_action_steps_then_replans(name):
    policy = make_policy(name).eval()
    n_steps = policy.config.n_action_steps
    calls = []
    predict = policy.predict_chunk

    def counting(batch, noise=None):
        calls.append(batch)
        return predict(batch, noise)

    policy.predict_chunk = counting
    rng = np.random.default_rng(0)
    frames = [
        {
            **{
                k: rng.normal(size=policy.features[k].shape).astype(np.float32)
                for k in policy.input_keys
            },
            "task": INSTRUCTION,
        }
        for _ in range(2 * n_steps + 1)
    ]
    fixed = noise(1, 5)
    policy.reset()
    actions = [policy.select_action(frame, noise=fixed) for frame in frames]
    assert len(calls) == 3  # steps 0, n, 2n
    assert all(a.shape == (A,) and a.dtype == np.float32 for a in actions)
    # the first n actions are steps n_obs_steps-1 ... of one chunk (history padded with frame 0)
    first = {k: torch.as_tensor(np.stack([frames[0][k]] * T))[None] for k in policy.input_keys}
    first["task"] = [INSTRUCTION]
    with torch.no_grad():
        chunk = predict(first, fixed)[0].numpy()
    np.testing.assert_array_equal(np.stack(actions[:n_steps]), chunk[T - 1 : T - 1 + n_steps])
    policy.reset()
    policy.select_action(frames[0], noise=fixed)
    assert len(calls) == 4  # reset empties the queue


@pytest.mark.parametrize("name", NAMES)
def test_missing_normalization_stat_raises_naming_the_key(name):
    stats = make_stats()
    del stats["observation.environment_state"]["max"]
    with pytest.raises(NormalizationError, match=r"'observation.environment_state' has no 'max'"):
        make_policy(name, stats=stats)
    stats = make_stats()
    del stats["action"]
    with pytest.raises(NormalizationError, match=r"'action' has no 'min'"):
        make_policy(name, stats=stats)


@pytest.mark.parametrize("name", NAMES)
def test_invalid_config_raises_naming_the_fields(name):
    with pytest.raises(ValueError, match=r"n_action_steps=20.*horizon=8"):
        make_policy(name, n_action_steps=20)
    fields = {f.name for f in dataclasses.fields(POLICIES.get(name).config_class)}
    if "down_dims" in fields:  # the U-Net halves the chunk per level
        with pytest.raises(ValueError, match=r"horizon=6.*down_dims=\(32, 64, 128\)"):
            make_policy(name, horizon=6, n_action_steps=2, down_dims=(32, 64, 128))


@pytest.mark.parametrize("name", NAMES)
def test_batch_with_missing_or_misshaped_key_is_named(name):
    policy = make_policy(name)
    batch = make_batch(policy.features, 2)
    with pytest.raises(FeatureMismatchError, match="observation.environment_state"):
        policy.compute_loss(
            {k: v for k, v in batch.items() if k != "observation.environment_state"}
        )
    batch["observation.state"] = batch["observation.state"][:, :1]
    with pytest.raises(FeatureMismatchError, match="'observation.state': expected"):
        policy.compute_loss(batch)


# ---------------------------------------------------------------- family specifics
def test_diffusion_ddpm_sampler_is_a_function_of_the_initial_noise():
    policy = make_policy("diffusion", sampler="ddpm", num_inference_steps=5).eval()
    batch = make_batch(policy.features, 2)
    with torch.no_grad():
        a, b = (policy.predict_chunk(batch, noise(2, 0)) for _ in range(2))
        c = policy.predict_chunk(batch, noise(2, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_diffusion_defaults_follow_the_paper():
    cfg = POLICIES.get("diffusion").config_class()
    assert (cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps) == (2, 16, 8)
    assert (cfg.num_train_timesteps, cfg.beta_schedule, cfg.prediction_type) == (
        100,
        "squaredcos_cap_v2",
        "epsilon",
    )
    assert cfg.clip_sample and cfg.sampler == "ddim" and cfg.num_inference_steps == 10
    assert cfg.down_dims == (256, 512, 1024) and (cfg.kernel_size, cfg.n_groups) == (5, 8)
    assert POLICIES.get("diffusion").config_class(sampler="ddpm").num_inference_steps == 100
    assert POLICIES.get("meanflow").config_class().num_inference_steps == 1


def test_resnet18_camera_encoder_uses_groupnorm_and_keypoints():
    from policies.common.encoders import CameraEncoder, SpatialSoftmax

    torch.manual_seed(0)
    encoder = CameraEncoder((96, 96, 3), crop_ratio=0.9, backbone="resnet18", feature_dim=64)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in encoder.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in encoder.modules())
    assert isinstance(encoder.pool, SpatialSoftmax) and encoder.crop == (86, 86)
    images = torch.rand(2, 96, 96, 3)
    assert encoder.eval()(images).shape == (2, 64)
    assert torch.equal(encoder(images), encoder(images))  # center crop at evaluation
    crops = encoder.train().random_crop(images.permute(0, 3, 1, 2))
    assert crops.shape == (2, 3, 86, 86)


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_image_obs_steps_encodes_only_the_newest_frames(name):
    torch.manual_seed(0)
    full, newest = make_policy(name, camera=True), make_policy(name, camera=True, image_obs_steps=1)
    enc_full, enc_newest = full.obs_encoder, newest.obs_encoder
    state_dims = 7 * T  # observation.state (5) + environment_state (2) at every step
    assert enc_full.out_dim == state_dims + 16 * T and enc_newest.out_dim == state_dims + 16
    batch = make_batch(newest.features, 2)
    older = dict(batch)
    older[CAMERA] = batch[CAMERA].clone()
    older[CAMERA][:, 0] = 255 - older[CAMERA][:, 0]  # change only the older frame
    for policy, older_matters in ((full.eval(), True), (newest.eval(), False)):
        with torch.no_grad():
            a = policy.encode_observations(batch)
            b = policy.encode_observations(older)
        assert torch.equal(a, b) is not older_matters
    with pytest.raises(ValueError, match=r"image_obs_steps=3 must be in \[1, n_obs_steps=2\]"):
        make_policy(name, camera=True, image_obs_steps=3)


def test_observation_layout_is_step_major_state_then_cameras():
    """The conditioning layout checkpoints were trained with: per step, state then cameras."""
    policy = make_policy("flow", camera=True).eval()
    batch = make_batch(policy.features, 1)
    enc = policy.obs_encoder
    with torch.no_grad():
        out = policy.encode_observations(batch)[0]
        frames = policy.normalizer.normalize(CAMERA, batch[CAMERA])[0]
        cam = enc.cameras[CAMERA.replace(".", "__")](frames)  # [T, 16]
    state = torch.cat([batch["observation.state"], batch["observation.environment_state"]], -1)
    normed = torch.cat(
        [
            policy.normalizer.normalize("observation.state", batch["observation.state"]),
            policy.normalizer.normalize(
                "observation.environment_state", batch["observation.environment_state"]
            ),
        ],
        -1,
    )[0]
    assert state.shape[-1] == 7
    expected = torch.cat([torch.cat([normed[t], cam[t]]) for t in range(T)])
    torch.testing.assert_close(out, expected)


def test_ema_power_decay_copy_swap_and_state_dict(tmp_path):
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9, power=0.75)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # first step copies (decay 0 at step 0 of the warm-up)
    assert torch.allclose(ema.shadow["weight"], start + 1.0)
    with torch.no_grad():
        model.weight.add_(1.0)
    decay = ema.current_decay()
    assert 0.0 < decay < 0.9
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], start + 1.0 + (1.0 - decay))
    with ema.average_parameters(model):
        assert torch.allclose(model.weight, ema.shadow["weight"])
    assert torch.allclose(model.weight, start + 2.0)  # restored
    save_file(ema.state_dict(), str(tmp_path / "ema.safetensors"))
    other = EMA(nn.Linear(3, 2))
    other.load_state_dict(load_file(str(tmp_path / "ema.safetensors")))
    assert other.step == 2 and torch.equal(other.shadow["weight"], ema.shadow["weight"])
    target = nn.Linear(3, 2)
    other.copy_to(target)
    assert torch.equal(target.weight, ema.shadow["weight"])
    with pytest.raises(KeyError, match="missing"):
        EMA(nn.Linear(4, 2, bias=False)).load_state_dict(ema.state_dict())
