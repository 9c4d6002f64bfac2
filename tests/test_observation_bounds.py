"""Observation bounds: every task declares them, experts stay inside, runtimes reject what is outside.

Registry-driven: a new task whose observations carry no physical bounds fails here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import toy_policy

from robot_learning.bounds import bounds_violation, observation_bounds
from robot_learning.cli import main
from robot_learning.config import load_config, task_config
from robot_learning.envs import ADAPTER_KEYS, EXPERTS, TASKS, make_env, make_expert
from robot_learning.features import ACTION, Feature, FeatureMismatchError, FeatureSpec
from robot_learning.runtime import load_bundle
from robot_learning.runtime.bundle_policy import ObservationError
from ros_nodes.control import PolicyController, check_observation

#: every built-in (backend, task): all registry entries except the adapters (gymnasium, isaacgym)
BUILTIN = sorted(tuple(k.split("/", 1)) for k in TASKS.names() if k not in ADAPTER_KEYS.values())
WITH_EXPERT = [(b, t) for b, t in BUILTIN if t in EXPERTS]
STATE = "observation.state"
ENV_STATE = "observation.environment_state"


def _build(backend: str, task: str, **overrides):
    if backend == "pybullet":
        pytest.importorskip("pybullet")
    return make_env(task, backend=backend, **overrides)


def _strip_observation_bounds(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` as recorded before observations carried bounds."""
    return FeatureSpec(
        {
            k: f if k == ACTION else dataclasses.replace(f, low=None, high=None)
            for k, f in spec.items()
        }
    )


# ------------------------------------------------------------------ every task declares bounds
@pytest.mark.parametrize("mode", [{"obs": "state"}, {"obs": "pixels", "image_size": 32}])
@pytest.mark.parametrize(("backend", "task"), BUILTIN, ids=["/".join(t) for t in BUILTIN])
def test_every_task_observation_feature_has_finite_bounds(backend, task, mode):
    env = _build(backend, task, **mode)
    try:
        for key in env.features.observation_keys:
            feat = env.features[key]
            if feat.is_image:
                continue
            assert feat.low is not None, f"{backend}/{task}: {key} declares no bounds"
            low, high = np.asarray(feat.low), np.asarray(feat.high)
            assert np.all(np.isfinite(low) & np.isfinite(high)), f"{key}: infinite bounds"
            assert np.all(low < high), f"{backend}/{task}: {key} has an empty range"
            box = env.observation_space[key]  # the gymnasium space carries them too
            np.testing.assert_allclose(box.low.ravel(), low, rtol=1e-6)
    finally:
        env.close()


def test_gymnasium_adapter_takes_finite_bounds_from_the_observation_space():
    env = make_env(task_config(load_config("collect", ["task=pendulum", "out=/tmp/unused"])))
    try:
        feat = env.features[STATE]
        space = env.env.observation_space
        assert feat.low == tuple(space.low.astype(float)) and feat.high[2] == 8.0
        obs, _ = env.reset(seed=0)
        for _ in range(50):
            assert bounds_violation(STATE, obs[STATE], observation_bounds(feat)) is None
            obs, *_ = env.step(env.action_space.sample())
    finally:
        env.close()


# ------------------------------------------------------------------ 100 % of frames inside
def _assert_inside(env, obs, where: str) -> None:
    for key, value in obs.items():
        feat = env.features[key]
        if feat.is_image:
            continue
        reason = bounds_violation(key, value, observation_bounds(feat), feat.names)
        assert reason is None, f"{where}: {reason}"


def _episode(env, seed: int, expert) -> int:
    obs, _ = env.reset(seed=seed)
    _assert_inside(env, obs, f"seed {seed} reset")
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    if expert is not None:
        expert.reset(seed=seed)
    for step in range(env.max_episode_steps):
        action = expert.act(obs) if expert is not None else rng.uniform(low, high)
        obs, _, terminated, truncated, _ = env.step(np.asarray(action, np.float32))
        _assert_inside(env, obs, f"seed {seed} step {step}")
        if terminated or truncated:
            return step + 1
    return env.max_episode_steps


@pytest.mark.parametrize(("backend", "task"), WITH_EXPERT, ids=["/".join(t) for t in WITH_EXPERT])
def test_expert_and_random_frames_stay_inside_the_bounds(backend, task):
    env = _build(backend, task)
    try:
        assert env.features[STATE].low is not None, f"{backend}/{task} declares no bounds"
        expert = make_expert(env)
        frames = sum(_episode(env, seed, expert) for seed in range(5))
        frames += sum(_episode(env, seed, None) for seed in (10, 11, 12))
        assert frames > 0
    finally:
        env.close()


