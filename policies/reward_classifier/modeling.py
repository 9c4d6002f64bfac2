"""Binary success classifier on camera frames (optionally with state), registered as ``reward_classifier``.

The learned reward of SERL / HIL-SERL (Luo et al. 2024): on a real robot there is no success
signal, so a classifier trained on labelled frames says when the task is done, and RL uses it
as a sparse reward and as the termination signal. Reads top to bottom: config, networks (the
zoo's :class:`~policies.common.encoders.ObservationEncoder` on one frame + an MLP head giving
one logit), loss (binary cross-entropy with positives weighted by ``pos_weight``), then the two
training hooks of :class:`~robot_learning.policy.Policy`:

* :meth:`prepare_training` labels every frame from ``next.success`` (written by ``collect`` from
  the simulator and by ``teleop`` from the operator), holds out whole episodes
  (``val_fraction``, stratified, seeded) and sets ``pos_weight`` from the training frames;
* :meth:`finish_training` scores the held-out frames, picks the decision threshold
  (:func:`~policies.reward_classifier.labels.pick_threshold`) and stores it as a buffer, so it
  ships in ``model.safetensors`` with the weights; precision, recall and the rest go to
  ``classifier.json`` in the run folder and in every checkpoint folder saved afterwards, and
  into ``policy.json`` of exported bundles.

It is a zoo member that predicts no actions (``predicts_actions = False``): its exported graph
maps observations to the success probability ``[batch]``; load a checkpoint or a bundle with
:func:`robot_learning.runtime.reward.load_reward_model`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from policies.common.encoders import ObservationEncoder
from policies.reward_classifier.configuration import RewardClassifierConfig
from policies.reward_classifier.labels import (
    episode_frames,
    episode_has_positive,
    frame_labels,
    pick_threshold,
    split_episodes,
)
from robot_learning.features import FeatureMismatchError, FeatureSpec
from robot_learning.policy import Policy, register_policy
from robot_learning.runtime.bundle import REWARD_OUTPUT, REWARD_SECTION

if TYPE_CHECKING:
    from robot_learning.training.windows import WindowDataset

log = logging.getLogger(__name__)

SUCCESS = "next.success"
STATE = "observation.state"
#: batch key of the per-frame labels attached by prepare_training
LABEL = "success_label"
#: file in the run folder and in checkpoint folders, and its config.json key
CLASSIFIER_FILE = "classifier.json"
CLASSIFIER_KEY = "classifier"
#: frames scored per forward pass when picking the threshold
EVAL_BATCH = 256


@register_policy("reward_classifier")
class RewardClassifier(Policy):
    """Observation encoder + MLP head -> one success logit per frame (see the module docstring)."""

    config_class = RewardClassifierConfig
    predicts_actions = False
    graph_output = REWARD_OUTPUT

    def __init__(
        self, config: RewardClassifierConfig, features: FeatureSpec, stats: dict | None
    ) -> None:
        keys = config.input_keys or _default_inputs(features, config.use_state)
        super().__init__(dataclasses.replace(config, input_keys=keys), features, stats)
        self.config: RewardClassifierConfig = self.config
        cfg = self.config
        self.encoder = ObservationEncoder(
            self.features,
            self.state_keys,
            self.image_keys,
            n_obs_steps=1,
            state_mlp_dims=cfg.state_mlp_dims,
            vision_backbone=cfg.vision_backbone,
            crop_ratio=cfg.crop_ratio,
            num_keypoints=cfg.num_keypoints,
            image_feature_dim=cfg.image_feature_dim,
        )
        layers: list[nn.Module] = []
        width = self.encoder.out_dim
        for hidden in cfg.hidden_dims:
            layers += [nn.Dropout(cfg.dropout), nn.Linear(width, hidden), nn.Mish()]
            width = hidden
        self.head = nn.Sequential(*layers, nn.Dropout(cfg.dropout), nn.Linear(width, 1))
        # buffers ship with the weights: the loss weight the run used and the decision threshold
        self.register_buffer("pos_weight", torch.tensor(float(cfg.pos_weight or 1.0)))
        self.register_buffer("threshold", torch.tensor(0.5))
        self.metrics: dict[str, Any] | None = None
        """Held-out metrics of :meth:`finish_training` (None until then; not restored by load)."""

    # ------------------------------------------------------------------ network
    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation keys ``[B, 1, *shape]`` (raw: uint8 HWC images, float states) -> ``[B]``."""
        missing = [k for k in self.input_keys if k not in batch]
        if missing:
            raise FeatureMismatchError(
                f"Batch is missing {missing}; reward_classifier inputs are {self.input_keys}"
            )
        obs = {}
        for key in self.input_keys:
            value = batch[key]
            expected = (1, *self.features[key].shape)
            if tuple(value.shape[1:]) != expected:
                raise FeatureMismatchError(
                    f"{key!r}: expected [B, {', '.join(map(str, expected))}], got {list(value.shape)}"
                )
            obs[key] = self.normalizer.normalize(
                key, value if key in self.image_keys else value.float()
            )
        features = self.encoder(obs)  # [B, encoder.out_dim]
        return self.head(features)[:, 0]

    def predict_success(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation keys ``[B, 1, *shape]`` -> success probability ``[B]`` (sigmoid of the logit)."""
        return torch.sigmoid(self.logits(batch))

    # ------------------------------------------------------------------ loss
    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Binary cross-entropy of each window's current frame against its label (``[B]``),
        positives weighted by ``pos_weight``."""
        if LABEL not in batch:
            raise KeyError(
                f"batch has no {LABEL!r}: reward_classifier trains through `robot-learning train`, "
                "whose prepare_training hook labels the frames from next.success"
            )
        logits = self.logits(batch)
        labels = batch[LABEL].reshape(-1).float()
        assert labels.shape == logits.shape, (labels.shape, logits.shape)
        loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=self.pos_weight)
        with torch.no_grad():
            accuracy = ((logits >= 0) == (labels > 0.5)).float().mean().item()
        return loss, {
            "bce": loss.item(),
            "accuracy@0.5": accuracy,
            "positives": labels.mean().item(),
        }

    # ------------------------------------------------------------------ not a controller
    def predict_chunk(
        self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Refused: a reward classifier predicts no actions."""
        raise TypeError(
            "reward_classifier is a success classifier, not a controller: it predicts no actions; "
            "use it as a reward (robot_learning.runtime.reward.load_reward_model)"
        )

    def export_forward(self, batch: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        """The exported graph: observations ``[B, 1, *shape]`` -> success probability ``[B]``."""
        return self.predict_success(batch)

    def graph_reference(
        self, batch: dict[str, torch.Tensor], noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What the bundle computes (success probability ``[B]``)."""
        return self.predict_success(batch)

    def bundle_metadata(self, checkpoint_meta: dict[str, Any]) -> dict[str, Any]:
        """``policy.json`` section ``reward_classifier``: threshold, output, held-out metrics."""
        return {
            REWARD_SECTION: {
                "threshold": float(self.threshold),
                "output": REWARD_OUTPUT,
                "metrics": checkpoint_meta.get(CLASSIFIER_KEY) or self.metrics,
            }
        }

    # ------------------------------------------------------------------ training hooks
    def prepare_training(self, windows: WindowDataset) -> WindowDataset:
        """Label the frames, hold out episodes, set ``pos_weight``; train on the other episodes."""
        labels, train, held = self._labels_and_split(windows)
        frames = episode_frames(train, windows.episode_lengths)
        n_pos = int(labels[frames].sum())
        n_neg = len(frames) - n_pos
        weight = self.config.pos_weight or n_neg / n_pos
        self.pos_weight.fill_(float(weight))
        log.info(
            "reward_classifier: %d training episodes (%d success / %d other frames, pos_weight "
            "%.2f), %d held-out episodes",
            len(train), n_pos, n_neg, weight, len(held),
        )  # fmt: skip
        return windows.with_targets({LABEL: labels.astype(np.float32)}).subset(frames)

    @torch.no_grad()
    def finish_training(self, windows: WindowDataset, out: Path) -> dict[str, Any]:
        """Pick the threshold on the held-out frames, store it, write ``classifier.json``."""
        labels, train, held = self._labels_and_split(windows)
        frames = episode_frames(held, windows.episode_lengths)
        self.eval()
        probs = np.concatenate(
            [
                self.predict_success(
                    {k: v.to(self.device) for k, v in windows.get_batch(chunk).items()}
                ).cpu().numpy()
                for chunk in np.array_split(frames, max(1, -(-len(frames) // EVAL_BATCH)))
            ]
        )  # fmt: skip
        choice = pick_threshold(probs, labels[frames], self.config.min_precision)
        self.threshold.fill_(choice.threshold)
        self.metrics = {
            "threshold": choice.threshold,
            "precision": choice.precision,
            "recall": choice.recall,
            "f1": choice.f1,
            "accuracy": choice.accuracy,
            "n_val_pos": choice.n_pos,
            "n_val_neg": choice.n_neg,
            "average_precision": choice.average_precision,
            "rule": choice.rule,
            "n_val_episodes": len(held),
            "val_episodes": held.tolist(),
            "n_train_episodes": len(train),
            "pos_weight": float(self.pos_weight),
            "success_frames_after": self.config.success_frames_after,
        }
        _write_json(Path(out) / CLASSIFIER_FILE, self.metrics)
        summary = (
            f"classifier: threshold {choice.threshold:.3f} ({choice.rule}) on "
            f"{choice.n_pos + choice.n_neg} held-out frames ({choice.n_pos} success): precision "
            f"{choice.precision:.3f}, recall {choice.recall:.3f}, F1 {choice.f1:.3f}, "
            f"accuracy {choice.accuracy:.3f} -> {Path(out) / CLASSIFIER_FILE}"
        )
        log.info("%s", summary)
        return {CLASSIFIER_KEY: self.metrics, "summary": summary}

    def _labels_and_split(
        self, windows: WindowDataset
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(per-frame labels, training episodes, held-out episodes): a pure function of the data."""
        roots = ", ".join(str(part.root) for part in windows.sources)
        if not windows.has_column(SUCCESS):
            raise FeatureMismatchError(
                f"dataset {roots} has no {SUCCESS!r} column, so its frames carry no success labels; "
                "record it with `robot-learning collect` (the simulator's success flag) or "
                "`robot-learning teleop` (the operator's success/failure label)"
            )
        lengths = windows.episode_lengths
        labels = frame_labels(
            windows.frame_column(SUCCESS), lengths, self.config.success_frames_after
        )
        if not labels.any():
            raise ValueError(
                f"dataset {roots} has no frame with {SUCCESS} = true ({len(labels)} frames): a "
                "success classifier needs successful episodes; collect with a working expert, or "
                "mark successes in teleop (the success button)"
            )
        train, held = split_episodes(
            episode_has_positive(labels, lengths), self.config.val_fraction, self.config.split_seed
        )
        return labels, train, held

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """``Policy.save`` plus ``classifier.json`` (the held-out metrics, when known)."""
        extra = dict(extra or {})
        metrics = self.metrics or extra.get(CLASSIFIER_KEY)
        if metrics is not None:
            extra[CLASSIFIER_KEY] = metrics
        directory = super().save(directory, extra)
        if metrics is not None:
            _write_json(directory / CLASSIFIER_FILE, metrics)
        return directory


def _default_inputs(features: FeatureSpec, use_state: bool) -> list[str]:
    """Every camera of ``features``, plus ``observation.state`` with ``use_state``."""
    keys = [k for k in features.observation_keys if features[k].is_image]
    if use_state:
        if STATE not in features:
            raise FeatureMismatchError(
                f"use_state=true but the dataset has no {STATE!r} (it has {sorted(features)})"
            )
        keys.append(STATE)
    if not keys:
        raise FeatureMismatchError(
            "reward_classifier found no camera (observation.images.*) in the dataset's features "
            f"{sorted(features)}: record with obs=pixels, or set policy.use_state=true, or name "
            "the inputs with policy.input_keys=[...]"
        )
    return keys


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic JSON write (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
