"""Batched CPU simulation (robot_learning/env_threads.py): environments stepped on threads give
exactly the trajectories of one environment stepped alone, in evaluation and in RL collection."""

from __future__ import annotations

import numpy as np
import pytest
import toy_policy

from robot_learning.env_threads import EnvThreads
from robot_learning.envs import TaskConfig, make_env
from robot_learning.evaluation import EvalConfig, TorchPolicySource, evaluate
from robot_learning.policy import Policy


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with toy_policy.registered_one_thread():
        yield toy_policy.train_reach(tmp_path_factory.mktemp("threads"))


@pytest.mark.parametrize("task", ["lift", "peg_insert"])
def test_threaded_envs_reproduce_a_single_envs_trajectory(task):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(25, 3, 4)).astype(np.float32)
    alone = []
    for e in range(3):  # each env alone, one after another
        env = make_env(task)
        obs = [env.reset(seed=10 + e)[0]]
        obs += [env.step(a)[0] for a in actions[:, e]]
        alone.append(obs)
        env.close()
    envs = [make_env(task) for _ in range(3)]
    together = [[env.reset(seed=10 + e)[0]] for e, env in enumerate(envs)]
    with EnvThreads(3) as threads:
        for step in actions:
            results = threads.map(lambda pair: pair[0].step(pair[1]), zip(envs, step, strict=True))
            for e, result in enumerate(results):
                together[e].append(result[0])
    for e in range(3):
        for a, b in zip(alone[e], together[e], strict=True):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])


def test_threaded_evaluation_gives_the_same_episodes(trained):
    with toy_policy.registered_one_thread():
        policy = Policy.load(trained)
        base = dict(task=TaskConfig(name="reach"), episodes=6, num_envs=3)
        one = evaluate(TorchPolicySource(policy), EvalConfig(**base))
        three = evaluate(TorchPolicySource(policy), EvalConfig(**base, env_threads=3))
    assert one.seeds == three.seeds and one.successes == three.successes
    assert one.lengths == three.lengths and one.max_rewards == three.max_rewards


def test_threads_refuse_rendering():
    with pytest.raises(ValueError, match="env_threads=2 .* cannot render \\(obs=pixels\\)"):
        EvalConfig(task=TaskConfig(name="lift", obs="pixels"), env_threads=2)
    with pytest.raises(ValueError, match="cannot render \\(videos\\)"):
        EvalConfig(task=TaskConfig(name="lift"), env_threads=2, video_episodes=1)
    with pytest.raises(ValueError, match="env_threads=0 must be >= 1"):
        EnvThreads(0)


def test_the_rl_collector_fills_the_same_buffer_on_threads():
    from robot_learning.rl.collector import Collector
    from robot_learning.rl.replay import ReplayBuffer

    def collect(threads: int) -> ReplayBuffer:
        envs = [make_env("reach") for _ in range(2)]
        spec = envs[0].features
        buffer = ReplayBuffer(spec, capacity=120, streams=2)
        collector = Collector(envs, buffer, seed=5, threads=EnvThreads(threads))
        collector.start()
        rng = np.random.default_rng(1)
        for _ in range(40):
            collector.step(rng.uniform(-1, 1, size=(2, 4)))
        collector.threads.close()
        return buffer

    one, two = collect(1), collect(2)
    for key in one.obs:
        np.testing.assert_array_equal(one.obs[key], two.obs[key])
    np.testing.assert_array_equal(one.reward, two.reward)
    np.testing.assert_array_equal(one.terminated | one.truncated, two.terminated | two.truncated)
    assert len(one) == len(two) == 80
