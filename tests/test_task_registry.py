"""Contract tests generated from the task registry: adding a task adds its checks for free."""

from pathlib import Path

import numpy as np
import pytest

from robot_learning.config import load_config, task_config
from robot_learning.envs import ADAPTER_KEYS, EXPERTS, TASKS, TaskConfig, make_env, make_expert

SIM_TASKS = [k for k in TASKS.names() if k not in ADAPTER_KEYS.values()]
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "task"
PLUGIN_CONFIGS = (
    Path(__file__).resolve().parents[1] / "examples" / "point_suite" / "point_suite" / "configs"
)


@pytest.mark.parametrize("obs_mode", ["state", "pixels"])
@pytest.mark.parametrize("key", SIM_TASKS)
def test_task_contract(key, obs_mode):
    backend, name = key.split("/")
    env = make_env(TaskConfig(name=name, backend=backend, obs=obs_mode, image_size=24))
    check_contract(env, pixels=obs_mode == "pixels", image_size=24)


#: external suites through the adapter: the YAMLs shipped in configs/task and the example plugin's
ADAPTED = [(name, []) for name in ("pendulum", "hopper")] + [
    ("point_reach", [f"config_dir={PLUGIN_CONFIGS}"])
]


@pytest.mark.parametrize("name, extra", ADAPTED, ids=[a[0] for a in ADAPTED])
def test_adapted_task_contract(name, extra):
    cfg = task_config(load_config("collect", [f"task={name}", *extra, "out=x"]))
    assert cfg.backend == "gymnasium"
    check_contract(make_env(cfg), pixels=False)


def check_contract(env, pixels: bool, image_size: int = 24) -> None:
    """The task contract on one env (closed at the end)."""
    try:
        spec = env.features
        assert env.fps > 0 and env.task_description
        assert spec.action.low is not None and spec.action.control_mode is not None
        if pixels:
            assert spec.image_keys
            assert all(spec[k].shape == (image_size, image_size, 3) for k in spec.image_keys)
        else:
            assert not spec.image_keys
        obs, info = env.reset(seed=11)
        assert "is_success" in info
        rng = np.random.default_rng(0)
        for _ in range(4):
            action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            spec.check_sample({**obs, "action": action})
            assert env.observation_space.contains(obs)
            for key_, value in obs.items():
                assert np.all(np.isfinite(value)), key_
            obs, reward, terminated, truncated, info = env.step(action)
            assert np.isfinite(reward) and isinstance(info["is_success"], bool)
            if terminated or truncated:
                obs, _ = env.reset()
        state = env.unwrapped.task_state()
        assert state and all(np.all(np.isfinite(np.asarray(v, float))) for v in state.values())
        again, _ = env.reset(seed=11)  # seeded resets are reproducible
        first, _ = env.reset(seed=11)
        for key_ in again:
            np.testing.assert_array_equal(again[key_], first[key_])
    finally:
        env.close()


@pytest.mark.parametrize("key", SIM_TASKS)
def test_every_task_has_an_expert_and_a_config(key):
    backend, name = key.split("/")
    assert name in EXPERTS
    cfg = task_config(load_config("collect", [f"task={name}", f"backend={backend}", "out=x"]))
    assert (cfg.name, cfg.backend) == (name, backend)
    assert (CONFIG_DIR / f"{name}.yaml").is_file()
    env = make_env(cfg)
    try:
        expert = make_expert(env)
        obs, _ = env.reset(seed=0)
        expert.reset(seed=0)
        action = expert.act(obs)
        assert action.shape == env.action_space.shape
        assert env.action_space.contains(np.asarray(action, np.float32))
    finally:
        env.close()


def test_unknown_backend_for_task_is_a_clear_error():
    with pytest.raises(ValueError, match="It exists for backends"):
        make_env(TaskConfig(name="pusht", backend="pybullet"))
