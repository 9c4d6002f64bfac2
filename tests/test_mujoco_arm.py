"""Fast tests of the MuJoCo Panda arm tasks (reach, lift, peg_insert) and their scripted experts."""

from __future__ import annotations

import numpy as np
import pytest

from robot_learning.envs import EXPERTS, RandomizationConfig, make_env, make_expert
from sim import arm_common as ac

ARM_TASKS = ("reach", "lift", "peg_insert")
TASK_KEYS = {"reach": ("target_pos",), "lift": ("cube_pos",), "peg_insert": ("peg_pos", "hole_pos")}
#: the experts' documented rate limit on the xyz action components
EXPERT_MAX_RATE = 0.5


def _check_obs(env, obs) -> None:
    env.features.check_sample(obs, keys=env.features.observation_keys)
    assert set(obs) == set(env.features.observation_keys)
    assert env.observation_space.contains(obs)
    for key, value in obs.items():
        assert np.all(np.isfinite(value)), key


@pytest.mark.parametrize("obs_mode", ["state", "pixels"])
@pytest.mark.parametrize("task", ARM_TASKS)
def test_builds_resets_and_steps(task, obs_mode):
    env = make_env(task, obs=obs_mode, image_size=32)
    try:
        assert env.fps == ac.FPS and env.task_description
        assert env.features.action.control_mode == "ee_delta_pos"
        obs, info = env.reset(seed=0)
        _check_obs(env, obs)
        assert info["is_success"] is False
        env.action_space.seed(0)
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            _check_obs(env, obs)
            assert np.isfinite(reward) and "is_success" in info
            assert not truncated
        if obs_mode == "pixels":
            assert env.features.image_keys == [f"observation.images.{c}" for c in ac.CAMERAS]
            for key in env.features.image_keys:
                assert obs[key].std() > 1.0, f"{key} is a blank frame"
    finally:
        env.close()


@pytest.mark.parametrize("task", ARM_TASKS)
def test_task_state_matches_observation(task):
    env = make_env(task)
    obs, _ = env.reset(seed=1)
    state = env.unwrapped.task_state()
    assert state["ee_pos"].shape == (3,) and state["qpos"].shape == (7,)
    assert np.asarray(state["gripper_width"]).shape == ()
    np.testing.assert_allclose(
        obs["observation.state"],
        ac.proprio(state["ee_pos"], state["gripper_width"], state["qpos"]),
        atol=1e-6,
    )
    env_state = np.concatenate([state[k] for k in TASK_KEYS[task]])
    np.testing.assert_allclose(obs["observation.environment_state"], env_state, atol=1e-6)
    # reset pose: gripper pointing down near EE_HOME (joint noise moves it by a few cm at most)
    assert np.linalg.norm(state["ee_pos"] - ac.EE_HOME) < 0.06


@pytest.mark.parametrize("task", ARM_TASKS)
def test_seeded_resets_are_reproducible(task):
    env = make_env(task)
    first, _ = env.reset(seed=7)
    step_a = env.step(np.array([0.5, -0.5, -0.5, 1.0], np.float32))[0]
    again, _ = env.reset(seed=7)
    step_b = env.step(np.array([0.5, -0.5, -0.5, 1.0], np.float32))[0]
    other, _ = env.reset(seed=8)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
        np.testing.assert_array_equal(step_a[key], step_b[key])
    assert any(not np.array_equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("task", ARM_TASKS)
def test_action_clipping_and_validation(task):
    env = make_env(task)
    env.reset(seed=2)
    clipped = env.step(np.array([5.0, -5.0, 5.0, 9.0], np.float32))[0]
    env.reset(seed=2)
    bounded = env.step(np.array([1.0, -1.0, 1.0, 1.0], np.float32))[0]
    for key in clipped:
        np.testing.assert_array_equal(clipped[key], bounded[key])
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0, 0, 0], np.float32))


def test_controller_moves_end_effector_and_gripper():
    env = make_env("reach", randomization=RandomizationConfig(object_pose=False))
    env.reset(seed=0)
    u = env.unwrapped
    start = u.task_state()["ee_pos"]
    for _ in range(4):
        env.step(np.array([1.0, 0.0, 0.0, 1.0], np.float32))
    for _ in range(4):
        env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))  # settle
    state = u.task_state()
    moved = state["ee_pos"] - start
    assert abs(moved[0] - 4 * ac.ACTION_SCALE) < 0.005 and np.abs(moved[1:]).max() < 0.005
    assert float(state["gripper_width"]) < 0.002  # closed on nothing
    for _ in range(3):
        env.step(np.array([0.0, 0.0, 0.0, -1.0], np.float32))
    assert float(u.task_state()["gripper_width"]) > ac.GRIPPER_MAX_WIDTH - 0.002


@pytest.mark.parametrize("task", ARM_TASKS)
def test_domain_randomization_changes_model(task):
    rand = RandomizationConfig(friction=(0.5, 1.5), mass=(0.5, 2.0), camera_pose=0.05, lighting=0.3)
    env, nominal = make_env(task, randomization=rand), make_env(task)
    env.reset(seed=0)
    nominal.reset(seed=0)
    m, m0 = env.unwrapped.model, nominal.unwrapped.model
    assert not np.allclose(m.cam_pos, m0.cam_pos)
    assert not np.allclose(m.light_diffuse, m0.light_diffuse)
    for body in env.unwrapped.randomized_bodies:
        b = env.unwrapped.body_id(body)
        assert m.body_mass[b] != m0.body_mass[b]
        assert not np.allclose(
            m.geom_friction[m.geom_bodyid == b], m0.geom_friction[m0.geom_bodyid == b]
        )
    if task != "reach":
        assert env.unwrapped.randomized_bodies  # the manipulated object is randomised
    cam_first = m.cam_pos.copy()
    env.reset(seed=1)
    assert not np.allclose(m.cam_pos, cam_first)
    obs, *_ = env.step(np.array([0.0, 0.0, -1.0, 1.0], np.float32))
    assert all(np.all(np.isfinite(v)) for v in obs.values())


