"""Pixel RL (DrQ): random shifts, one encoder shared by the critics, zoo encoders, runs and export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from robot_learning.envs import TaskConfig, make_env
from robot_learning.rl.algos import Batch
from robot_learning.rl.algos.rlpd import RLPD, RLPDConfig
from robot_learning.rl.encoders import EncoderConfig, random_shift
from robot_learning.rl.networks import action_feature
from robot_learning.rl.observations import LearnerObservations

PIXELS = {"name": "lift", "obs": "pixels", "image_size": 32}


@pytest.fixture(scope="module")
def spec():
    env = make_env(TaskConfig.from_dict(PIXELS))
    features = env.features
    env.close()
    return features


def _obs_batch(spec, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for key in spec.observation_keys:
        shape = (n, *spec[key].shape)
        out[key] = (
            rng.integers(0, 256, shape, dtype=np.uint8)
            if spec[key].is_image
            else rng.standard_normal(shape).astype(np.float32)
        )
    return out


def _batch(spec, obs: LearnerObservations, n: int = 16, seed: int = 0, pad: int = 4) -> Batch:
    act = action_feature(spec)
    rng = np.random.default_rng(seed)
    sample = {
        "action": rng.uniform(act.low, act.high, (n, *act.shape)).astype(np.float32),
        "reward": rng.standard_normal(n).astype(np.float32),
        "discount": np.full(n, 0.99, np.float32),
    }
    return Batch.from_numpy(
        sample,
        obs.tensors(_obs_batch(spec, n, seed), shift_pad=pad),
        obs.tensors(_obs_batch(spec, n, seed + 1), shift_pad=pad),
    )


def _rlpd(spec, encoder_cfg: EncoderConfig | None = None, **kw) -> tuple[RLPD, LearnerObservations]:
    obs = LearnerObservations(spec)
    cfg = RLPDConfig(
        hidden=(32,), num_q=3, utd_ratio=1, encoder=encoder_cfg or EncoderConfig(), **kw
    )
    encoder = obs.encoder(cfg.encoder)
    return RLPD(cfg, encoder.out_dim, action_feature(spec), encoder=encoder), obs


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


# ----------------------------------------------------------------------------- augmentation
def test_random_shift_translates_each_frame_within_the_pad():
    torch.manual_seed(0)
    frames = torch.arange(8 * 10 * 12 * 3).reshape(8, 10, 12, 3) % 251
    frames = frames.to(torch.uint8)
    shifted = random_shift(frames, pad=2)
    assert shifted.shape == frames.shape and shifted.dtype == torch.uint8
    padded = nn.functional.pad(frames.permute(0, 3, 1, 2).float(), (2, 2, 2, 2), mode="replicate")
    padded = padded.permute(0, 2, 3, 1).to(torch.uint8)
    offsets = []
    for b in range(len(frames)):
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[b, dy : dy + 10, dx : dx + 12], shifted[b])
        ]
        assert hits, f"frame {b} is not a shifted window of its padded frame"
        offsets.append(hits[0])
    assert len(set(offsets)) > 1, "every frame got the same shift"
    assert torch.equal(random_shift(frames, pad=0), frames)


def test_observations_are_a_dict_with_state_and_uint8_frames(spec):
    obs = LearnerObservations(spec)
    assert obs.pixels and obs.image_keys == list(spec.image_keys)
    x = obs.tensors(_obs_batch(spec, 4, 0))
    assert x["state"].shape == (4, obs.state_dim) and x["state"].dtype == torch.float32
    for key in spec.image_keys:
        assert x[key].dtype == torch.uint8 and x[key].shape == (4, *spec[key].shape)
    state_only = LearnerObservations(spec, skip_images=True)
    assert not state_only.pixels and state_only.tensors(_obs_batch(spec, 4, 0)).shape == (
        4,
        obs.state_dim,
    )


# ----------------------------------------------------------------------------- shared encoder
def test_one_encoder_serves_every_critic_and_the_actor(spec):
    algo, _ = _rlpd(spec)
    assert algo.actor.encoder is algo.critic.encoder
    assert algo.critic_target.encoder is not algo.critic.encoder
    convs = [m for m in algo.critic.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 * len(spec.image_keys)  # "fast" trunk, once per camera, not per critic
    encoder_ids = {id(p) for p in algo.critic.encoder.parameters()}
    actor_optimised = {id(p) for g in algo.actor_optim.param_groups for p in g["params"]}
    assert not encoder_ids & actor_optimised


def test_the_critic_loss_trains_the_encoder_and_the_actor_loss_does_not(spec):
    torch.manual_seed(0)
    algo, obs = _rlpd(spec, critic_lr=0.0)  # Adam with lr 0: only the actor can move weights
    encoder, head = _params(algo.critic.encoder), _params(algo.actor.net)
    for seed in range(3):
        algo.update(_batch(spec, obs, seed=seed))
    assert not _changed(encoder, algo.critic.encoder)
    assert _changed(head, algo.actor.net)

    algo, obs = _rlpd(spec)
    encoder = _params(algo.critic.encoder)
    algo.update(_batch(spec, obs))
    assert _changed(encoder, algo.critic.encoder)


# ----------------------------------------------------------------------------- zoo encoders
@pytest.fixture(scope="module")
def zoo_policy(spec, tmp_path_factory):
    """A tiny randomly initialised flow policy on the task's features, saved as a checkpoint."""
    from robot_learning.policy import POLICIES

    cls = POLICIES.get("flow")
    cfg = cls.config_class(
        horizon=8, n_obs_steps=1, n_action_steps=4, down_dims=(16, 32), time_embed_dim=16,
        vision_backbone="small", num_keypoints=4, image_feature_dim=8,
    )  # fmt: skip
    keys = [*spec.observation_keys, "action"]
    stats = {
        k: {"min": [-1.0] * spec[k].shape[0], "max": [1.0] * spec[k].shape[0]}
        for k in keys
        if not spec[k].is_image
    }
    policy = cls(cfg, spec.select(keys), stats)
    path = tmp_path_factory.mktemp("zoo") / "ckpt"
    policy.save(path)
    return path, policy


