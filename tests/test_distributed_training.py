"""``train`` under torchrun: two CPU processes (gloo) take the same steps as one process with the
same global batch; only rank 0 writes; a distributed run resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robot_learning.training.distributed import Distributed

TOY_CLI = str(Path(__file__).parent / "toy_cli.py")
CONFIGS = str(Path(__file__).parent / "toy_configs")  # policy/toy_mlp.yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], procs: int, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    if procs == 1:
        cmd = [sys.executable, TOY_CLI, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={procs}",
               f"--master-port={free_port()}", "--master-addr=127.0.0.1", TOY_CLI, *args]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    from robot_learning.collect import CollectConfig, collect
    from robot_learning.envs import TaskConfig

    out = tmp_path_factory.mktemp("ddp") / "demos"
    collect(CollectConfig(task=TaskConfig(name="reach"), out=str(out), episodes=4), progress=False)
    return out


def train_args(demos: Path, out: Path, steps: int = 12, *extra: str) -> list[str]:
    # horizon 1: no padded action steps, so every process's slice has the same number of terms
    return ["train", f"config_dir={CONFIGS}", "policy=toy_mlp", f"dataset={demos}", f"out={out}", f"steps={steps}",
            "batch_size=16", "lr=3e-3", "warmup_steps=0", "threads=1", "use_ema=false",
            "save_every=6", "eval_every=0", "policy.dropout=0.0", "policy.n_obs_steps=1", "policy.horizon=1",
            "policy.n_action_steps=1", *extra]  # fmt: skip


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final" / "model.safetensors"))


def test_two_processes_match_one_with_the_same_global_batch(demos, tmp_path):
    run(train_args(demos, tmp_path / "one"), 1, tmp_path)
    run(train_args(demos, tmp_path / "two"), 2, tmp_path)
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=1e-4, msg=key)
    halfway = load_file(str(tmp_path / "two" / "checkpoints" / "step_000006" / "model.safetensors"))
    assert any(not torch.equal(two[k], halfway[k]) for k in two)  # the steps did move the weights
    # rank 0 alone wrote: one summary, one TensorBoard event file, checkpoints at 6 and 12
    summary = json.loads((tmp_path / "two" / "train.json").read_text())
    assert summary["steps"] == 12 and len(list((tmp_path / "two" / "tb").iterdir())) == 1
    config = json.loads((tmp_path / "two" / "train_config.json").read_text())
    assert config["processes"] == 2 and config["batch_size"] == 16
    steps = sorted(p.name for p in (tmp_path / "two" / "checkpoints").glob("step_*"))
    assert steps == ["step_000006", "step_000012"]


def test_a_distributed_run_resumes_where_it_stopped(demos, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    run(train_args(demos, run_dir), 2, tmp_path)
    full = weights(run_dir)
    # the same run killed right after its step-6 checkpoint
    shutil.rmtree(run_dir / "final")
    shutil.rmtree(run_dir / "checkpoints" / "step_000012")
    (run_dir / "checkpoints" / "last").unlink()
    os.symlink("step_000006", run_dir / "checkpoints" / "last")
    run(train_args(demos, run_dir, 12, "resume=true"), 2, tmp_path)
    resumed = weights(run_dir)
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], atol=1e-6, rtol=1e-5, msg=key)
    summary = json.loads((run_dir / "train.json").read_text())
    assert summary["start_step"] == 6 and summary["steps"] == 12


def test_uneven_batches_and_bad_launch_settings_are_named(monkeypatch):
    with pytest.raises(ValueError, match="batch_size=15 must be a multiple of the 2 processes"):
        Distributed(0, 2).check_batch(15)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        Distributed.from_env()
    monkeypatch.setenv("RANK", "1")
    assert Distributed.from_env() == Distributed(1, 2, 1)