@pytest.mark.parametrize("task", ["lift", "peg_insert"])
def test_random_actions_stay_stable_with_randomized_dynamics(task):
    rand = RandomizationConfig(friction=(0.5, 1.5), mass=(0.5, 2.0))
    env = make_env(task, randomization=rand, max_episode_steps=60)
    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        action = np.zeros(4)
        for _ in range(60):
            action = np.clip(0.7 * action + 0.6 * rng.normal(size=4), -1.0, 1.0)
            obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
            assert np.isfinite(reward) and all(np.all(np.isfinite(v)) for v in obs.values())
            if terminated or truncated:
                break
        data = env.unwrapped.data
        assert not any(w.number for w in data.warning), "MuJoCo reported an unstable simulation"
        assert np.abs(data.qvel[:7]).max() < 5.0  # arm joints stay within plausible speeds


class _StateOnly:
    """Exposes nothing but ``unwrapped.task_state()``: experts must not need more (any backend)."""

    def __init__(self, env) -> None:
        self._env = env

    @property
    def unwrapped(self):
        return self

    def task_state(self):
        return self._env.unwrapped.task_state()


@pytest.mark.parametrize("task", ARM_TASKS)
def test_expert_succeeds_smoothly(task):
    env = make_env(task)
    assert type(make_expert(env)) is EXPERTS.get(task)
    expert = EXPERTS.get(task)(_StateOnly(env))
    max_ee_step = ac.ACTION_SCALE * np.sqrt(3) + 0.005
    successes = 0
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        expert.reset(seed)
        prev_action, prev_ee = None, env.unwrapped.task_state()["ee_pos"]
        while True:
            action = expert.act(obs)
            assert action.dtype == np.float32 and action.shape == (4,)
            assert np.all(np.abs(action) <= 1.0)
            if prev_action is not None:  # xyz is rate limited; the gripper is a binary command
                assert np.abs(action[:3] - prev_action[:3]).max() <= EXPERT_MAX_RATE + 1e-6
            obs, _, terminated, truncated, info = env.step(action)
            ee = env.unwrapped.task_state()["ee_pos"]
            assert np.linalg.norm(ee - prev_ee) <= max_ee_step
            prev_action, prev_ee = action, ee
            if terminated or truncated:
                break
        successes += bool(info["is_success"])
    assert successes == 5


def test_peg_insert_flags():
    hole = np.array([0.5, 0.0, ac.HOLE_DEPTH])
    above = ac.peg_insert_evaluate({"peg_pos": hole + [0.0, 0.0, 0.01], "hole_pos": hole})
    inside = ac.peg_insert_evaluate({"peg_pos": hole - [0.0, 0.0, 0.03], "hole_pos": hole})
    beside = ac.peg_insert_evaluate({"peg_pos": hole + [0.05, 0.0, -0.03], "hole_pos": hole})
    assert above == {"aligned": True, "entered": False, "success": False}
    assert inside == {"aligned": True, "entered": True, "success": True}
    assert not beside["success"] and not beside["aligned"]
    state = {"peg_pos": hole - [0.0, 0.0, 0.03], "hole_pos": hole}
    terms = ac.peg_insert_reward_terms(state, inside)
    assert terms["insert"] == 1.0 and terms["success"] == 1.0


def test_held_gripper_keeps_the_peg_whatever_the_policy_sends():
    """``task.hold_action={gripper: 1}``: an "open" command no longer drops the peg."""
    opened = {}
    for hold in ({}, {"gripper": 1.0}):
        env = make_env("peg_insert", hold_action=hold)
        env.reset(seed=0)
        for _ in range(6):
            env.step(np.array([0.0, 0.0, 0.0, -1.0], np.float32))
        opened[bool(hold)] = float(env.unwrapped.task_state()["gripper_width"])
    assert opened[False] > ac.GRIPPER_MAX_WIDTH - 0.005  # the fingers opened and let go
    assert opened[True] < 2 * ac.PEG_HALF + 0.001  # still squeezing the 24 mm peg


@pytest.mark.parametrize(
    "hold, message",
    [
        ({"grip": 1.0}, r"task.hold_action.grip: 'reach' has no action element 'grip'.*gripper"),
        ({"gripper": 3.0}, r"task.hold_action.gripper=3.0 is outside the action bounds"),
    ],
)
def test_held_action_errors_name_the_setting(hold, message):
    with pytest.raises(ValueError, match=message):
        make_env("reach", hold_action=hold)


def test_the_declared_mujoco_bound_is_the_checked_one():
    """pyproject's lower bound is MIN_MUJOCO (the lowest release scripts/check_min_mujoco.sh
    passes); an older MuJoCo is refused at task build time with the upgrade command."""
    import re
    from pathlib import Path

    from sim.mujoco_suite.base import MIN_MUJOCO, check_mujoco_version

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.search(r'"mujoco>=([\d.]+)"', text).group(1)
    assert tuple(int(p) for p in declared.split(".")) == MIN_MUJOCO
    check_mujoco_version("3.3.6")
    check_mujoco_version("4.0.0")
    with pytest.raises(ValueError, match=r"pip install 'mujoco>=3.3.6'"):
        check_mujoco_version("3.3.5")
