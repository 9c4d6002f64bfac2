"""Imitation training: windows, sampler, schedule, checkpoints, exact resume, a policy that learns.

The loop tests use ``toy_mlp`` (tests/toy_policy.py, trains in milliseconds; it has dropout so
resuming must restore the RNG); the learning test trains the real ``flow`` policy with a small
U-Net on ``reach``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_policy
from safetensors import safe_open
from safetensors.torch import load_file

from robot_learning.cli import main
from robot_learning.collect import CollectConfig, collect
from robot_learning.datasets import LeRobotDataset, LeRobotDatasetWriter
from robot_learning.envs import TaskConfig
from robot_learning.features import Feature, FeatureMismatchError, FeatureSpec
from robot_learning.training import (
    StepBatchSampler,
    TrainConfig,
    WindowDataset,
    lr_at,
    train,
    window_indices,
)
from robot_learning.training.checkpoint import (
    flatten_state,
    load_state,
    save_state,
    unflatten_state,
)
from robot_learning.training.windows import batch_iterator

TESTS = Path(__file__).parent


@pytest.fixture(scope="module", autouse=True)
def _toy_mlp_one_thread():
    with toy_policy.registered_one_thread():
        yield


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reach") / "demos"
    collect(CollectConfig(task=TaskConfig(name="reach"), out=str(out), episodes=50), progress=False)
    return out


def toy_config(dataset: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        policy="toy_mlp",
        dataset=str(dataset),
        out=str(out),
        steps=60,
        batch_size=16,
        lr=3e-3,
        warmup_steps=5,
        save_every=20,
        log_every=10,
        threads=1,
    )
    return TrainConfig(**{**base, **kw})


# --------------------------------------------------------------------------- windows
def test_window_indices_clamp_at_start_and_pad_at_end():
    obs, act, pad = window_indices(np.array([3, 5]), n_obs_steps=2, horizon=4)
    # episode 0 = frames 0..2: obs t-1..t (first frame repeated), actions t-1..t+2
    assert obs[:3].tolist() == [[0, 0], [0, 1], [1, 2]]
    assert act[:3].tolist() == [[0, 0, 1, 2], [0, 1, 2, 2], [1, 2, 2, 2]]
    assert pad[:3].tolist() == [
        [False] * 4,
        [False, False, False, True],
        [False, False, True, True],
    ]
    # episode 1 = frames 3..7: never reaches into episode 0
    assert obs[3].tolist() == [3, 3] and act[3].tolist() == [3, 3, 4, 5] and not pad[3].any()
    assert obs[7].tolist() == [6, 7] and act[7].tolist() == [6, 7, 7, 7]
    assert pad[7].tolist() == [False, False, True, True]


def test_window_dataset_gathers_frames_images_and_flags(tmp_path):
    spec = FeatureSpec(
        {
            "observation.state": Feature("float32", (2,)),
            "observation.images.cam": Feature(
                "image", (8, 8, 3)
            ),  # PNG: lossless, values checkable
            "action": Feature("float32", (1,), low=-100.0, high=100.0),
        }
    )
    with LeRobotDatasetWriter.create(tmp_path / "ds", spec, fps=10) as writer:
        index = 0
        for length in (3, 5):
            for t in range(length):
                writer.add_frame(
                    {
                        "observation.state": np.array([index, t], np.float32),
                        "observation.images.cam": np.full((8, 8, 3), index, np.uint8),
                        "action": np.array([10 * index], np.float32),
                    },
                    task="synthetic",
                )
                index += 1
            writer.save_episode()
    windows = WindowDataset(
        LeRobotDataset(tmp_path / "ds"),
        ["observation.state", "observation.images.cam"],
        n_obs_steps=2,
        horizon=4,
    )
    assert len(windows) == 8
    batch = windows.get_batch([0, 2, 7])
    assert (
        batch["observation.state"].shape == (3, 2, 2)
        and batch["observation.state"].dtype == torch.float32
    )
    assert batch["observation.images.cam"].shape == (3, 2, 8, 8, 3)
    assert batch["observation.images.cam"].dtype == torch.uint8
    assert batch["observation.state"][:, :, 0].tolist() == [[0, 0], [1, 2], [6, 7]]
    assert batch["observation.images.cam"][:, :, 0, 0, 0].tolist() == [[0, 0], [1, 2], [6, 7]]
    assert batch["action"][..., 0].tolist() == [[0, 0, 10, 20], [10, 20, 20, 20], [60, 70, 70, 70]]
    assert batch["action_is_pad"].tolist() == [
        [False] * 4,
        [False, False, True, True],
        [False, False, True, True],
    ]
    single = windows[7]
    assert single["action"].shape == (4, 1) and single["observation.state"].shape == (2, 2)
    # worker processes gather exactly what the in-process path gathers
    sampler = StepBatchSampler(len(windows), 3, seed=1, end_step=4)
    in_process = list(batch_iterator(windows, sampler, num_workers=0))
    workers = list(
        batch_iterator(
            windows, StepBatchSampler(len(windows), 3, seed=1, end_step=4), num_workers=1
        )
    )
    assert all(torch.equal(a[k], b[k]) for a, b in zip(in_process, workers, strict=True) for k in a)
    with pytest.raises(FeatureMismatchError, match="observation.environment_state"):
        WindowDataset(LeRobotDataset(tmp_path / "ds"), ["observation.environment_state"], 2, 4)


def test_sampler_batches_depend_only_on_seed_and_step():
    full = StepBatchSampler(10, 4, seed=3, end_step=10)
    batches = list(full)
    # one epoch = 10 samples = positions 0..9: a permutation
    assert sorted(sum(batches[:2], []) + batches[2][:2]) == list(range(10))
    assert list(StepBatchSampler(10, 4, seed=3, start_step=6, end_step=10)) == batches[6:]
    assert list(StepBatchSampler(10, 4, seed=4, end_step=10)) != batches
    assert len(StepBatchSampler(10, 4, seed=3, start_step=6, end_step=10)) == 4


def test_lr_schedule_warmup_then_cosine(tmp_path):
    cfg = toy_config(tmp_path, tmp_path, steps=110, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)


# --------------------------------------------------------------------------- config errors
def test_config_errors_name_the_fields(tmp_path, reach_demos):
    with pytest.raises(ValueError, match="warmup_steps"):
        toy_config(tmp_path, tmp_path, steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="eval_every"):
        toy_config(tmp_path, tmp_path, eval_every=5)
    with pytest.raises(ValueError, match=r"policy\.hiden"):
        train(
            toy_config(reach_demos, tmp_path / "a", policy_overrides={"hiden": 3}), progress=False
        )
    with pytest.raises(ValueError, match="n_action_steps"):
        train(
            toy_config(reach_demos, tmp_path / "b", policy_overrides={"n_action_steps": 9}),
            progress=False,
        )


def test_bf16_precision_trains_under_autocast_with_fp32_weights(tmp_path, reach_demos):
    with pytest.raises(ValueError, match=r"precision='fp16' is not one of \('fp32', 'bf16'\)"):
        toy_config(reach_demos, tmp_path, precision="fp16")
    runs = {
        p: train(toy_config(reach_demos, tmp_path / p, steps=20, precision=p), progress=False)
        for p in ("fp32", "bf16")
    }
    fp32, bf16 = runs["fp32"].losses, runs["bf16"].losses
    assert all(np.isfinite(bf16)) and fp32[0] != bf16[0]  # the forward pass ran in bfloat16
    assert abs(fp32[0] - bf16[0]) < 0.05 * abs(fp32[0])  # ... and computed the same loss
    weights = load_file(str(tmp_path / "bf16" / "final" / "model.safetensors"))
    assert {w.dtype for w in weights.values()} == {torch.float32}


def test_dataset_task_mismatch_names_keys(tmp_path, reach_demos):
    # reach's dataset holds the target position; the lift env's environment state is the cube
    with pytest.raises(FeatureMismatchError, match="observation.environment_state"):
        train(toy_config(reach_demos, tmp_path / "a", task=TaskConfig(name="lift")), progress=False)
    with pytest.raises(FeatureMismatchError, match="missing.*observation.environment_state"):
        train(
            toy_config(reach_demos, tmp_path / "b", task=TaskConfig(name="reach", obs="pixels")),
            progress=False,
        )


# --------------------------------------------------------------------------- checkpoints and resume
def test_state_flattening_roundtrip_and_no_pickle(tmp_path):
    state = {
        "opt": {
            "state": {0: {"step": torch.tensor(3.0), "m": torch.ones(2)}},
            "groups": [{"betas": (0.9, 0.99)}],
        },
        "numpy": ("MT19937", np.arange(5, dtype=np.uint32), 2, 0, 0.0),
        "n": None,
    }
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert back["opt"]["state"][0]["m"].tolist() == [1.0, 1.0] and back["opt"]["groups"][0][
        "betas"
    ] == (0.9, 0.99)
    assert back["numpy"][1].dtype == np.uint32 and back["numpy"][1].tolist() == [0, 1, 2, 3, 4]
    assert unflatten_state(flatten_state([1, "a"], {}), {}) == [1, "a"]
    with pytest.raises(TypeError, match="no pickle"):
        flatten_state({"bad": object()}, {})


def test_resume_after_crash_matches_uninterrupted_run(tmp_path, reach_demos):
    straight = train(toy_config(reach_demos, tmp_path / "a"), progress=False)

    class Crash(Exception):
        pass

    crashed_losses = []

    def crash(step, loss):
        crashed_losses.append(loss)
        if step == 27:  # after the step-20 checkpoint: steps 21..27 are lost and redone
            raise Crash

    with pytest.raises(Crash):
        train(toy_config(reach_demos, tmp_path / "b"), progress=False, on_step=crash)
    assert crashed_losses == straight.losses[:27]  # same seed, same loss curve
    assert not (tmp_path / "b" / "final").exists()
    with pytest.raises(FileExistsError, match="resume=true"):
        train(toy_config(reach_demos, tmp_path / "b"), progress=False)
    resumed = train(toy_config(reach_demos, tmp_path / "b", resume=True), progress=False)
    assert resumed.start_step == 20 and len(resumed.losses) == 40
    assert resumed.losses == straight.losses[20:]  # bit-identical loss curve
    a, b = (
        load_file(str(p / "final" / "model.safetensors")) for p in (tmp_path / "a", tmp_path / "b")
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the checkpoint holds only safetensors and JSON; last points at the newest one
    ckpts = tmp_path / "b" / "checkpoints"
    assert os.readlink(ckpts / "last") == "step_000060"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "last",
        "step_000020",
        "step_000040",
        "step_000060",
    ]
    for path in ckpts.rglob("*"):
        assert path.is_dir() or path.suffix in (".safetensors", ".json"), path
    with safe_open(str(ckpts / "last" / "training_state.safetensors"), "pt") as f:
        assert any(k.startswith("/ema/shadow.") for k in f.keys())  # noqa: SIM118
    meta = json.loads((ckpts / "last" / "config.json").read_text())
    assert meta["step"] == 60 and meta["train_config"]["policy"] == "toy_mlp"
    assert json.loads((tmp_path / "b" / "train_config.json").read_text())["seed"] == 0
    assert list((tmp_path / "b" / "tb").glob("events.out.tfevents.*"))
    with pytest.raises(ValueError, match="batch_size"):
        train(
            toy_config(reach_demos, tmp_path / "b", resume=True, batch_size=8, steps=80),
            progress=False,
        )


def test_killed_cli_run_resumes_to_the_same_weights(tmp_path, reach_demos):
    """SIGKILL a ``robot-learning train`` process mid-run; resume=true ends on identical weights."""
    conf = tmp_path / "conf" / "policy"
    conf.mkdir(parents=True)
    (conf / "toy_mlp.yaml").write_text("name: toy_mlp\nhidden: 256\ndropout: 0.1\n")
    args = [
        "train",
        "policy=toy_mlp",
        f"dataset={reach_demos}",
        "steps=600",
        "save_every=50",
        "batch_size=64",
        "threads=1",
        "warmup_steps=10",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
    ]
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import toy_policy; toy_policy.register(); from robot_learning.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, f"out={tmp_path / 'killed'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = tmp_path / "killed" / "checkpoints" / "last"
    deadline = time.monotonic() + 60
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists() and not (tmp_path / "killed" / "final").exists()
    assert main([*args, f"out={tmp_path / 'killed'}", "resume=true"]) == 0
    assert main([*args, f"out={tmp_path / 'straight'}"]) == 0
    a, b = (
        load_file(str(tmp_path / d / "final" / "model.safetensors")) for d in ("killed", "straight")
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- learning
def test_flow_policy_learns_reach(tmp_path, reach_demos):
    """The real flow policy (small U-Net) learns reach from 50 demos in ~1000 steps."""
    cfg = TrainConfig(
        policy="flow",
        dataset=str(reach_demos),
        out=str(tmp_path / "flow"),
        steps=1000,
        batch_size=64,
        lr=3e-3,
        warmup_steps=20,
        save_every=1000,
        threads=1,
        task=TaskConfig(name="reach"),
        eval_every=1000,
        eval_episodes=10,
        policy_overrides=dict(
            down_dims=[64],
            horizon=4,
            n_action_steps=2,
            n_obs_steps=1,
            time_embed_dim=32,
            kernel_size=3,
        ),
    )
    result = train(cfg, progress=False)
    assert np.mean(result.losses[-50:]) < 0.5 * np.mean(result.losses[:50])
    evaluation = result.evals[1000]
    assert evaluation["success_rate"] >= 0.8, evaluation
    assert (
        json.loads((tmp_path / "flow" / "evals" / "step_001000.json").read_text())["episodes"] == 10
    )


# --------------------------------------------------------------------------- CLI and configs
@pytest.mark.parametrize("name", ["diffusion", "flow", "meanflow"])
def test_policy_yaml_lists_every_field_with_the_dataclass_default(name):
    import dataclasses

    import yaml

    from robot_learning.policy import POLICIES

    data = yaml.safe_load((TESTS.parent / "configs" / "policy" / f"{name}.yaml").read_text())
    assert data.pop("name") == name
    defaults = json.loads(
        json.dumps(dataclasses.asdict(POLICIES.get(name).config_class()))
    )  # tuples -> lists
    assert data == defaults


def test_train_cli_with_task_evaluates_and_rejects_unknown_fields(tmp_path, reach_demos, capsys):
    small = [
        "policy.down_dims=[16]",
        "policy.horizon=4",
        "policy.n_action_steps=2",
        "policy.time_embed_dim=8",
    ]
    args = [
        "train",
        "policy=flow",
        f"dataset={reach_demos}",
        "steps=4",
        "warmup_steps=0",
        "save_every=2",
        "task=reach",
        "eval_episodes=2",
        "eval_num_envs=2",
        "threads=1",
        *small,
    ]
    assert main([*args, f"out={tmp_path / 'run'}"]) == 0
    assert "eval at step 4" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "run" / "evals").iterdir()) == [
        "step_000002.json",
        "step_000004.json",
    ]
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    assert main([*args, f"out={tmp_path / 'b'}", "+policy.bogus=1"]) == 2
    assert "policy.bogus" in capsys.readouterr().err
    assert main([*args, f"out={tmp_path / 'c'}", "policy.bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["train", "policy=nope", f"dataset={reach_demos}", f"out={tmp_path / 'd'}"]) == 2
    assert "policy/nope" in capsys.readouterr().err


def test_bench_train_end_to_end(tmp_path, capsys):
    conf = tmp_path / "conf" / "policy"
    conf.mkdir(parents=True)
    (conf / "toy_mlp.yaml").write_text("name: toy_mlp\n")
    args = [
        "bench",
        "train",
        "preset=lift_state",
        "policy=toy_mlp",
        "demos=2",
        "steps=5",
        "eval_episodes=2",
        "latency_calls=3",
        "threads=1",
        f"data_root={tmp_path / 'data'}",
        f"out={tmp_path / 'bench'}",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
    ]
    assert main(args) == 0
    report = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert report["dataset"]["episodes"] == 2 and report["train"]["steps"] == 5
    assert report["eval"]["episodes"] == 2 and 0 <= report["eval"]["success_rate"] <= 1
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert (tmp_path / "bench" / "train" / "final" / "config.json").is_file()
    assert "bench.json" in capsys.readouterr().out