def test_a_frozen_zoo_encoder_starts_equal_and_stays_fixed(spec, zoo_policy):
    path, policy = zoo_policy
    torch.manual_seed(0)
    algo, obs = _rlpd(spec, EncoderConfig(pretrained=str(path), freeze=True))
    key = spec.image_keys[0].replace(".", "__")
    zoo = policy.obs_encoder.cameras[key].state_dict()
    trunk = algo.critic.encoder.cameras[key].trunk
    assert all(torch.equal(zoo[k], v) for k, v in trunk.state_dict().items())
    before = _params(algo.critic.encoder)
    for seed in range(2):
        algo.update(_batch(spec, obs, seed=seed))
    changed = _changed(before, algo.critic.encoder)
    assert changed and all(".project." in k for k in changed)

    algo, obs = _rlpd(spec, EncoderConfig(pretrained=str(path)))  # not frozen: fine-tuned
    before = _params(algo.critic.encoder)
    algo.update(_batch(spec, obs))
    assert any(".trunk." in k for k in _changed(before, algo.critic.encoder))


def test_encoder_settings_that_cannot_work_are_errors(spec, zoo_policy, tmp_path):
    with pytest.raises(ValueError, match="freeze=true needs algo.encoder.pretrained"):
        EncoderConfig(freeze=True)
    with pytest.raises(ValueError, match="trunk='resnet'"):
        EncoderConfig(trunk="resnet")
    with pytest.raises(FileNotFoundError, match="algo.encoder.pretrained"):
        _rlpd(spec, EncoderConfig(pretrained=str(tmp_path / "nothing")))
    bigger = make_env(TaskConfig.from_dict({**PIXELS, "image_size": 48})).features
    with pytest.raises(ValueError, match="task.image_size"):
        _rlpd(bigger, EncoderConfig(pretrained=str(zoo_policy[0])))


# ----------------------------------------------------------------------------- runs
SMALL_RUN = [
    "task=lift",
    "task.obs=pixels",
    "task.image_size=32",
    "algo.hidden=[32,32]",
    "batch_size=16",
    "warmup_steps=30",
    "eval_every=0",
    "eval_episodes=1",
    "threads=1",
]


