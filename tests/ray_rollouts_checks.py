"""Ray rollout workers: the same datasets, evaluations and RL replay buffers as local runs, plain
payloads, bad settings (run in a fresh interpreter by tests/test_ray_rollouts.py)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import toy_policy

from robot_learning.cli import main
from robot_learning.collect import CollectConfig, collect
from robot_learning.datasets import LeRobotDataset
from robot_learning.envs import TaskConfig, make_env
from robot_learning.evaluation import EvalConfig
from robot_learning.ray_envs import remote_envs
from robot_learning.ray_rollouts import CollectWorker, plain, start_workers, stop_workers
from robot_learning.rl import FinetuneConfig, finetune
from robot_learning.rl.learner_state import LEARNER_FILE, REPLAY_FILE
from robot_learning.training.checkpoint import load_state

ray = pytest.importorskip("ray")

LIFT = TaskConfig(name="lift")
#: the scripted lift expert needs 22-24 steps: with 22 most episodes fail (seeds 7, 12, 15 succeed)
LIFT_SHORT = TaskConfig(name="lift", max_episode_steps=22)
#: gymnasium's Pendulum-v1 cut to 50-step episodes: a finetune run of 300 steps on two envs ends
#: three episodes per env
PENDULUM = TaskConfig(
    name="pendulum", backend="gymnasium", gym_id="Pendulum-v1", max_episode_steps=50
)
#: a seconds-scale SAC run on the command line (the local and the Ray run differ only in num_workers)
FINETUNE = [
    "finetune",
    "algo=sac",
    "task=pendulum",
    "task.max_episode_steps=50",
    "num_envs=2",
    "warmup_steps=100",
    "batch_size=32",
    "buffer_size=1000",
    "eval_every=0",
    "eval_episodes=1",
    "save_every=0",
    "threads=1",
    "algo.hidden=[16,16]",
]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local Ray cluster with two worker slots for the module; workers can load ``toy_mlp``."""
    tests = str(Path(__file__).parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": tests, "MUJOCO_GL": "osmesa"},
            "worker_process_setup_hook": "toy_policy.register",
        },
    )
    with toy_policy.registered_one_thread():
        yield
    ray.shutdown()


def assert_same_dataset(a: Path, b: Path) -> None:
    """Same episodes, frames and values in every column; the same collect.json counts."""
    da, db = LeRobotDataset(a), LeRobotDataset(b)
    assert da.episode_lengths == db.episode_lengths
    names = [*da.features, "episode_index", "frame_index", "timestamp", "task_index"]
    ca, cb = da.columns(names), db.columns(names)
    for name in names:
        np.testing.assert_array_equal(ca[name], cb[name], err_msg=name)
    ja, jb = (json.loads((p / "collect.json").read_text()) for p in (a, b))
    for key in ("episodes", "successes", "frames", "attempts", "attempt_successes"):
        assert ja[key] == jb[key], key


def test_collect_on_two_workers_equals_local(tmp_path):
    """CLI ``num_workers=2`` (4 episodes, then resumed to 6) == one local run of 6 episodes."""
    collect(CollectConfig(task=LIFT, out=str(tmp_path / "local"), episodes=6), progress=False)
    ray_out = tmp_path / "ray"
    args = ["collect", "task=lift", f"out={ray_out}", "num_workers=2"]
    assert main([*args, "episodes=4"]) == 0
    assert main([*args, "episodes=6", "resume=true"]) == 0
    assert_same_dataset(tmp_path / "local", ray_out)
    assert json.loads((ray_out / "collect.json").read_text())["config"]["num_workers"] == 2


