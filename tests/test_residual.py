"""Residual RL: exact base reproduction at init, the residual bound, demo labels, export and serving.

The base is an untrained ``toy_mlp`` on ``reach`` (4-D action, chunked 2 of 4): its actions are
arbitrary but deterministic, which is all these tests need.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_policy

from robot_learning.cli import main
from robot_learning.collect import CollectConfig, collect
from robot_learning.envs import TaskConfig, make_env
from robot_learning.evaluation import EvalConfig, TorchPolicySource, evaluate
from robot_learning.policy import Policy
from robot_learning.rl import FinetuneConfig, finetune
from robot_learning.rl.algos.residual import Residual, ResidualConfig
from robot_learning.rl.base_policy import (
    BASE_ACTION,
    BASE_SNAPSHOT,
    BaseActionWrapper,
    label_episode,
    load_base_source,
    snapshot_base,
)
from robot_learning.rl.demos import load_demos
from robot_learning.rl.networks import action_feature, obs_dim, obs_vector, state_keys
from robot_learning.rl.observations import LearnerObservations
from robot_learning.runtime import BundleError, load_bundle
from ros_nodes.control import PolicyController

REACH = TaskConfig(name="reach", max_episode_steps=30)


@pytest.fixture(scope="module", autouse=True)
def _toy_one_thread():
    with toy_policy.registered_one_thread():
        yield


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    env = make_env(REACH)
    spec = env.features.select([*env.features.observation_keys, "action"])
    return toy_policy.untrained_checkpoint(
        spec, tmp_path_factory.mktemp("base") / "reach", horizon=4, n_action_steps=2
    )


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "reach"
    collect(CollectConfig(task=REACH, out=str(out), episodes=2), progress=False)
    return out


def _learner(base: Path, **overrides) -> tuple[Residual, BaseActionWrapper, list[str]]:
    env = BaseActionWrapper(make_env(REACH), load_base_source(base))
    keys = state_keys(env.features)
    algo = Residual(
        ResidualConfig(base=str(base), hidden=(32, 32), **overrides),
        obs_dim(env.features, keys),
        action_feature(env.features),
    )
    return algo, env, keys


def _tiny_config(
    out: Path, algo: str = "residual", task: TaskConfig = REACH, **kw
) -> FinetuneConfig:
    """A test-sized finetune run: no periodic evaluations or checkpoints, one thread."""
    return FinetuneConfig(
        task=task,
        out=str(out),
        algo=algo,
        eval_every=0,
        eval_episodes=1,
        save_every=0,
        threads=1,
        **kw,
    )


def test_base_action_is_the_last_observation_key_with_the_action_bounds(base):
    _, env, keys = _learner(base)
    assert keys[-1] == BASE_ACTION
    assert env.features[BASE_ACTION].low == env.features["action"].low
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)


def test_residual_at_initialisation_reproduces_the_base_policy_exactly(base):
    algo, env, keys = _learner(base)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=100_000)
    rewards, done = [], False
    while not done:
        action = algo.act(
            torch.as_tensor(obs_vector({k: v[None] for k, v in obs.items()}, keys)), explore=False
        )[0]
        np.testing.assert_array_equal(action.numpy(), np.clip(obs[BASE_ACTION], low, high))
        obs, reward, terminated, truncated, _ = env.step(action.numpy())
        rewards.append(reward)
        done = terminated or truncated
    # the same episode as evaluating the base policy alone (its own chunking, same seed)
    result = evaluate(
        TorchPolicySource(Policy.load(base)), EvalConfig(task=REACH, episodes=1, num_envs=1)
    )
    assert result.lengths == [len(rewards)]
    assert result.max_rewards[0] == max(rewards)


def test_residual_magnitude_never_exceeds_its_scale(base):
    algo, env, keys = _learner(base, scale=0.1)
    torch.manual_seed(0)
    torch.nn.init.normal_(algo.actor.net[-1].weight, std=10.0)  # a trained, saturating residual
    low, high = env.action_space.low, env.action_space.high
    bound = 0.1 * (high - low)
    obs = torch.randn(
        512, len(obs_vector({k: v[None] for k, v in env.reset(seed=0)[0].items()}, keys)[0])
    )
    obs[:, -4:] = torch.as_tensor(
        low + (high - low) * np.random.default_rng(0).uniform(size=(512, 4)), dtype=torch.float32
    )
    base_action = obs[:, -4:].numpy()
    worst = 0.0
    for explore in (False, True):
        action = algo.act(obs, explore=explore).numpy()
        ratio = np.abs(action - np.clip(base_action, low, high)) / bound
        assert ratio.max() <= 1 + 1e-5, explore
        worst = max(worst, float(ratio.max()))
    assert worst > 0.9  # the bound is reached, so the check above is not vacuous


def test_demonstrations_get_the_base_actions_the_wrapper_would_have_given(base, demos):
    algo, env, keys = _learner(base)
    spec = env.features.select([*keys, "action"])
    source = load_base_source(base)
    buf = load_demos(
        demos, spec, derive=lambda i, obs: {BASE_ACTION: label_episode(source, obs, seed=i)}
    )
    from robot_learning.datasets import LeRobotDataset

    ep = LeRobotDataset(demos).episode(0)
    expected = label_episode(source, {k: ep[k] for k in source.input_keys}, seed=0)
    rows = np.arange(len(expected) - 1)
    got = buf.gather(rows, np.zeros_like(rows), n_step=1, gamma=0.9)["obs"][BASE_ACTION]
    np.testing.assert_array_equal(got, expected[: len(rows)])
    # the wrapper, replaying the demo's actions from the demo's seed, sees the same base actions
    obs, _ = env.reset(seed=0)
    seen = [obs[BASE_ACTION]]
    for action in ep["action"][:-1]:
        seen.append(env.step(action)[0][BASE_ACTION])
    np.testing.assert_allclose(np.stack(seen), expected, atol=1e-6)


def test_without_a_base_the_error_says_what_to_pass():
    with pytest.raises(ValueError, match=r"algo.base="):
        ResidualConfig()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_base_source("/nonexistent/base")


@pytest.fixture(scope="module")
def residual_run(base, demos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "residual"
    finetune(
        _tiny_config(
            out,
            env_steps=200,
            warmup_steps=50,
            batch_size=32,
            buffer_size=2000,
            n_step=3,
            demos=str(demos),
            algo_overrides={
                "base": str(base),
                "hidden": [32, 32],
                "critic_warmup": 0,
                "actor_lr": 1e-2,
            },
        )
    )
    return out


def test_residual_exports_as_one_bundle_that_serves_base_plus_residual(
    residual_run, base, tmp_path
):
    out = tmp_path / "bundle"
    assert main(["export", f"checkpoint={residual_run}", f"out={out}"]) == 0
    spec = json.loads((out / "policy.json").read_text())
    assert spec["policy"] == "residual(toy_mlp)" and spec["residual"]["scale"] == 0.1
    assert {"model.onnx", "residual.onnx", "torch/model.safetensors"} <= set(spec["files"])
    # the learner (from its checkpoint) and the bundle act the same along one episode
    from robot_learning.rl.learner_state import load_learner

    algo, env, keys = _learner(base, critic_warmup=0)
    algo.load_state_dict(load_learner(residual_run / "checkpoints").state["algo"])
    bundle = load_bundle(out, runtime="onnxruntime")
    bundle.reset()
    obs, _ = env.reset(seed=5)
    moved = 0.0
    for _ in range(12):
        want = algo.act(
            torch.as_tensor(obs_vector({k: v[None] for k, v in obs.items()}, keys)), explore=False
        )[0].numpy()
        got = bundle.select_action({k: v for k, v in obs.items() if k != BASE_ACTION})
        np.testing.assert_allclose(got, want, atol=1e-5)
        moved = max(moved, float(np.abs(want - obs[BASE_ACTION]).max()))
        obs = env.step(want)[0]
    assert moved > 1e-3  # the trained residual is not zero, so the comparison covers it
    # evaluation and the ROS 2 node's controller apply the residual too (same code path, refine)
    controller = PolicyController(
        load_bundle(out, runtime="onnxruntime"), period_s=0.05, stale_after_s=1.0
    )
    obs, _ = make_env(REACH).reset(seed=5)
    for key in controller.keys:
        assert controller.offer(key, obs[key], stamp_ns=1, now_s=0.0) is None
    bundle.reset()
    np.testing.assert_allclose(controller.step().actions[0], bundle.select_action(obs), atol=1e-6)
    assert (
        main(["eval", f"bundle={out}", "episodes=2", "num_envs=1", f"out={tmp_path / 'eval'}"]) == 0
    )
    # the torch reference runtime serves the same bundle (torch/ holds the base; the residual runs on onnxruntime)
    reference = load_bundle(out, runtime="torch")
    reference.reset()
    bundle.reset()
    obs, _ = make_env(REACH).reset(seed=7)
    np.testing.assert_allclose(reference.select_action(obs), bundle.select_action(obs), atol=1e-5)


def test_a_tampered_residual_graph_fails_at_load(residual_run, tmp_path):
    out = tmp_path / "bundle"
    assert main(["export", f"checkpoint={residual_run}", f"out={out}", "include_torch=false"]) == 0
    data = bytearray((out / "residual.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "residual.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="residual.onnx does not match its SHA-256"):
        load_bundle(out)


@pytest.mark.parametrize("algo", ["sac", "td3", "dsac_t", "rlpd"])
def test_rl_actors_export_and_match_the_learner(algo, tmp_path):
    pendulum = TaskConfig(name="pendulum", backend="gymnasium", gym_id="Pendulum-v1")
    run = tmp_path / "run"
    small = {"num_q": 3, "utd_ratio": 1} if algo == "rlpd" else {}
    finetune(
        _tiny_config(
            run,
            algo,
            task=pendulum,
            env_steps=120,
            warmup_steps=40,
            batch_size=16,
            buffer_size=500,
            algo_overrides={"hidden": [16, 16], **small},
        )
    )
    out = tmp_path / "bundle"
    assert main(["export", f"checkpoint={run}", f"out={out}", "control_rate_hz=20"]) == 0
    bundle = load_bundle(out)
    assert (bundle.horizon, bundle.n_obs_steps, bundle.uses_noise) == (1, 1, False)
    from robot_learning.rl.learner_state import load_learner
    from robot_learning.rl.loop import build_algo

    env = make_env(pendulum)
    keys = state_keys(env.features)
    learner = build_algo(
        FinetuneConfig(
            task=pendulum, out=str(run), algo=algo, algo_overrides={"hidden": [16, 16], **small}
        ),
        LearnerObservations(env.features),
        action_feature(env.features),
    )
    learner.load_state_dict(load_learner(run / "checkpoints").state["algo"])
    obs = {k: np.stack([env.reset(seed=s)[0][k] for s in range(5)]) for k in keys}
    want = learner.act(torch.as_tensor(obs_vector(obs, keys)), explore=False).numpy()
    got = bundle.predict_chunk({k: v[:, None] for k, v in obs.items()})[:, 0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_residual_bundle_runs_in_the_ros2_policy_node_unchanged(residual_run, tmp_path):
    """deploy (sim_robot_node + policy_node over DDS, lockstep) == in-process evaluation of the bundle."""
    pytest.importorskip("rclpy")
    import random

    bundle = tmp_path / "bundle"
    assert (
        main(["export", f"checkpoint={residual_run}", f"out={bundle}", "include_torch=false"]) == 0
    )
    out = tmp_path / "deploy"
    domain_id = random.SystemRandom().randint(100, 232)
    assert (
        main(
            [
                "deploy",
                f"bundle={bundle}",
                "robot=sim",
                "task=reach",
                "task.max_episode_steps=30",
                "episodes=2",
                "runtime=onnxruntime",
                "realtime=false",
                f"domain_id={domain_id}",
                f"out={out}",
            ]
        )
        == 0
    )
    report = json.loads((out / "deploy.json").read_text())
    policy = load_bundle(bundle, runtime="onnxruntime")
    result = evaluate(policy, EvalConfig(task=REACH, episodes=2, num_envs=1))
    assert report["episode_lengths"] == result.lengths
    assert report["max_rewards"] == pytest.approx(result.max_rewards, abs=1e-6)


def test_residual_runs_on_a_camera_task_reading_only_its_states(tmp_path):
    """The base may read cameras; the residual learns on the state keys and the buffer holds no images."""
    pixels = TaskConfig(name="reach", obs="pixels", image_size=32, max_episode_steps=15)
    features = make_env(pixels).features
    assert features.image_keys
    base = toy_policy.untrained_checkpoint(
        features.select(["observation.state", "action"]), tmp_path / "base"
    )
    out = tmp_path / "run"
    result = finetune(
        _tiny_config(
            out,
            task=pixels,
            env_steps=30,
            warmup_steps=10,
            batch_size=8,
            buffer_size=200,
            algo_overrides={"base": str(base), "hidden": [8], "critic_warmup": 0},
        )
    )
    assert result.env_steps == 30 and result.updates == 20
    from robot_learning.rl.learner_state import load_learner

    replay = load_learner(out / "checkpoints").replay
    assert not any("images" in key for key in replay)
    assert any(BASE_ACTION in key for key in replay)


def test_the_run_keeps_its_own_copy_of_the_base(base, tmp_path):
    original = tmp_path / "base"
    shutil.copytree(base, original)
    run = tmp_path / "run"
    cfg = _tiny_config(
        run,
        env_steps=60,
        warmup_steps=20,
        batch_size=16,
        buffer_size=500,
        algo_overrides={"base": str(original), "hidden": [16, 16], "critic_warmup": 0},
    )
    finetune(cfg)
    copy = run / BASE_SNAPSHOT
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "model.safetensors"]
    assert (copy / "model.safetensors").read_bytes() == (
        original / "model.safetensors"
    ).read_bytes()
    shutil.rmtree(original)  # moved or deleted: resuming and exporting still work
    assert finetune(dataclasses.replace(cfg, env_steps=100, resume=True)).env_steps == 100
    out = tmp_path / "bundle"
    assert main(["export", f"checkpoint={run}", f"out={out}", "include_torch=false"]) == 0
    obs, _ = make_env(REACH).reset(seed=1)
    assert load_bundle(out).select_action(obs).shape == (4,)
    # an earlier checkpoint of the run exports too
    early = tmp_path / "bundle_60"
    step = run / "checkpoints" / "step_000060"
    assert main(["export", f"checkpoint={step}", f"out={early}", "include_torch=false"]) == 0
    sources = [json.loads((b / "policy.json").read_text())["source"] for b in (early, out)]
    assert [s["env_steps"] for s in sources] == [60, 100]
    assert sources[0]["checkpoint"] == str(step.resolve())


def test_a_bundle_base_is_copied_whole_and_verified(base, tmp_path):
    bundle = tmp_path / "base_bundle"
    assert main(["export", f"checkpoint={base}", f"out={bundle}", "include_torch=false"]) == 0
    copy = snapshot_base(bundle, tmp_path / "run", fresh=True)
    assert {p.name for p in copy.iterdir()} == {p.name for p in bundle.iterdir()}
    assert load_bundle(copy).input_keys == load_bundle(bundle).input_keys
    (bundle / "model.onnx").write_bytes(b"broken")
    assert snapshot_base(bundle, tmp_path / "run", fresh=False) == copy  # resume: the copy stands
    with pytest.raises(BundleError, match="model.onnx"):
        snapshot_base(bundle, tmp_path / "run", fresh=True)  # a fresh run verifies what it copies
