"""Language-conditioned tasks: paraphrase pools, per-episode instructions, the shared-scene
``lift_color`` task and its expert, instructions in datasets and in evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from robot_learning.collect import CollectConfig, collect
from robot_learning.datasets import LeRobotDataset
from robot_learning.envs import TaskConfig, make_env, make_expert, task_names
from robot_learning.language import InstructionError, Instructions, check_instruction


def run_expert(env, seed: int) -> bool:
    expert = make_expert(env)
    obs, _ = env.reset(seed=seed)
    expert.reset(seed)
    while True:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            return bool(info["is_success"])


@pytest.mark.parametrize("color,other", [("red", "blue"), ("blue", "red")])
def test_lift_color_instruction_picks_the_cube_and_the_expert_lifts_it(color, other):
    env = make_env(TaskConfig(name="lift_color", instruction=f"please lift the {color} cube"))
    assert run_expert(env, seed=3)
    state = env.task_state()
    assert env.goal == color and env.instruction == f"please lift the {color} cube"
    assert state[f"{color}_pos"][2] > state[f"{other}_pos"][2] + 0.08  # the named one is up
    assert not env.evaluate()["wrong_lifted"]


def test_lift_color_goals_are_balanced_and_seeded():
    env = make_env(TaskConfig(name="lift_color"))
    seen = []
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        seen.append((env.goal, env.instruction, obs["observation.environment_state"].copy()))
    goals = [g for g, _, _ in seen]
    assert 10 <= goals.count("red") <= 30  # both goals, drawn per episode
    for goal, text, _ in seen:
        assert text in env.goals[goal].train and goal in text
    for seed in (0, 7):  # the same seed gives the same goal, instruction and scene
        obs, _ = env.reset(seed=seed)
        assert (env.goal, env.instruction) == seen[seed][:2]
        np.testing.assert_array_equal(obs["observation.environment_state"], seen[seed][2])
    # the cubes never overlap and are within the fingers' clearance of each other
    gaps = [np.linalg.norm(s[2][:2] - s[2][3:5]) for s in seen]
    assert min(gaps) >= 0.1 - 1e-6


def test_the_instruction_pool_does_not_change_the_scene():
    """Language has its own random stream: the objects of seed s are the same whatever pool or
    instruction is chosen (so datasets recorded before instructions existed replay unchanged)."""
    obs = {}
    for pool in ("train", "heldout", "canonical"):
        env = make_env(TaskConfig(name="lift", paraphrases=pool))
        obs[pool] = env.reset(seed=11)[0]["observation.environment_state"]
        texts = {env.reset(seed=s) and env.instruction for s in range(30)}
        assert texts <= set(env.instructions.pool(pool)), pool
        if pool == "heldout":
            assert not texts & set(env.instructions.train)
        if pool == "canonical":
            assert texts == {env.task_description}
    np.testing.assert_array_equal(obs["train"], obs["heldout"])
    np.testing.assert_array_equal(obs["train"], obs["canonical"])


@pytest.mark.parametrize("name", [n for n in task_names("mujoco")])
def test_every_task_has_training_and_held_out_paraphrases(name):
    env = make_env(TaskConfig(name=name))
    for goal, instructions in env.language_goals().items():
        assert len(instructions.train) >= 2 and len(instructions.heldout) >= 1, (name, goal)


def test_bad_instructions_are_named():
    with pytest.raises(InstructionError, match="empty"):
        check_instruction("   ")
    with pytest.raises(InstructionError, match="characters"):
        check_instruction("lift " * 100)
    with pytest.raises(InstructionError, match="must be a string"):
        check_instruction(3)
    with pytest.raises(ValueError, match="empty"):
        TaskConfig(name="lift", instruction="")
    with pytest.raises(ValueError, match="paraphrases='test'"):
        TaskConfig(name="lift", paraphrases="test")
    # a shared-scene task refuses an instruction naming no goal, or several, at build time
    with pytest.raises(InstructionError, match="names no goal.*lift the red cube"):
        make_env(TaskConfig(name="lift_color", instruction="lift the green cube"))
    with pytest.raises(InstructionError, match="several goals"):
        make_env(TaskConfig(name="lift_color", instruction="lift the red or the blue cube"))
    with pytest.raises(ValueError, match="both training and held out"):
        Instructions(train=("a",), heldout=("a",))


def test_collect_stores_each_episodes_instruction_as_its_task(tmp_path):
    out = tmp_path / "lc"
    result = collect(CollectConfig(task=TaskConfig(name="lift_color"), episodes=4, out=str(out)))
    assert result.successes == 4
    ds = LeRobotDataset(out)
    env = make_env(TaskConfig(name="lift_color"))
    for episode in range(4):
        env.reset(seed=episode)  # collect resets episode i with seed i
        tasks = set(ds.episode(episode)["task"])
        assert tasks == {env.instruction}
    assert set(ds.tasks) <= {t for ins in env.goals.values() for t in ins.train}
