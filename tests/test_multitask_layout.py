"""``task.env_state_slots``: arm tasks laid out in shared xyz slots train one multi-task policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_learning.collect import CollectConfig, collect
from robot_learning.datasets import LeRobotDataset
from robot_learning.envs import TaskConfig, make_env
from robot_learning.features import FeatureMismatchError
from robot_learning.training import TrainConfig, train

ENV_STATE = "observation.environment_state"


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_slots_hold_the_tasks_own_state_then_zeros(backend):
    own = make_env(TaskConfig(name="lift", backend=backend))
    slotted = make_env(TaskConfig(name="lift", backend=backend, env_state_slots=2))
    a, _ = own.reset(seed=3)
    b, _ = slotted.reset(seed=3)
    np.testing.assert_array_equal(b[ENV_STATE][:3], a[ENV_STATE])
    np.testing.assert_array_equal(b[ENV_STATE][3:], 0.0)
    feature = slotted.features[ENV_STATE]
    assert feature.names == ("slot0_x", "slot0_y", "slot0_z", "slot1_x", "slot1_y", "slot1_z")
    assert slotted.observation_space[ENV_STATE].contains(b[ENV_STATE])
    reach = make_env(TaskConfig(name="reach", backend=backend, env_state_slots=2))
    assert reach.features[ENV_STATE] == feature  # one spec for both tasks


def test_bad_slot_settings_are_named():
    with pytest.raises(ValueError, match="env_state_slots >= 2"):
        make_env(TaskConfig(name="lift_color", env_state_slots=1))
    with pytest.raises(ValueError, match="must be >= 1"):
        TaskConfig(name="lift", env_state_slots=0)
    with pytest.raises(ValueError, match="arm tasks"):
        make_env(TaskConfig(name="pusht", env_state_slots=2))


def test_two_tasks_in_slots_train_one_language_policy(tmp_path):
    for name in ("lift", "reach"):
        task = TaskConfig(name=name, env_state_slots=2)
        collect(CollectConfig(task=task, episodes=2, out=str(tmp_path / name)))
    parts = [str(tmp_path / n) for n in ("lift", "reach")]
    tasks = {t for p in parts for t in LeRobotDataset(p).tasks}
    assert any("cube" in t for t in tasks) and any("target" in t for t in tasks)
    result = train(TrainConfig(
        policy="vla", dataset=parts, out=str(tmp_path / "vla"), steps=2, batch_size=8,
        warmup_steps=1, use_ema=False,
        policy_overrides=dict(d_model=32, n_heads=2, backbone_layers=1, expert_layers=1, text_layers=1),
    ))  # fmt: skip
    assert (Path(result.final_dir) / "model.safetensors").is_file()
    # the task's own layout does not fit the multi-task policy, and the error says what does
    own = collect(
        CollectConfig(task=TaskConfig(name="lift"), episodes=1, out=str(tmp_path / "own"))
    )
    assert own is not None
    with pytest.raises(FeatureMismatchError, match="task.env_state_slots=2"):
        train(TrainConfig(
            policy="vla", dataset=[parts[0], str(tmp_path / "own")], out=str(tmp_path / "bad"),
            steps=1, batch_size=8,
        ))  # fmt: skip
