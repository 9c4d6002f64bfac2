"""External gymnasium suites through the adapter config (configs/task/hopper.yaml)."""

import numpy as np
import pytest

from robot_learning.config import load_config, task_config
from robot_learning.envs import TaskConfig, make_env


def test_hopper_adapter_from_config_matches_its_spec():
    cfg = task_config(load_config("collect", ["task=hopper", "out=/tmp/unused"]))
    assert cfg.backend == "gymnasium" and cfg.gym_id == "Hopper-v5"
    env = make_env(cfg)
    try:
        spec = env.features
        assert list(spec) == ["observation.state", "action"]
        assert spec["observation.state"].shape == (11,)
        assert spec.action.shape == (3,) and spec.action.low == (-1.0,) * 3
        assert env.fps == 125  # Hopper-v5 metadata render_fps
        obs, info = env.reset(seed=3)
        spec.check_sample({**obs, "action": env.action_space.sample()})
        again, _ = env.reset(seed=3)
        np.testing.assert_array_equal(obs["observation.state"], again["observation.state"])
        obs, reward, terminated, truncated, info = env.step(np.zeros(3, np.float32))
        assert np.isfinite(reward) and "is_success" in info
        assert obs["observation.state"].dtype == np.float32
    finally:
        env.close()


def test_unknown_gym_id_is_a_clear_error():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        make_env(TaskConfig(name="x", backend="gymnasium", gym_id="NoSuchEnv-v0"))


def test_gymnasium_backend_needs_an_id():
    with pytest.raises(ValueError, match="gym_id"):
        TaskConfig(name="x", backend="gymnasium")