def _algo_state(run) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    last = run / "checkpoints" / "last"
    target = last.resolve() if last.is_symlink() else last
    return {
        k: v
        for f in sorted(target.glob("*.safetensors"))
        if not f.name.startswith("replay")
        for k, v in load_file(f).items()
    }


def test_pixel_finetune_resumes_exactly_and_exports_a_bundle_that_reads_the_cameras(tmp_path):
    from robot_learning.cli import main

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert (
        main(
            ["finetune", "algo=sac", *SMALL_RUN, f"out={straight}", "env_steps=70", "save_every=0"]
        )
        == 0
    )
    assert (
        main(["finetune", "algo=sac", *SMALL_RUN, f"out={split}", "env_steps=40", "save_every=0"])
        == 0
    )
    assert (
        main(["finetune", "algo=sac", *SMALL_RUN, f"out={split}", "env_steps=70", "resume=true"])
        == 0
    )
    a, b = _algo_state(straight), _algo_state(split)
    assert a.keys() == b.keys() and any("encoder" in k for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    bundle = tmp_path / "bundle"
    assert main(["export", f"checkpoint={straight}", f"out={bundle}"]) == 0
    spec = json.loads((bundle / "policy.json").read_text())
    inputs = {i["name"]: i["dtype"] for i in spec["inputs"]}
    assert (
        inputs["observation.images.front"] == "uint8" and inputs["observation.state"] == "float32"
    )
    assert spec["export"]["parity_max_abs_error"] < 1e-4
    assert main(["eval", f"bundle={bundle}", "episodes=1", "threads=1"]) == 0


def test_state_only_algorithms_name_the_pixel_ones(tmp_path, capsys):
    from robot_learning.cli import main

    assert main(["finetune", "algo=td3", *SMALL_RUN, f"out={tmp_path / 'r'}", "env_steps=40"]) != 0
    err = capsys.readouterr().err
    assert "algo=td3 learns from state observations only" in err and "rlpd|sac" in err


# ----------------------------------------------------------------------------- HIL
def test_hil_contract_carries_the_encoder_and_weights_fit_the_actor(spec):
    from robot_learning.hil.contract import HilContract, load_payload, weights_payload
    from robot_learning.hil.transport import sha256_hex

    state = HilContract.from_spec(spec, (32,))
    pixels = HilContract.from_spec(spec, (32,), EncoderConfig())
    assert state.keys == state.observations.state_keys and set(spec.image_keys) <= set(pixels.keys)
    assert set(spec.image_keys) <= set(pixels.schema.observation)
    assert pixels.arch_hash != state.arch_hash
    assert (
        pixels.arch_hash
        != HilContract.from_spec(spec, (32,), EncoderConfig(feature_dim=8)).arch_hash
    )

    torch.manual_seed(0)
    learner, obs = _rlpd(spec)  # hidden (32,), like the contract
    learner.update(_batch(spec, obs))
    payload = weights_payload(learner.actor)
    actor = pixels.build_actor()
    load_payload(actor, payload, sha256_hex(payload))
    x = pixels.observations.single({k: v[0] for k, v in _obs_batch(spec, 1, 5).items()})
    want = learner.actor(x, deterministic=True)[0]
    np.testing.assert_allclose(actor(x, deterministic=True)[0].detach(), want.detach(), atol=1e-6)


def test_a_replay_buffer_larger_than_memory_is_refused_with_a_size_that_fits(spec):
    from robot_learning.rl.replay import ReplayBuffer, available_memory, row_bytes

    if available_memory() is None:
        pytest.skip("no /proc/meminfo on this system")
    with pytest.raises(ValueError, match=r"pass a smaller buffer_size= \(e.g. buffer_size=\d+"):
        ReplayBuffer(spec.select([*spec.observation_keys, "action"]), 10**10)
    assert row_bytes(spec) > 2 * 32 * 32 * 3  # two uint8 cameras per row
    assert len(ReplayBuffer(spec.select([*spec.observation_keys, "action"]), 1000)) == 0