def test_a_gripper_opened_past_its_limit_reads_at_the_declared_bound():
    """Soft finger limits let the simulated gripper reach 0.086 m (seen in 100-episode deploys),
    beyond the declared 0.085 m: the policy node then refused every observation."""
    env = _build("mujoco", "lift")
    try:
        obs, _ = env.reset(seed=0)
        env.unwrapped.data.qpos[env.unwrapped._finger_qadr] = 0.0431  # 0.0862 m open
        obs = env.unwrapped._get_obs()
        width = env.features[STATE].names.index("gripper_width")
        assert obs[STATE][width] == pytest.approx(env.features[STATE].high[width], abs=1e-7)
        env.features.check_sample({**obs, ACTION: np.zeros(4, np.float32)})
        assert (
            check_observation(STATE, env.features[STATE], obs[STATE]) is None
        )  # policy_node's check
    finally:
        env.close()


# ------------------------------------------------------------------ spec comparison
def test_observation_bounds_on_one_side_only_still_match_but_different_ones_do_not():
    task = make_env("reach").features
    old = _strip_observation_bounds(task)  # a dataset recorded before this change
    assert task.diff(old) == [] and old.diff(task) == []
    task.check_matches(old, what="dataset")
    state = task[STATE]
    other = dataclasses.replace(state, high=tuple(h + 1 for h in state.high))
    with pytest.raises(FeatureMismatchError, match="observation.state"):
        task.check_matches({**task, STATE: other}, what="dataset")
    unbounded_action = dataclasses.replace(task[ACTION], low=None, high=None)
    assert any("'action'" in p for p in task.diff({**task, ACTION: unbounded_action}))


def test_collect_writes_the_observation_bounds_into_info_json(tmp_path):
    from robot_learning.collect import CollectConfig, collect
    from robot_learning.envs import TaskConfig

    collect(
        CollectConfig(task=TaskConfig(name="reach"), out=str(tmp_path / "d"), episodes=1),
        progress=False,
    )
    info = json.loads((tmp_path / "d" / "meta" / "info.json").read_text())
    task = make_env("reach").features
    for key in (STATE, ENV_STATE):
        assert info["features"][key]["low"] == list(task[key].low)
        assert info["features"][key]["high"] == list(task[key].high)


# ------------------------------------------------------------------ runtime rejection
def _reach_stats() -> dict[str, dict[str, np.ndarray]]:
    """Dataset-like statistics of reach: observations of 3 expert episodes, the action's bounds."""
    env = make_env("reach")
    expert = make_expert(env)
    frames = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        expert.reset(seed=seed)
        frames.append(obs)
        for _ in range(env.max_episode_steps):
            obs, _, terminated, truncated, _ = env.step(expert.act(obs))
            frames.append(obs)
            if terminated or truncated:
                break
    spec = env.features
    env.close()
    stats = {}
    for key in spec.observation_keys:
        values = np.stack([f[key] for f in frames])
        stats[key] = {"min": values.min(0), "max": values.max(0)}
    act = spec[ACTION]
    stats[ACTION] = {
        "min": np.asarray(act.low, np.float32),
        "max": np.asarray(act.high, np.float32),
    }
    for entry in stats.values():
        entry["mean"] = (entry["min"] + entry["max"]) / 2
        entry["std"] = np.maximum((entry["max"] - entry["min"]) / 2, 1e-3)
    return stats


def _bundle(spec: FeatureSpec, stats: dict, root: Path) -> Path:
    """Export an untrained toy_mlp on ``spec`` with normalisation statistics ``stats``."""
    cfg = toy_policy.ToyMLPConfig(dropout=0.0)
    checkpoint = toy_policy.ToyMLPPolicy(cfg, spec, stats).save(
        root / "checkpoint", extra={"train_config": {"fps": 10}}
    )
    out = root / "bundle"
    assert main(["export", f"checkpoint={checkpoint}", f"out={out}", "include_torch=false"]) == 0
    return out


@pytest.fixture(scope="module")
def reach_spec() -> FeatureSpec:
    env = make_env("reach")
    spec = env.features
    env.close()
    return spec


@pytest.fixture(scope="module")
def bundles(reach_spec, tmp_path_factory) -> dict[str, Path]:
    """A bundle whose features declare bounds, and one recorded without observation bounds."""
    stats = _reach_stats()
    old_spec = _strip_observation_bounds(reach_spec)
    with toy_policy.registered_one_thread():
        return {
            "declared": _bundle(reach_spec, stats, tmp_path_factory.mktemp("declared")),
            "stats": _bundle(old_spec, stats, tmp_path_factory.mktemp("stats")),
        }


def _huge_state(obs: dict) -> dict:
    state = obs[STATE].copy()
    state[6] = 1e6  # joint3
    return {**obs, STATE: state}


