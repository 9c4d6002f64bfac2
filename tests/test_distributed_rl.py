"""``finetune`` under torchrun: two CPU processes (gloo) split each gradient batch and end with
the one-process run's weights and replay buffer; only rank 0 writes; a distributed run resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from test_distributed_training import run as run_procs

from robot_learning.rl.distributed import average_gradients, shard_batch, update_stream
from robot_learning.rl.learner_state import LEARNER_FILE, REPLAY_FILE
from robot_learning.training.checkpoint import load_state
from robot_learning.training.distributed import Distributed


def finetune_args(out: Path, *extra: str) -> list[str]:
    # td3 without target smoothing noise: no sampling in the losses, so a split batch gives the
    # same gradient (up to summation order)
    return ["finetune", "algo=td3", "task=pendulum", f"out={out}", "env_steps=240",
            "warmup_steps=80", "batch_size=32", "eval_every=0", "eval_episodes=1",
            "save_every=120", "threads=1", "algo.policy_noise=0.0", "algo.hidden=[32,32]",
            "task.max_episode_steps=60", *extra]  # fmt: skip


def last(run: Path) -> tuple[dict, dict]:
    ckpt = run / "checkpoints" / "last"
    return load_state(ckpt / LEARNER_FILE), load_file(str(ckpt / REPLAY_FILE))


def assert_same_run(a: Path, b: Path) -> None:
    (state_a, replay_a), (state_b, replay_b) = last(a), last(b)
    assert state_a["algo"]["updates"] == state_b["algo"]["updates"] > 0
    for net in ("actor", "critic"):
        for name, tensor in state_a["algo"][net].items():
            torch.testing.assert_close(state_b["algo"][net][name], tensor, atol=1e-4, rtol=1e-4)
    for key in replay_a:
        np.testing.assert_allclose(replay_b[key], replay_a[key], atol=1e-4, err_msg=key)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rl_ddp") / "one"
    run_procs(finetune_args(out), 1, out.parent)
    return out


def test_two_processes_match_one_with_the_same_global_batch(one_process, tmp_path):
    two = tmp_path / "two"
    done = run_procs(finetune_args(two), 2, tmp_path)
    assert_same_run(one_process, two)
    summary = json.loads((two / "finetune.json").read_text())
    assert summary["env_steps"] == 240 and summary["processes"] == 2
    assert done.stdout.count("env steps,") == 1  # rank 0 alone reports (and writes)


def test_a_distributed_run_resumes_where_it_stopped(one_process, tmp_path):
    run = tmp_path / "resumed"
    run_procs(finetune_args(run, "env_steps=120"), 2, tmp_path)
    run_procs(finetune_args(run, "resume=true"), 2, tmp_path)
    assert_same_run(one_process, run)


def test_update_stream_decouples_collection_from_the_batch_split():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    with update_stream(seed=3, update=7):
        first = torch.randn(4)
    assert torch.equal(torch.rand(2), expected)  # the caller's stream did not move
    with update_stream(seed=3, update=7):
        assert torch.equal(torch.randn(4), first)
    with update_stream(seed=3, update=8):
        assert not torch.equal(torch.randn(4), first)


def test_shards_and_the_single_process_case():
    from robot_learning.rl.algos import Batch

    batch = Batch(
        obs={"state": torch.arange(8.0).reshape(4, 2)},
        action=torch.arange(4.0)[:, None],
        reward=torch.zeros(4),
        discount=torch.ones(4),
        next_obs=torch.arange(8.0).reshape(4, 2),
        is_demo=torch.zeros(4, dtype=torch.bool),
    )
    second = shard_batch(batch, Distributed(rank=1, world_size=2))
    assert second.action.ravel().tolist() == [2.0, 3.0]
    assert second.obs["state"].tolist() == [[4.0, 5.0], [6.0, 7.0]]
    assert shard_batch(batch, Distributed()) is batch
    assert average_gradients(object(), Distributed()) == 0
    with pytest.raises(ValueError, match="no torch optimizer"):
        average_gradients(object(), Distributed(rank=0, world_size=2))


def test_bad_distributed_settings_are_named(monkeypatch, tmp_path):
    from robot_learning.envs import TaskConfig
    from robot_learning.rl import FinetuneConfig, finetune

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    base = dict(task=TaskConfig(name="reach"), out=str(tmp_path / "x"), algo="td3")
    with pytest.raises(ValueError, match="batch_size=33 must be a multiple of the 2 processes"):
        finetune(FinetuneConfig(**base, batch_size=33))
    with pytest.raises(ValueError, match="Ray environment workers.*not supported"):
        finetune(FinetuneConfig(**base, batch_size=32, num_envs=2, num_workers=2))
    assert not (tmp_path / "x").exists()
