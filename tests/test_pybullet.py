"""PyBullet backend of the arm tasks: contract, parity with MuJoCo, determinism, isolation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from robot_learning.envs import TASKS, RandomizationConfig, TaskConfig, make_env, make_expert

pytest.importorskip("pybullet")

ARM_TASKS = ("reach", "lift")
PIXELS = {"obs": "pixels", "image_size": 32}


def _pb(task: str, **overrides):
    return make_env(task, backend="pybullet", **overrides)


def _require_mujoco(task: str) -> None:
    if f"mujoco/{task}" not in TASKS:
        pytest.skip(f"MuJoCo task {task!r} is not registered yet, nothing to compare against")


def _rollout(env, seed: int, steps: int = 15) -> np.ndarray:
    """Flattened observations of a seeded random-action rollout."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames = [np.concatenate([obs[k].ravel() for k in sorted(obs)])]
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        frames.append(np.concatenate([obs[k].ravel() for k in sorted(obs)]))
    return np.stack(frames)


def _run_expert(env, seed: int) -> bool:
    expert = make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset(seed=seed)
    for _ in range(env.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    return bool(info["is_success"])


@pytest.mark.parametrize("mode", [{"obs": "state"}, PIXELS], ids=["state", "pixels"])
@pytest.mark.parametrize("task", ARM_TASKS)
def test_builds_resets_steps_and_matches_spec(task, mode):
    env = _pb(task, **mode)
    try:
        assert env.fps == 10 and env.task_description
        obs, info = env.reset(seed=0)
        obs_keys = env.features.observation_keys
        assert sorted(obs) == sorted(obs_keys)
        env.features.check_sample(obs, obs_keys)
        assert env.observation_space.contains(obs)
        assert info["is_success"] is False and "flag/success" in info
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            env.features.check_sample(obs, obs_keys)
            assert all(np.isfinite(v).all() for v in obs.values())
            assert np.isfinite(reward) and not terminated and not truncated
        assert {"is_success", "flag/success", "reward/success"} <= set(info)
        for key in env.features.image_keys:
            assert obs[key].std() > 5, f"{key} looks blank"
        state = env.task_state()
        assert state["ee_pos"].shape == (3,) and state["qpos"].shape == (7,)
        assert np.shape(state["gripper_width"]) == ()
        assert ("target_pos" if task == "reach" else "cube_pos") in state
    finally:
        env.close()


@pytest.mark.parametrize("mode", [{"obs": "state"}, PIXELS], ids=["state", "pixels"])
@pytest.mark.parametrize("task", ARM_TASKS)
def test_features_and_task_state_identical_to_mujoco(task, mode):
    _require_mujoco(task)
    pb, mj = _pb(task, **mode), make_env(task, **mode)
    try:
        assert pb.features.diff(mj.features) == []
        assert pb.fps == mj.fps and pb.max_episode_steps == mj.max_episode_steps
        assert pb.task_description == mj.task_description
        if mode["obs"] == "state":
            pb.reset(seed=0)
            mj.reset(seed=0)
            assert set(pb.task_state()) == set(mj.task_state())
    finally:
        pb.close()
        mj.close()


@pytest.mark.parametrize("task", ARM_TASKS)
def test_same_seed_same_initial_state_as_mujoco(task):
    """Random draws follow MuJoCo's order, so a seed means one initial scene on both backends."""
    _require_mujoco(task)
    pb, mj = _pb(task), make_env(task)
    try:
        for seed in (0, 5):
            obs_pb, _ = pb.reset(seed=seed)
            obs_mj, _ = mj.reset(seed=seed)
            env_pb, env_mj = (
                obs_pb["observation.environment_state"],
                obs_mj["observation.environment_state"],
            )
            np.testing.assert_allclose(env_pb, env_mj, atol=1e-6)
            # same joint angles; the tcp differs only by the two models' kinematic details
            np.testing.assert_allclose(
                obs_pb["observation.state"][4:], obs_mj["observation.state"][4:], atol=1e-4
            )
            np.testing.assert_allclose(
                obs_pb["observation.state"][:3], obs_mj["observation.state"][:3], atol=3e-3
            )
    finally:
        pb.close()
        mj.close()


@pytest.mark.parametrize("task", ARM_TASKS)
def test_seeded_reset_and_rollout_are_reproducible(task):
    env, fresh = _pb(task), _pb(task)
    try:
        first = _rollout(env, seed=3)
        other = _rollout(env, seed=4)  # an episode in between must leave no trace
        again = _rollout(env, seed=3)
        np.testing.assert_array_equal(first, again)
        np.testing.assert_array_equal(first, _rollout(fresh, seed=3))
        assert not np.array_equal(first[0], other[0])
    finally:
        env.close()
        fresh.close()


def test_two_envs_in_one_process_do_not_interfere():
    solo = _pb("lift")
    reference = _rollout(solo, seed=1)
    solo.close()
    a, b = _pb("lift"), _pb("lift", **PIXELS)
    try:
        assert a.client._client != b.client._client
        obs, _ = a.reset(seed=1)
        b.reset(seed=2)
        rng, rng_b = np.random.default_rng(1), np.random.default_rng(99)
        frames = [np.concatenate([obs[k].ravel() for k in sorted(obs)])]
        for _ in range(15):  # interleave: b moves its arm and renders between a's steps
            b.step(rng_b.uniform(-1, 1, 4).astype(np.float32))
            obs, *_ = a.step(rng.uniform(-1, 1, 4).astype(np.float32))
            frames.append(np.concatenate([obs[k].ravel() for k in sorted(obs)]))
        np.testing.assert_array_equal(np.stack(frames), reference)
        b.close()
        a.step(np.zeros(4, np.float32))  # closing one env leaves the other running
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
@pytest.mark.parametrize("task", ARM_TASKS)
def test_same_scripted_expert_succeeds_on_both_backends(task, backend):
    if backend == "mujoco":
        _require_mujoco(task)
    env = make_env(task, backend=backend)
    try:
        results = [_run_expert(env, seed) for seed in range(3)]
    finally:
        env.close()
    assert all(results), f"{backend} {task}: expert success per seed {results}"


def test_step_validation_truncation_and_sparse_reward():
    env = _pb("reach", max_episode_steps=3, reward="sparse")
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(3, np.float32))
        with pytest.raises(ValueError, match="NaN"):
            env.step(np.array([np.nan, 0, 0, 0], np.float32))
        flags = []
        for _ in range(3):
            _, reward, terminated, truncated, _ = env.step(np.full(4, 5.0, np.float32))  # clipped
            assert reward == 0.0 and not terminated
            flags.append(truncated)
        assert flags == [False, False, True]
        # the ee goal moved by at most ACTION_SCALE per axis and step despite the large action
        assert np.all(env.task_state()["ee_target"] <= np.array([0.75, 0.35, 0.55]) + 1e-9)
    finally:
        env.close()


