"""Evaluation: Wilson interval, lockstep rollouts == select_action, eval CLI (eval.json, videos, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_policy

from robot_learning.cli import main
from robot_learning.datasets import LeRobotDataset
from robot_learning.datasets.video import probe_video
from robot_learning.envs import TaskConfig, make_env
from robot_learning.evaluation import (
    EVAL_SEED_OFFSET,
    EvalConfig,
    TorchPolicySource,
    evaluate,
    task_overrides_for,
    wilson_interval,
)
from robot_learning.features import FeatureMismatchError
from robot_learning.policy import POLICIES, Policy
from robot_learning.training import build_policy_config

STABLE_KEYS = {
    "episodes",
    "success_rate",
    "success_ci95",
    "mean_max_reward",
    "mean_return",
    "mean_episode_length",
    "runtime",
}


@pytest.fixture(scope="module", autouse=True)
def _toy_mlp_one_thread():
    with toy_policy.registered_one_thread():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A toy policy trained briefly on reach (with task=reach recorded in its checkpoint)."""
    return toy_policy.train_reach(tmp_path_factory.mktemp("eval"))


def test_wilson_interval():
    low, high = wilson_interval(7, 10)
    assert (round(low, 4), round(high, 4)) == (0.3968, 0.8922)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k in range(11):
        low, high = wilson_interval(k, 10)
        assert low <= k / 10 <= high


def test_lockstep_rollout_equals_select_action(tmp_path, trained):
    """N envs with batched chunk inference behave exactly like one env driven by select_action."""
    policy = Policy.load(trained)
    cfg = EvalConfig(task=TaskConfig(name="reach", max_episode_steps=15), episodes=4, num_envs=3)
    result = evaluate(TorchPolicySource(policy), cfg)
    assert result.seeds == [EVAL_SEED_OFFSET + i for i in range(4)]
    env = make_env(cfg.task)
    for i, seed in enumerate(result.seeds):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        rewards, success = [], False
        while True:
            obs, reward, terminated, truncated, info = env.step(policy.select_action(obs))
            rewards.append(reward)
            success = success or info["is_success"]
            if terminated or truncated:
                break
        # batch-size-dependent float rounding in the matmuls: equal up to ~1e-7
        assert (len(rewards), success) == (result.lengths[i], result.successes[i])
        assert max(rewards) == pytest.approx(result.max_rewards[i], abs=1e-4)
        assert sum(rewards) == pytest.approx(result.returns[i], abs=1e-3)
    env.close()
    assert result.inference_calls < sum(result.lengths)  # chunks are shared across steps and envs


def test_untrained_generative_policy_runs_in_lockstep(tmp_path, trained):
    """A real zoo member (flow, tiny U-Net) through the same rollout, with explicit seeded noise."""
    dataset = LeRobotDataset(
        json.loads((trained.parent / "train_config.json").read_text())["dataset"]
    )
    cls = POLICIES.get("flow")
    config = build_policy_config(
        cls, {"down_dims": [16], "horizon": 4, "n_action_steps": 2, "time_embed_dim": 8}
    )
    torch.manual_seed(0)
    policy = cls(config, dataset.features, dataset.stats)
    cfg = EvalConfig(task=TaskConfig(name="reach", max_episode_steps=5), episodes=3, num_envs=2)
    first = evaluate(TorchPolicySource(policy, seed=1), cfg)
    again = evaluate(TorchPolicySource(policy, seed=1), cfg)
    assert first.max_rewards == again.max_rewards and first.lengths == [5, 5, 5]