@pytest.mark.parametrize("kind", ["declared", "stats"])
def test_bundle_rejects_an_out_of_range_state_naming_key_element_value_and_bound(
    bundles, kind, reach_spec
):
    with toy_policy.registered_one_thread():
        policy = load_bundle(bundles[kind], runtime="onnxruntime")
    if kind == "stats":
        assert policy.features[STATE].low is None  # only the statistics can bound it
    env = make_env("reach")
    obs, _ = env.reset(seed=0)
    env.close()
    policy.reset()
    assert np.all(np.isfinite(policy.select_action(obs)))  # a real observation is accepted
    policy.reset()
    with pytest.raises(ObservationError) as err:
        policy.select_action(_huge_state(obs))
    text = str(err.value)
    assert "'observation.state'" in text and "element 6 (joint3)" in text and "1e+06" in text
    bound = observation_bounds(reach_spec[STATE]).high[6] if kind == "declared" else None
    assert "above the upper bound" in text
    if bound is not None:
        assert f"{bound:g}" in text
    else:
        assert "dataset statistics" in text


@pytest.mark.parametrize("kind", ["declared", "stats"])
def test_policy_node_controller_rejects_an_out_of_range_state(bundles, kind):
    with toy_policy.registered_one_thread():
        policy = load_bundle(bundles[kind], runtime="onnxruntime")
    controller = PolicyController(policy, period_s=0.1, stale_after_s=1.0)
    env = make_env("reach")
    obs, _ = env.reset(seed=0)
    env.close()
    assert controller.offer(STATE, obs[STATE], stamp_ns=1, now_s=0.0) is None
    reason = controller.offer(STATE, _huge_state(obs)[STATE], stamp_ns=2, now_s=0.0)
    assert reason is not None and "'observation.state'" in reason and "joint3" in reason
    assert controller.counters.rejected_observations == 1
    assert controller.latest[STATE].stamp_ns == 1  # the last good value stays


def test_check_observation_rejects_values_outside_declared_bounds(reach_spec):
    feat = reach_spec[STATE]
    obs, _ = make_env("reach").reset(seed=1)
    assert check_observation(STATE, feat, obs[STATE]) is None
    reason = check_observation(STATE, feat, _huge_state(obs)[STATE])
    assert reason is not None and "'observation.state'" in reason
    assert "element 6 (joint3) = 1e+06" in reason
    low = np.asarray(feat.low, np.float32)
    below = check_observation(STATE, feat, low - 1.0)
    assert below is not None and "below the lower bound" in below


def test_stats_fallback_widens_the_observed_range_by_the_margin():
    feat = Feature("float32", (2,), ("a", "b"))
    assert observation_bounds(feat) is None  # nothing to derive bounds from: no check
    bounds = observation_bounds(feat, {"min": [0.0, 1.0], "max": [2.0, 1.0]}, margin=0.5)
    np.testing.assert_allclose(bounds.low, [-1.0, 1.0 - 0.05])
    np.testing.assert_allclose(bounds.high, [3.0, 1.0 + 0.05])
    by_std = observation_bounds(feat, {"mean": [0.0, 0.0], "std": [1.0, 0.0]}, margin=0.5)
    np.testing.assert_allclose(by_std.high, [8.0, 0.05])  # mean + 4 std, + 50 % of 8
    declared = Feature("float32", (2,), low=(0, 0), high=(1, 1))
    assert observation_bounds(declared, {"min": [-9, -9], "max": [9, 9]}).source == "declared"


def test_policy_node_controller_runs_the_robot_safety_filter(bundles):
    """``policy_node -p safety:='{"max_delta": ...}'``: the executed action goes through the same
    filter as a robot's, so consecutive commands never differ by more than the limit."""
    from hardware.safety import SafetyConfig, SafetyFilter

    with toy_policy.registered_one_thread():
        policy = load_bundle(bundles["declared"], runtime="onnxruntime")
    obs, _ = make_env("reach").reset(seed=0)

    def two_steps(safety):
        controller = PolicyController(policy, period_s=0.1, stale_after_s=1.0, safety=safety)
        out = []
        for stamp in (1, 2):
            controller.offer(STATE, obs[STATE], stamp_ns=stamp, now_s=0.0)
            if "observation.environment_state" in controller.keys:
                env_key = "observation.environment_state"
                controller.offer(env_key, obs[env_key], stamp_ns=stamp, now_s=0.0)
            policy.reset()
            out.append(controller.step().actions[0])
        return controller, out

    _, free = two_steps(None)
    limit = 1e-4
    assert np.abs(free[1] - free[0]).max() > limit  # the chunk's second action moves on
    filtered = SafetyFilter(policy.features, SafetyConfig(max_delta=limit), 10.0)
    controller, safe = two_steps(filtered)
    np.testing.assert_allclose(safe[0], free[0], atol=1e-6)
    assert np.abs(safe[1] - safe[0]).max() <= limit + 1e-6
    assert controller.counters.clamped_actions == 1 and filtered.log.counts["max_delta"] == 1
    controller.reset()
    assert filtered.previous is None  # a new episode starts from no previous command