def test_randomization_hooks_scale_dynamics_and_change_images():
    rand = RandomizationConfig(friction=(0.5, 0.6), mass=(2.0, 2.5), camera_pose=0.05, lighting=0.3)
    plain = _pb("lift", **PIXELS)
    env = make_env(TaskConfig(name="lift", backend="pybullet", randomization=rand, **PIXELS))
    try:
        obs_plain, _ = plain.reset(seed=0)
        obs, _ = env.reset(seed=0)
        mass, friction = env.client.getDynamicsInfo(env.cube, -1)[:2]
        assert 2.0 * 0.05 <= mass <= 2.5 * 0.05 and 0.5 <= friction <= 0.6
        assert not np.array_equal(
            obs["observation.images.front"], obs_plain["observation.images.front"]
        )
        env.cfg.randomization = RandomizationConfig()  # hooks off again: nominal values return
        env.reset(seed=0)
        assert env.client.getDynamicsInfo(env.cube, -1)[:2] == pytest.approx((0.05, 1.0))
    finally:
        plain.close()
        env.close()


def test_cameras_posed_like_mujoco():
    """The pybullet camera specs and the built MuJoCo model place the cameras identically."""
    import mujoco

    from sim.pybullet_suite.scene import ARM_CAMERAS

    env = make_env("lift")
    try:
        for name, spec in ARM_CAMERAS.items():
            cam = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
            assert env.model.cam_pos[cam] == pytest.approx(spec.eye, abs=1e-6)
            assert env.model.cam_fovy[cam] == pytest.approx(spec.fov)
    finally:
        env.close()


def test_import_sim_does_not_load_pybullet():
    code = (
        "import sys, sim; assert 'pybullet' not in sys.modules, 'pybullet imported by import sim'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
