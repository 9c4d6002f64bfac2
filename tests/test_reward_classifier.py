"""reward_classifier: a success classifier trained, thresholded, exported and loaded as a reward.

The toy dataset is written directly with the project's writer: 16x16 camera frames of noise,
where the frames labelled ``next.success`` show a bright patch in one corner (failed episodes
show a distractor patch in another corner instead). The classifier is trained through the
``robot-learning train`` CLI like any zoo member (one run shared by the module's tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from policies.reward_classifier.labels import (
    binary_metrics,
    frame_labels,
    pick_threshold,
    split_episodes,
)
from robot_learning.cli import main
from robot_learning.datasets import LeRobotDataset, LeRobotDatasetWriter
from robot_learning.export import ExportConfig, export_checkpoint
from robot_learning.features import Feature, FeatureMismatchError, FeatureSpec
from robot_learning.policy import POLICIES, Policy
from robot_learning.runtime import BundleError, ObservationError, load_bundle, load_reward_model
from robot_learning.runtime.bundle import BUNDLE_FILE, REWARD_OUTPUT
from robot_learning.training import TrainConfig, train

CAMERA = "observation.images.front"
SIZE = 16
LENGTH = 16
#: episode -> first success frame (None: a failed episode)
EPISODES = [9, 11, None, 10, 12, 9, None, 13, 10, None, 11, 12]
SPEC = FeatureSpec(
    {
        CAMERA: Feature("video", (SIZE, SIZE, 3)),
        "observation.state": Feature("float32", (2,)),
        "action": Feature("float32", (2,), low=-1.0, high=1.0),
        "next.reward": Feature("float32", (1,)),
        "next.done": Feature("bool", (1,)),
        "next.success": Feature("bool", (1,)),
    }
)
SMALL = [
    "policy.num_keypoints=8",
    "policy.image_feature_dim=16",
    "policy.hidden_dims=[32]",
    "policy.val_fraction=0.3",
]
TRAIN = ["steps=300", "batch_size=32", "lr=1e-3", "warmup_steps=20", "threads=1", "log_every=100"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def frame(ep: int, t: int, success: bool, failed: bool) -> np.ndarray:
    """Dim noise; a bright patch top-left on success frames, a distractor bottom-right late in failures."""
    image = np.random.default_rng([ep, t]).integers(0, 90, (SIZE, SIZE, 3), dtype=np.uint8)
    if success:
        image[2:7, 2:7] = 255
    elif failed and t >= 8:
        image[10:15, 10:15] = (255, 40, 40)
    return image


def write_dataset(root: Path, episodes=EPISODES, spec: FeatureSpec = SPEC) -> Path:
    """Episodes of LENGTH frames; ``next.success`` from the first success frame on."""
    with LeRobotDatasetWriter.create(root, spec, fps=10) as writer:
        for ep, first in enumerate(episodes):
            for t in range(LENGTH):
                success = first is not None and t >= first
                values = {
                    CAMERA: frame(ep, t, success, first is None),
                    "observation.state": np.array([t / LENGTH, ep / 10], np.float32),
                    "action": np.zeros(2, np.float32),
                    "next.reward": np.array([float(success)], np.float32),
                    "next.done": np.array([t == LENGTH - 1]),
                    "next.success": np.array([success]),
                }
                writer.add_frame({k: values[k] for k in spec}, task="show the patch")
            writer.save_episode()
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("rc") / "data")


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory) -> tuple[Path, str]:
    """The classifier trained through the CLI; returns (run folder, printed output)."""
    out = tmp_path_factory.mktemp("rc") / "run"
    args = ["train", "policy=reward_classifier", f"dataset={dataset}", f"out={out}"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*args, *TRAIN, *SMALL]) == 0
    return out, printed.getvalue()


def heldout_frames(dataset: Path, episodes: list[int]) -> tuple[list[dict], np.ndarray]:
    """(single observations as an env returns them, their labels) of ``episodes``."""
    data = LeRobotDataset(dataset)
    observations, labels = [], []
    for ep in episodes:
        frames = data.episode(ep)
        for t in range(len(frames["next.success"])):
            observations.append(
                {CAMERA: frames[CAMERA][t], "observation.state": frames["observation.state"][t]}
            )
            labels.append(bool(frames["next.success"][t][0]))
    return observations, np.asarray(labels)


# ---------------------------------------------------------------------- learning and metrics
def test_classifier_learns_the_patch_with_high_heldout_precision_and_recall(run, dataset):
    out, printed = run
    report = json.loads((out / "classifier.json").read_text())
    assert report["precision"] >= 0.9 and report["recall"] >= 0.9, report
    assert report["n_val_pos"] >= 5 and report["n_val_neg"] >= 20, report
    assert 0.0 < report["threshold"] < 1.0 and report["rule"] == "max_f1"
    # held-out episodes are whole episodes, stratified, and were not trained on
    held = report["val_episodes"]
    failed = [i for i, first in enumerate(EPISODES) if first is None]
    assert any(e in failed for e in held) and any(e not in failed for e in held)
    config = json.loads((out / "train_config.json").read_text())
    assert config["training_windows"] == (len(EPISODES) - len(held)) * LENGTH
    # pos_weight defaults to negatives / positives of the training frames
    train_eps = [e for e in range(len(EPISODES)) if e not in held]
    pos = sum(LENGTH - EPISODES[e] for e in train_eps if EPISODES[e] is not None)
    assert report["pos_weight"] == pytest.approx((len(train_eps) * LENGTH - pos) / pos)
    summary = json.loads((out / "train.json").read_text())["post_training"]["classifier"]
    assert summary == report
    assert "classifier: threshold" in printed and "precision" in printed and "recall" in printed


def test_threshold_and_metrics_travel_with_the_checkpoint(run, dataset):
    out, _ = run
    report = json.loads((out / "classifier.json").read_text())
    assert json.loads((out / "final" / "classifier.json").read_text()) == report
    assert json.loads((out / "final" / "config.json").read_text())["classifier"] == report
    policy = Policy.load(out / "final")
    assert float(policy.threshold) == pytest.approx(report["threshold"], abs=1e-7)
    for path in (out, out / "final"):  # the run folder resolves to final/
        model = load_reward_model(path)
        assert model.threshold == pytest.approx(report["threshold"], abs=1e-7)
        assert model.metrics == report and model.backend == "torch"
    # the loaded model, at its loaded threshold, reproduces the recorded held-out metrics
    observations, labels = heldout_frames(dataset, report["val_episodes"])
    probs = np.array([model.probability(obs) for obs in observations])
    got = binary_metrics(probs, labels, model.threshold)
    for key in ("precision", "recall", "f1", "accuracy"):
        assert got[key] == pytest.approx(report[key], abs=1e-6), key
    assert [model(obs)[1] for obs in observations[:3]] == list(probs[:3] >= model.threshold)


# ---------------------------------------------------------------------- export
def test_bundle_matches_torch_and_records_the_threshold(run, dataset, tmp_path):
    out, _ = run
    bundle = export_checkpoint(ExportConfig(checkpoint=str(out / "final"), out=str(tmp_path / "b")))
    spec = json.loads((bundle / BUNDLE_FILE).read_text())
    report = json.loads((out / "classifier.json").read_text())
    assert spec["policy"] == "reward_classifier"
    assert spec["reward_classifier"]["threshold"] == pytest.approx(report["threshold"], abs=1e-7)
    assert spec["reward_classifier"]["metrics"] == report
    assert [o["name"] for o in spec["outputs"]] == [REWARD_OUTPUT]
    assert [i["name"] for i in spec["inputs"]] == [CAMERA]  # no noise input, no state
    torch_model = load_reward_model(out / "final")
    onnx_model = load_reward_model(bundle)
    reference_runtime = load_reward_model(bundle, runtime="torch")
    assert onnx_model.backend == "onnxruntime" and onnx_model.threshold == torch_model.threshold
    observations, _ = heldout_frames(dataset, report["val_episodes"][:2])
    want = np.array([torch_model.probability(o) for o in observations])
    got = np.array([onnx_model.probability(o) for o in observations])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(
        [reference_runtime.probability(o) for o in observations], want, atol=1e-6, rtol=0
    )
    assert want.min() < torch_model.threshold < want.max()  # the frames span both classes
    with pytest.raises(BundleError, match="load_reward_model"):
        load_bundle(bundle)  # not a controller


def test_bad_observations_are_named(run):
    model = load_reward_model(run[0])
    good = model.neutral_observation()
    with pytest.raises(ObservationError, match=rf"missing \['{CAMERA}'\].*obs=pixels"):
        model.probability({"observation.state": np.zeros(2, np.float32)})
    with pytest.raises(ObservationError, match=r"expected one frame of shape \[16, 16, 3\]"):
        model.probability({CAMERA: good[CAMERA][None]})
    with pytest.raises(ObservationError, match="must be uint8"):
        model.probability({CAMERA: good[CAMERA].astype(np.float32)})


# ---------------------------------------------------------------------- dataset errors
def small_train_config(dataset: Path, out: Path) -> TrainConfig:
    return TrainConfig(
        policy="reward_classifier", dataset=str(dataset), out=str(out), steps=2, batch_size=4,
        threads=1, policy_overrides={"num_keypoints": 4, "image_feature_dim": 8, "hidden_dims": [8]},
    )  # fmt: skip


def test_dataset_without_success_column_is_refused_with_the_fix(tmp_path):
    spec = FeatureSpec({k: SPEC[k] for k in SPEC if k != "next.success"})
    data = write_dataset(tmp_path / "data", EPISODES[:3], spec)
    with pytest.raises(FeatureMismatchError, match=r"no 'next.success' column.*collect.*teleop"):
        train(small_train_config(data, tmp_path / "run"), progress=False)


def test_dataset_without_successes_is_refused_with_the_fix(tmp_path):
    data = write_dataset(tmp_path / "none", [None, None, None])
    with pytest.raises(ValueError, match=r"no frame with next.success = true.*successful episodes"):
        train(small_train_config(data, tmp_path / "run"), progress=False)
    one = write_dataset(tmp_path / "one", [None, 10, None])
    with pytest.raises(ValueError, match=r"only 1 episode\(s\) have a success frame"):
        train(small_train_config(one, tmp_path / "run1"), progress=False)


def test_a_controller_is_not_a_reward_model(tmp_path):
    from test_policies import make_policy

    make_policy("flow").save(tmp_path / "flow")
    with pytest.raises(ValueError, match="not a reward classifier"):
        load_reward_model(tmp_path / "flow")
    with pytest.raises(FileNotFoundError, match="policy=reward_classifier"):
        load_reward_model(tmp_path)


# ---------------------------------------------------------------------- labels and threshold rule
def test_labels_with_and_without_success_frames_after():
    success = np.array([0, 0, 1, 0, 0, 0, 0, 0, 1, 0], dtype=bool)  # episodes of 5 and 5 frames
    assert frame_labels(success, np.array([5, 5]), False).tolist() == success.tolist()
    assert frame_labels(success, np.array([5, 5]), True).astype(int).tolist() == [
        0, 0, 1, 1, 1, 0, 0, 0, 1, 1,
    ]  # fmt: skip
    # the absorbing state does not leak into the next episode
    assert frame_labels(success, np.array([3, 7]), True).astype(int).tolist() == [
        0, 0, 1, 0, 0, 0, 0, 0, 1, 1,
    ]  # fmt: skip


def test_threshold_rules_on_known_scores():
    probs = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    best = pick_threshold(probs, labels)
    assert best.rule == "max_f1" and best.threshold == pytest.approx(0.65)  # top 4: F1 0.75
    assert (best.precision, best.recall) == (0.75, 0.75) and (best.n_pos, best.n_neg) == (4, 5)
    strict = pick_threshold(probs, labels, min_precision=1.0)
    assert strict.threshold == pytest.approx(0.85)
    assert (strict.precision, strict.recall) == (1.0, 0.5)
    with pytest.raises(ValueError, match="positive and negative"):
        pick_threshold(probs, np.zeros(9, dtype=bool))


def test_split_holds_out_successful_and_failed_episodes():
    has = np.array([True] * 8 + [False] * 4)
    train_eps, held = split_episodes(has, 0.25, seed=0)
    assert sorted([*train_eps, *held]) == list(range(12))
    assert has[held].sum() == 2 and (~has[held]).sum() == 1
    assert np.array_equal(held, split_episodes(has, 0.25, seed=0)[1])  # seeded
    assert has[split_episodes(np.array([True, True, False]), 0.9, 0)[0]].any()  # one kept to train


def test_config_yaml_lists_every_field_and_bad_settings_are_named():
    cls = POLICIES.get("reward_classifier").config_class
    root = Path(__file__).parent.parent / "configs" / "policy" / "reward_classifier.yaml"
    data = yaml.safe_load(root.read_text())
    assert data.pop("name") == "reward_classifier"
    assert data == json.loads(json.dumps(dataclasses.asdict(cls())))
    with pytest.raises(ValueError, match="n_obs_steps, horizon and n_action_steps must be 1"):
        cls(n_obs_steps=2)
    with pytest.raises(ValueError, match=r"val_fraction=0 must be in \(0, 1\)"):
        cls(val_fraction=0)
