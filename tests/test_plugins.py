"""Bring your own suite: an external gymnasium suite with real suites' habits (success under
another key, a reset that ignores its seed, episodes that go on after success) and an expert
from an installed plugin (``examples/point_suite``, installed by ``make install``), through
collect -> train -> eval -> export."""

from __future__ import annotations

import json
import logging
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import toy_policy

from robot_learning.cli import main
from robot_learning.config import load_config, task_config
from robot_learning.envs import EXPERTS, TaskConfig, make_env

CONFIG_DIR = (
    Path(__file__).resolve().parents[1] / "examples" / "point_suite" / "point_suite" / "configs"
)
POINT = {"name": "point_reach", "backend": "gymnasium", "gym_id": "point_suite:PointReach-v0"}


def _point(**overrides) -> TaskConfig:
    return TaskConfig(**{**POINT, **overrides})


def test_the_plugin_is_installed_and_found_by_entry_point():
    assert any(
        ep.value == "point_suite.experts" for ep in entry_points(group="robot_learning.experts")
    )
    assert "point_reach" in EXPERTS  # registered on first lookup, with no import by the project


def test_config_dir_adds_the_plugins_task_yaml_to_every_command():
    cfg = task_config(
        load_config("collect", [f"config_dir={CONFIG_DIR}", "task=point_reach", "out=x"])
    )
    assert cfg.gym_id == "point_suite:PointReach-v0" and cfg.success_key == "success"
    with pytest.raises(ValueError, match="config_dir=/no/such: no such folder"):
        load_config("eval", ["config_dir=/no/such", "task=point_reach"])


def test_success_under_another_key_is_found_and_a_missing_key_is_warned(caplog):
    env = make_env(_point(reseed=True, success_key="is_success"))
    env.reset(seed=0)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            env.step(np.zeros(2, np.float32))
        env.reset(seed=1)
    assert "no info['is_success']" in caplog.text and "'success'" in caplog.text
    env = make_env(_point(reseed=True))  # default: is_success, else success
    obs, _ = env.reset(seed=0)
    point, goal = np.split(obs["observation.state"], 2)
    done, steps = False, 0
    while not done:
        action = np.clip((goal - point) / 0.1, -1, 1).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        point = obs["observation.state"][:2]
        done, steps = terminated or truncated, steps + 1
    assert terminated and info["is_success"] and steps < 20  # ended at success, not at 40 steps


def test_a_seed_ignoring_reset_is_reported_and_reseed_fixes_it(caplog):
    with caplog.at_level(logging.WARNING):
        make_env(_point())
    assert "ignores reset(seed=...)" in caplog.text and "task.reseed=true" in caplog.text
    env = make_env(_point(reseed=True))
    assert env.unwrapped.seeding_problem is None
    first = env.reset(seed=5)[0]["observation.state"]
    other = env.reset(seed=6)[0]["observation.state"]
    again = env.reset(seed=5)[0]["observation.state"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_sparse_reward_episode_end_and_clipping_are_honoured():
    env = make_env(_point(reseed=True, reward="sparse", terminate_on_success=False))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.array([5.0, -5.0], np.float32))
    assert reward in (0.0, 1.0) and info["clipped_action_elements"] == 2
    assert env.unwrapped.clipped_action_elements == 2
    lengths = []
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        steps, done = 0, False
        while not done:
            point, goal = np.split(obs["observation.state"], 2)
            obs, _, terminated, truncated, _ = env.step(np.clip((goal - point) / 0.1, -1, 1))
            steps, done = steps + 1, terminated or truncated
        lengths.append(steps)
    assert lengths == [40, 40]  # terminate_on_success=false: the suite's own time limit


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"randomization": {"friction": (0.5, 1.5)}}, "task.randomization.friction"),
        ({"cameras": ("front",)}, "task.cameras"),
        ({"obs": "pixels"}, "has no images"),
    ],
)
def test_settings_the_adapter_cannot_honour_are_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_env(_point(**overrides))


def test_a_missing_gym_id_suggests_the_module_form():
    with pytest.raises(ValueError, match=r"gym_id=<module>:NoSuchEnv-v0"):
        make_env(TaskConfig(name="x", backend="gymnasium", gym_id="NoSuchEnv-v0"))
    with pytest.raises(ValueError, match=r"applies to backend=gymnasium\|isaacgym only"):
        TaskConfig(name="lift", success_key="success")


def test_collect_train_eval_export_with_the_plugin(tmp_path):
    common = [f"config_dir={CONFIG_DIR}", "task=point_reach"]
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["collect", *common, "episodes=30", f"out={data}"]) == 0
    collected = json.loads((data / "collect.json").read_text())
    assert collected["success_rate"] == 1.0
    assert (
        main(["collect", *common, "expert=point_reach", "episodes=2", f"out={tmp_path / 'named'}"])
        == 0
    )
    from robot_learning.training import TrainConfig, train

    task = task_config(load_config("eval", [*common, "checkpoint=x"]))
    with toy_policy.registered():
        train(
            TrainConfig(
                policy="toy_mlp",
                dataset=str(data),
                out=str(run),
                steps=300,
                batch_size=32,
                lr=3e-3,
                warmup_steps=10,
                save_every=300,
                threads=1,
                task=task,
                eval_every=0,
                policy_overrides={"dropout": 0.0},
            ),
            progress=False,
        )
        assert (
            main(
                [
                    "eval",
                    f"checkpoint={run / 'final'}",
                    *common,
                    "episodes=10",
                    f"out={tmp_path / 'eval'}",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "export",
                    f"checkpoint={run / 'final'}",
                    f"out={tmp_path / 'bundle'}",
                    "include_torch=false",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "eval",
                    f"bundle={tmp_path / 'bundle'}",
                    *common,
                    "episodes=10",
                    f"out={tmp_path / 'eval_bundle'}",
                ]
            )
            == 0
        )
    checkpoint = json.loads((tmp_path / "eval" / "eval.json").read_text())
    bundle = json.loads((tmp_path / "eval_bundle" / "eval.json").read_text())
    assert checkpoint["success_rate"] >= 0.5  # success is read from info["success"]
    assert max(checkpoint["episode_lengths"]) < 40 or not all(checkpoint["successes"])
    assert bundle["successes"] == checkpoint["successes"]
