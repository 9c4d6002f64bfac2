"""``teleop``: the simulated operator, intervention mode, re-recording, resume and the correction loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import toy_policy

from hardware.teleop.base import DEVICES, DeviceError, TeleopContext, TeleopInput
from hardware.teleop.expert import ExpertDevice
from robot_learning.cli import main
from robot_learning.datasets import LeRobotDataset, LeRobotDatasetWriter
from robot_learning.envs import TaskConfig, make_env, make_expert
from robot_learning.features import ACTION, FeatureMismatchError
from robot_learning.interventions import INTERVENTION_START, IS_INTERVENTION, POLICY_ACTION
from robot_learning.teleop import PolicyDriver, TeleopConfig, load_policy, teleop
from robot_learning.training import TrainConfig, train
from robot_learning.training.windows import StepBatchSampler, WindowDataset

TELEOP_KEYS = (
    "episodes",
    "successes",
    "success_rate",
    "frames",
    "interventions",
    "intervention_frames",
)


def _frames(root: Path) -> list[dict[str, np.ndarray]]:
    ds = LeRobotDataset(root)
    return [ds.episode(e) for e in range(ds.num_episodes)]


def _summary(root: Path) -> dict:
    return json.loads((Path(root) / "teleop.json").read_text())


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    """Two plain demonstrations of lift by the simulated operator, through the CLI."""
    out = tmp_path_factory.mktemp("teleop") / "demos"
    assert main(["teleop", "task=lift", "device=expert", "episodes=2", f"out={out}"]) == 0
    return out


@pytest.fixture(scope="module")
def corrections(tmp_path_factory) -> Path:
    """A weak (untrained) policy drives lift; the simulated operator corrects it."""
    root = tmp_path_factory.mktemp("corrections")
    env = make_env("lift")
    with toy_policy.registered():
        checkpoint = toy_policy.untrained_checkpoint(env.features, root / "ckpt")
        cfg = TeleopConfig(
            task=TaskConfig(name="lift"),
            out=str(root / "data"),
            device="expert",
            episodes=2,
            policy=str(checkpoint),
        )
        teleop(cfg, progress=False)
    env.close()
    return root / "data"


# --------------------------------------------------------------------------- plain demos
def test_expert_demos_validate_train_and_resume(demos, tmp_path):
    episodes = _frames(demos)
    assert len(episodes) == 2
    summary = _summary(demos)
    assert all(k in summary for k in TELEOP_KEYS)
    assert summary["episodes"] == 2 and summary["frames"] == sum(len(e[ACTION]) for e in episodes)
    assert summary["successes"] == 2 and summary["success_rate"] == 1.0  # lift's expert succeeds
    assert summary["interventions"] == summary["intervention_frames"] == 0
    for ep in episodes:  # without a policy: policy_action = action, flags 0 (uniform schema)
        np.testing.assert_array_equal(ep[POLICY_ACTION], ep[ACTION])
        assert not ep[IS_INTERVENTION].any() and not ep[INTERVENTION_START].any()
        assert ep["next.success"][-1] and ep["next.done"][-1] and not ep["next.done"][:-1].any()
    assert main(["dataset", "validate", str(demos)]) == 0
    run = tmp_path / "run"
    args = ["train", "policy=flow", "policy.down_dims=[8,16]", "steps=3", "threads=1"]
    assert main([*args, f"dataset={demos}", f"out={run}"]) == 0
    assert (run / "final" / "model.safetensors").is_file()

    # resume: episodes= is the total; a second resume at the same total records nothing
    copy = tmp_path / "resumed"
    import shutil

    shutil.copytree(demos, copy)
    base = ["teleop", "task=lift", "device=expert", f"out={copy}", "resume=true"]
    assert main([*base, "episodes=3"]) == 0
    summary = _summary(copy)
    assert summary["episodes"] == 3 and summary["this_run"]["episodes"] == 1
    assert LeRobotDataset(copy).num_episodes == 3
    assert main([*base, "episodes=3"]) == 0
    assert _summary(copy)["episodes"] == 3 and _summary(copy)["this_run"]["episodes"] == 0


def test_expert_device_delay_and_errors():
    env = make_env("lift")
    with pytest.raises(DeviceError, match="simulated task"):
        ExpertDevice(TeleopContext(env.features, env.fps, None)).connect()
    with pytest.raises(DeviceError, match="reaction_steps"):
        ExpertDevice(TeleopContext(env.features, env.fps, env, {"reacton_steps": 1}))
    outputs = {}
    for delay in (0, 3):
        device = ExpertDevice(TeleopContext(env.features, env.fps, env, {"reaction_steps": delay}))
        device.connect()
        obs, _ = env.reset(seed=4)
        device.reset(seed=4)
        outputs[delay] = [device.read(obs, None).action for _ in range(6)]  # same state each tick
    assert all(a is None for a in outputs[3][:3])  # nothing reaches the output before the delay
    for late, early in zip(outputs[3][3:], outputs[0][:3], strict=True):
        np.testing.assert_array_equal(late, early)  # the plan of tick t comes out at t + 3
    env.close()


def test_smoothed_drift_ignores_exploration_noise_but_not_a_bias():
    """With ``drift_smoothing`` a zero-mean noisy policy around the plan drives on; a biased one
    is taken over. Without smoothing the same noise triggers interventions."""
    env = make_env("lift")
    half = (np.asarray(env.features["action"].high) - np.asarray(env.features["action"].low)) / 2

    def takeovers(smoothing: float, bias: float) -> int:
        device = ExpertDevice(
            TeleopContext(
                env.features, env.fps, env, {"drift_smoothing": smoothing, "stall_steps": 0}
            )
        )
        obs, _ = env.reset(seed=1)
        device.reset(seed=1)
        reference = make_expert(env)  # the same plan as the device's expert, tick by tick
        reference.reset(seed=1)
        rng, count, was = np.random.default_rng(0), 0, False
        for _ in range(60):
            plan = np.asarray(reference.act(obs), np.float32)
            noisy = plan + half * (bias + 0.6 * rng.standard_normal(plan.shape))
            now = device.read(obs, noisy.astype(np.float32)).intervene
            count, was = count + (now and not was), now
        return count

    assert takeovers(1.0, 0.0) > 0  # per-tick noise looks like drift
    assert takeovers(0.25, 0.0) == 0
    assert takeovers(0.25, 0.8) > 0
    with pytest.raises(DeviceError, match="drift_smoothing"):
        ExpertDevice(TeleopContext(env.features, env.fps, env, {"drift_smoothing": 0.0}))
    env.close()


# --------------------------------------------------------------------------- intervention mode
def test_intervention_mode_records_corrections(corrections, tmp_path, monkeypatch):
    episodes = _frames(corrections)
    flagged = 0
    for ep in episodes:
        flags = ep[IS_INTERVENTION].ravel() > 0.5
        starts = ep[INTERVENTION_START].ravel() > 0.5
        expected = flags & ~np.concatenate([[False], flags[:-1]])  # first frame of each run
        np.testing.assert_array_equal(starts, expected)
        differs = np.abs(ep[POLICY_ACTION] - ep[ACTION]).max(axis=1) > 1e-6
        assert differs[flags].all()  # the operator's action replaced the policy's
        assert not differs[~flags].any()  # elsewhere the policy's action was executed
        flagged += int(flags.sum())
        assert 0 < flags.sum() < len(flags)  # the policy drove part of the episode
    summary = _summary(corrections)
    assert summary["intervention_frames"] == flagged
    assert summary["interventions"] == sum(int(ep[INTERVENTION_START].sum()) for ep in episodes)
    assert summary["interventions"] >= 2
    assert main(["dataset", "validate", str(corrections)]) == 0

    # deterministic given the seed: the same session records the same actions; every tick after
    # an intervened one re-plans from the current observation (hand-back included)
    replans = []
    original = PolicyDriver.replan
    monkeypatch.setattr(PolicyDriver, "replan", lambda self: (replans.append(1), original(self)))
    with toy_policy.registered():
        again = TeleopConfig(
            task=TaskConfig(name="lift"),
            out=str(tmp_path / "again"),
            device="expert",
            episodes=1,
            policy=str(corrections.parent / "ckpt"),
        )
        teleop(again, progress=False)
        np.testing.assert_array_equal(_frames(tmp_path / "again")[0][ACTION], episodes[0][ACTION])
        assert len(replans) == int(episodes[0][IS_INTERVENTION][:-1].sum()) > 0
        # hand-back re-plans: replan() empties the queued chunk but keeps the history
        env = make_env("lift")
        driver = load_policy(str(corrections.parent / "ckpt"), env)
        driver.reset(0)
        obs, _ = env.reset(seed=0)
        driver.act(obs)
        assert len(driver.policy._action_queue) == 1  # n_action_steps=2: one left
        driver.replan()
        assert len(driver.policy._action_queue) == 0 and len(driver.policy._obs_history) == 2
        env.close()


# --------------------------------------------------------------------------- scripted devices
class ScriptedDevice:
    """A test double of the device interface: zero actions, events at scripted ticks.

    ``script[(reset_number, tick)]`` is the event emitted on that tick of that episode attempt.
    """

    name = "scripted_test"
    script: dict[tuple[int, int], str] = {}

    def __init__(self, context: TeleopContext) -> None:
        self.shape = context.features[ACTION].shape
        self.resets, self.tick = -1, 0

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def reset(self, seed=None) -> None:
        self.resets, self.tick = self.resets + 1, 0

    def read(self, obs, policy_action) -> TeleopInput:
        event = self.script.get((self.resets, self.tick))
        self.tick += 1
        if event == "error":
            raise DeviceError("unplugged")
        inp = TeleopInput(action=np.zeros(self.shape, np.float32))
        if event:
            setattr(inp, event, True)
        return inp

    def show(self, obs, status) -> None:
        pass


@pytest.fixture
def scripted():
    DEVICES.register(ScriptedDevice.name)(ScriptedDevice)
    try:
        yield ScriptedDevice
    finally:
        DEVICES.unregister(ScriptedDevice.name)


def test_rerecord_discards_labels_and_stop(scripted, tmp_path):
    # attempt 0: rerecord at tick 3; attempt 1 (same seed): success at tick 5;
    # attempt 2: failure at tick 4, with stop at tick 1 -> the session ends after it (of 3 wanted)
    scripted.script = {(0, 3): "rerecord", (1, 5): "success", (2, 1): "stop", (2, 4): "failure"}
    out = tmp_path / "d"
    cfg = TeleopConfig(task=TaskConfig(name="lift"), out=str(out), device=scripted.name, episodes=3)
    result = teleop(cfg, progress=False)
    assert (result.episodes, result.rerecorded, result.stopped) == (2, 1, True)
    first, second = _frames(out)
    assert len(first[ACTION]) == 5 and len(second[ACTION]) == 4  # the event tick is not a frame
    assert first["next.success"][-1] and not second["next.success"].any()  # the operator's label
    assert first["next.done"][-1] and second["next.done"][-1]
    env = make_env("lift")
    obs, _ = env.reset(seed=0)  # the re-recorded episode kept its seed
    np.testing.assert_array_equal(first["observation.state"][0], obs["observation.state"])
    env.close()
    summary = _summary(out)
    assert (summary["episodes"], summary["successes"], summary["rerecorded"]) == (2, 1, 1)
    assert summary["success_rate"] == 0.5 and summary["stopped"]


def test_device_error_keeps_committed_episodes(scripted, tmp_path):
    scripted.script = {(0, 3): "success", (1, 2): "error"}
    out = tmp_path / "d"
    args = ["teleop", "task=lift", f"device={scripted.name}", "episodes=3", f"out={out}"]
    assert main(args) == 2
    assert LeRobotDataset(out).num_episodes == 1
    summary = _summary(out)
    assert summary["episodes"] == 1 and summary["interrupted"]
    assert "DeviceError: unplugged" in summary["error"]


# --------------------------------------------------------------------------- correction loop
def test_intervention_weight_sampling(demos, corrections):
    datasets = [LeRobotDataset(demos), LeRobotDataset(corrections)]
    windows = WindowDataset(datasets, ["observation.state"], 2, 4)
    assert len(windows) == sum(d.num_frames for d in datasets)
    flags = windows.is_intervention
    assert not flags[: datasets[0].num_frames].any()  # demos have no intervened frame
    assert flags.sum() == _summary(corrections)["intervention_frames"]
    assert windows.sample_weights(1.0) is None
    sampler = StepBatchSampler(len(windows), 64, seed=0, weights=windows.sample_weights(3.0))
    counts = np.bincount(
        np.concatenate([sampler.batch(s) for s in range(400)]), minlength=len(windows)
    )
    ratio = counts[flags].mean() / counts[~flags].mean()
    assert 2.7 < ratio < 3.3, ratio
    np.testing.assert_array_equal(
        sampler.batch(123),
        StepBatchSampler(len(windows), 64, seed=0, weights=windows.sample_weights(3.0)).batch(123),
    )  # pure in step
    uniform = StepBatchSampler(len(windows), 64, seed=0)
    counts = np.bincount(
        np.concatenate([uniform.batch(s) for s in range(40)]), minlength=len(windows)
    )
    assert counts.max() - counts.min() <= 1  # without weights: plain permutations


def test_train_on_demos_and_corrections_resumes_exactly(demos, corrections, tmp_path):
    def config(out, **kw):
        return TrainConfig(
            policy="toy_mlp",
            dataset=[str(demos), str(corrections)],
            out=str(out),
            steps=16,
            batch_size=16,
            warmup_steps=2,
            save_every=8,
            threads=1,
            intervention_weight=kw.pop("intervention_weight", 3.0),
            **kw,
        )

    class Crash(Exception):
        pass

    def crash(step, loss):
        if step == 12:
            raise Crash

    with toy_policy.registered():
        straight = train(config(tmp_path / "a"), progress=False)
        with pytest.raises(Crash):
            train(config(tmp_path / "b"), progress=False, on_step=crash)
        resumed = train(config(tmp_path / "b", resume=True), progress=False)
        assert resumed.start_step == 8 and resumed.losses == straight.losses[8:]
        unweighted = train(config(tmp_path / "c", intervention_weight=1.0), progress=False)
        assert unweighted.losses != straight.losses  # the weight changes what is sampled
        with pytest.raises(ValueError, match="intervention_weight"):
            train(config(tmp_path / "b", resume=True, intervention_weight=1.0), progress=False)
    recorded = json.loads((tmp_path / "a" / "train_config.json").read_text())
    assert recorded["dataset"] == [str(demos), str(corrections)]
    assert recorded["intervention_frames"] == _summary(corrections)["intervention_frames"]


def test_train_refuses_incompatible_datasets(demos, tmp_path):
    def tiny(root, task, fps):
        env = make_env(task)
        obs, _ = env.reset(seed=0)
        with LeRobotDatasetWriter.create(root, env.features, fps=fps) as writer:
            writer.add_frame({**obs, ACTION: np.zeros(env.features[ACTION].shape, np.float32)}, "t")
            writer.save_episode()
        env.close()
        return root

    def run(other, out):
        return train(
            TrainConfig(policy="flow", dataset=[str(demos), str(other)], out=str(out), steps=1),
            progress=False,
        )

    with pytest.raises(ValueError, match="fps=10 vs fps=20"):
        run(tiny(tmp_path / "rate", "lift", 20), tmp_path / "r1")
    with pytest.raises(FeatureMismatchError, match="does not have the features"):
        run(tiny(tmp_path / "reach", "reach", 10), tmp_path / "r2")