def test_only_success_accounting_equals_local(tmp_path):
    """Failures discarded and max_attempts reached at the same seeds as locally (2 of 3 saved)."""
    runs = {}
    for name, workers in (("local", None), ("ray", 2)):
        cfg = CollectConfig(
            task=LIFT_SHORT,
            out=str(tmp_path / name),
            episodes=3,
            only_success=True,
            max_attempts=14,
            num_workers=workers,
        )
        runs[name] = collect(cfg, progress=False)
    local, distributed = runs["local"], runs["ray"]
    assert (local.episodes, local.attempts, local.attempt_successes) == (2, 14, 2)
    assert (distributed.episodes, distributed.attempts) == (local.episodes, local.attempts)
    assert_same_dataset(tmp_path / "local", tmp_path / "ray")


def test_eval_on_two_workers_equals_local(tmp_path):
    """Per-episode seeds, successes, lengths and rewards equal a local eval (a toy_mlp policy)."""
    env = make_env(LIFT)
    spec = env.features.select([*env.features.observation_keys, "action"])
    checkpoint = toy_policy.untrained_checkpoint(spec, tmp_path / "policy")
    common = [
        "eval",
        f"checkpoint={checkpoint}",
        "task=lift",
        "task.max_episode_steps=15",
        "episodes=5",
        "num_envs=2",
    ]
    assert main([*common, f"out={tmp_path / 'local'}"]) == 0
    assert main([*common, f"out={tmp_path / 'ray'}", "num_workers=2"]) == 0
    local, distributed = (
        json.loads((tmp_path / n / "eval.json").read_text()) for n in ("local", "ray")
    )
    for key in ("seeds", "successes", "episode_lengths", "max_rewards", "returns", "flag_rates"):
        assert local[key] == distributed[key], key
    assert distributed["num_workers"] == 2 and len(set(local["returns"])) > 1