def test_eval_cli_writes_eval_json_next_to_checkpoint_and_videos(trained, capsys):
    assert (
        main(
            [
                "eval",
                f"checkpoint={trained}",
                "episodes=3",
                "num_envs=2",
                "video=true",
                "video_episodes=1",
            ]
        )
        == 0
    )
    assert "success" in capsys.readouterr().out
    report = json.loads((trained / "eval.json").read_text())  # no out=: next to the checkpoint
    assert set(report) >= STABLE_KEYS
    assert (
        report["episodes"] == 3 and report["runtime"] == "torch" and report["policy"] == "toy_mlp"
    )
    low, high = report["success_ci95"]
    assert low <= report["success_rate"] <= high
    assert report["task"]["name"] == "reach"  # taken from the checkpoint's training config
    assert report["seeds"] == [100000, 100001, 100002]
    assert (
        len(report["successes"])
        == len(report["max_rewards"])
        == len(report["episode_lengths"])
        == 3
    )
    assert report["mean_max_reward"] == pytest.approx(np.mean(report["max_rewards"]))
    assert report["mean_return"] == pytest.approx(np.mean(report["returns"]))
    video = trained / "videos" / "episode_000.mp4"
    assert report["videos"] == [str(video)]
    assert (
        probe_video(video).num_frames == report["episode_lengths"][0] + 1
    )  # reset frame + one per step


def test_eval_cli_out_dir_and_explicit_task(trained, tmp_path):
    out = tmp_path / "elsewhere"
    assert main(["eval", f"checkpoint={trained}", "task=reach", "episodes=2", f"out={out}"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["episodes"] == 2 and not (out / "videos").exists()


def test_eval_errors_are_clear(trained, capsys):
    assert main(["eval", f"checkpoint={trained}", "task=lift", "episodes=1"]) == 2
    assert "observation.environment_state" in capsys.readouterr().err
    assert main(["eval", f"checkpoint={trained.parent}", "episodes=1"]) == 2
    assert "checkpoint=" in capsys.readouterr().err  # hints at run/final
    assert main(["eval", f"checkpoint={trained}", "runtime=onnxruntime"]) == 2
    assert "runtime" in capsys.readouterr().err
    with pytest.raises(FeatureMismatchError, match="missing.*observation.environment_state"):
        evaluate(
            TorchPolicySource(Policy.load(trained)),
            EvalConfig(task=TaskConfig(name="reach", obs="pixels")),
        )


def test_task_overrides_follow_the_features():
    env = make_env("lift", obs="pixels", image_size=32)
    implied = task_overrides_for(env.features)
    env.close()
    assert implied == {"obs": "pixels", "image_size": 32, "cameras": ("front", "wrist")}
    env = make_env("reach")
    assert task_overrides_for(env.features) == {"obs": "state"}
    env.close()


def test_exported_bundle_evaluates_like_its_checkpoint(trained, tmp_path, capsys):
    """export -> eval bundle=... with onnxruntime and torch: the same episodes as the checkpoint itself."""
    bundle = tmp_path / "bundle"
    assert main(["export", f"checkpoint={trained}", f"out={bundle}"]) == 0
    assert "export toy_mlp" in capsys.readouterr().out
    runs = {}
    for name, args in {
        "checkpoint": [f"checkpoint={trained}"],
        "onnxruntime": [f"bundle={bundle}", "runtime=onnxruntime"],
        "torch": [f"bundle={bundle}", "runtime=torch"],
    }.items():
        out = tmp_path / name
        assert main(["eval", *args, "episodes=4", "num_envs=2", f"out={out}"]) == 0
        runs[name] = json.loads((out / "eval.json").read_text())
    assert runs["onnxruntime"]["runtime"] == "onnxruntime" and runs["torch"]["runtime"] == "torch"
    assert runs["onnxruntime"]["task"]["name"] == "reach"  # recorded in policy.json at export
    for name in ("onnxruntime", "torch"):
        assert runs[name]["successes"] == runs["checkpoint"]["successes"]
        assert runs[name]["episode_lengths"] == runs["checkpoint"]["episode_lengths"]
        np.testing.assert_allclose(
            runs[name]["max_rewards"], runs["checkpoint"]["max_rewards"], atol=1e-4
        )
    assert any(
        runs["checkpoint"]["successes"]
    )  # the comparison is about a policy that does something


def test_eval_cli_rejects_runtime_for_checkpoints_and_both_sources(trained, capsys):
    assert main(["eval", f"checkpoint={trained}", "runtime=onnxruntime", "episodes=1"]) == 2
    assert "export first" in capsys.readouterr().err
    assert main(["eval", f"checkpoint={trained}", f"bundle={trained}", "episodes=1"]) == 2
    assert "exactly one of" in capsys.readouterr().err