def test_worker_replies_are_plain_values():
    """What crosses the wire is primitives and bytes (Ray would pickle a numpy array)."""
    [worker] = start_workers(CollectWorker, 1, None, asdict(LIFT), "scripted", None)
    try:
        reply = ray.get(worker.episode.remote(3))
    finally:
        stop_workers([worker])
    assert {k: type(v) for k, v in reply.items()} == {
        "seed": int,
        "success": bool,
        "frames": int,
        "tasks": str,
        "data": bytes,
    }
    assert plain(reply, "reply") is reply
    with pytest.raises(TypeError, match=r"reply\.data: ndarray is not a plain value"):
        plain({**reply, "data": np.zeros(3)}, "reply")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_workers": 0}, "num_workers=0 must be >= 1"),
        ({"cluster": "auto"}, "cluster='auto' needs num_workers=N"),
        ({"num_workers": 2, "cluster": "nowhere"}, "must be local, auto or a Ray address"),
        ({"num_workers": 2, "robot": {"type": "sim"}}, "robot=... runs episodes on one real robot"),
    ],
)
def test_bad_worker_settings_are_refused(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        CollectConfig(task=LIFT, out=str(tmp_path / "d"), **settings)
    assert not (tmp_path / "d").exists()


def test_local_cluster_without_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(ValueError, match="RAY_AUTH_MODE=disabled would start a Ray cluster"):
        CollectConfig(task=LIFT, out=str(tmp_path / "d"), num_workers=2)


def test_bad_worker_settings_on_the_command_line(tmp_path, capsys):
    assert main(["collect", "task=lift", f"out={tmp_path / 'd'}", "num_workers=0"]) == 2
    assert "num_workers=0 must be >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="video=true records videos in this process"):
        EvalConfig(task=LIFT, num_workers=2, video_episodes=1)
    assert main(["eval", "bundle=/nonexistent", "task=lift", "cluster=auto"]) == 2
    assert "cluster='auto' needs num_workers=N" in capsys.readouterr().err


def test_finetune_on_two_workers_equals_local(tmp_path):
    """The replay buffer and networks of a SAC run whose envs step on 2 Ray workers (230 steps,
    stopped mid-episode, resumed to 300) are bit-identical to a local run of 300 steps."""
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main([*FINETUNE, f"out={local}", "env_steps=300"]) == 0
    ray_args = [*FINETUNE, f"out={remote}", "num_workers=2"]
    assert main([*ray_args, "env_steps=230"]) == 0
    assert main([*ray_args, "env_steps=300", "resume=true"]) == 0
    a, b = (run / "checkpoints" / "last" for run in (local, remote))
    from safetensors.numpy import load_file

    replay_a, replay_b = load_file(str(a / REPLAY_FILE)), load_file(str(b / REPLAY_FILE))
    assert replay_a.keys() == replay_b.keys()
    for key in replay_a:
        np.testing.assert_array_equal(replay_a[key], replay_b[key], err_msg=key)
    state_a, state_b = load_state(a / LEARNER_FILE), load_state(b / LEARNER_FILE)
    for name, tensor in state_a["algo"]["actor"].items():
        assert (tensor == state_b["algo"]["actor"][name]).all(), name
    assert state_a["algo"]["updates"] == state_b["algo"]["updates"] == 200
    summary = json.loads((remote / "finetune.json").read_text())
    assert summary["train_episodes"] == 6  # two envs, three 50-step episodes each
    assert json.loads((remote / "finetune_config.json").read_text())["num_workers"] == 2


def test_remote_env_replies_are_plain_and_match_a_local_env():
    """An EnvWorker's replies are primitives and bytes; its proxy steps like the local env (two
    workers stepped through one batch: test_finetune_on_two_workers_equals_local)."""
    envs, env = remote_envs(PENDULUM, 1, None), make_env(PENDULUM)
    try:
        worker = envs[0].worker
        reset = ray.get(worker.reset.remote(3))
        step = ray.get(worker.step.remote([0.5]))
        assert {k: type(v) for k, v in reset.items()} == {"obs": bytes, "info": dict}
        assert {k: type(v) for k, v in step.items()} == {
            "obs": bytes,
            "reward": float,
            "terminated": bool,
            "truncated": bool,
            "info": dict,
        }
        assert step["info"] == {"is_success": False}
        assert plain(step, "reply") is step
        assert envs[0].features == env.features and envs[0].fps == env.fps
        expected = env.reset(seed=3)[0]["observation.state"]
        np.testing.assert_array_equal(envs[0].reset(seed=3)[0]["observation.state"], expected)
        action = np.array([0.5], np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        got = envs[0].step(action)
        np.testing.assert_array_equal(got[0]["observation.state"], obs["observation.state"])
        assert got[1:4] == (float(reward), bool(terminated), bool(truncated))
    finally:
        for proxy in envs:
            proxy.close()
        env.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_workers": 2, "num_envs": 2, "env_threads": 2}, "env_threads=2 with num_workers=2"),
        ({"num_workers": 2}, "num_workers=2 needs num_envs=2 \\(got num_envs=1\\)"),
        ({"num_workers": 0}, "num_workers=0 must be >= 1"),
    ],
)
def test_bad_finetune_worker_settings_are_refused(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(task=PENDULUM, out=str(tmp_path / "r"), env_steps=300, **settings)


@pytest.mark.parametrize("algo", ["residual", "hil_serl"])
def test_finetune_algorithms_that_cannot_use_workers_are_refused(tmp_path, algo):
    cfg = FinetuneConfig(
        task=PENDULUM, out=str(tmp_path / "r"), algo=algo, env_steps=300, num_envs=2, num_workers=2
    )
    with pytest.raises(ValueError, match=f"algo={algo} .*drop num_workers="):
        finetune(cfg)
    assert not (tmp_path / "r").exists()


def test_finetune_worker_settings_on_the_command_line(tmp_path, capsys):
    assert main(["finetune", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "num_workers" in help_text and "cluster" in help_text
    args = ["finetune", "task=pendulum", f"out={tmp_path / 'r'}", "num_workers=2"]
    assert main(args) == 2
    assert "num_workers=2 needs num_envs=2" in capsys.readouterr().err
    assert main([*args, "algo=pa_rl", "num_envs=2"]) == 2
    assert "algo=pa_rl runs its own loop in this process" in capsys.readouterr().err
