"""A trained success classifier as a reward: ``load_reward_model(path)(obs) -> (probability, success)``.

On a real robot there is no reward signal; ``hil_serl`` (``reward=classifier
reward_model=<path>``) asks a classifier trained with ``robot-learning train
policy=reward_classifier`` whether each observation shows success, and uses the answer as the
sparse reward and the termination signal. :func:`load_reward_model` takes

* a checkpoint folder (``config.json`` + ``model.safetensors``, e.g. ``<run>/final``) or a
  training run folder (its ``final/``): runs the classifier in torch, loaded through the
  policy registry (core code never imports ``policies/`` directly);
* a bundle folder from ``robot-learning export``: runs ``model.onnx`` with onnxruntime (or the
  bundle's torch copy, ``runtime="torch"``), no training code needed.

Either way the decision threshold travels with the model (a buffer in the checkpoint's weights;
the ``reward_classifier`` section of ``policy.json``), so every consumer uses the threshold
picked on held-out frames at training time. Observations are single frames as an environment
returns them (``{"observation.images.front": uint8 [H, W, C], "observation.state": [D], ...}``);
a missing camera, a wrong shape or dtype, or non-finite state values raise
:class:`~robot_learning.runtime.bundle_policy.ObservationError` naming the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.features import FeatureSpec
from robot_learning.runtime.base import resolve_runtime
from robot_learning.runtime.bundle import (
    BUNDLE_FILE,
    REWARD_SECTION,
    BundleError,
    check_signature,
    read_bundle,
)
from robot_learning.runtime.bundle_policy import ObservationError

#: written next to a classifier checkpoint by training (held-out metrics)
CLASSIFIER_FILE = "classifier.json"


class RewardModel:
    """A success classifier on single observations (build it with :func:`load_reward_model`).

    Args:
        predict: batched inputs ``{key: [B, 1, *shape]}`` -> success probabilities ``[B]``.
        features: the classifier's feature spec (shapes of its inputs).
        input_keys: the observation keys it reads.
        threshold: success when ``probability >= threshold``.
        metrics: held-out metrics recorded at training (``classifier.json``), or None.
        source: the folder it was loaded from; ``backend``: ``torch`` or the bundle runtime.
    """

    def __init__(
        self,
        predict: Callable[[dict[str, np.ndarray]], np.ndarray],
        features: FeatureSpec,
        input_keys: list[str],
        threshold: float,
        metrics: dict[str, Any] | None,
        source: Path,
        backend: str,
    ) -> None:
        self._predict = predict
        self.features = features
        self.input_keys = list(input_keys)
        self.threshold = float(threshold)
        self.metrics = metrics
        self.source = source
        self.backend = backend

    def check_observation(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One un-batched observation -> graph inputs ``{key: [1, 1, *shape]}``; errors name the key."""
        missing = [k for k in self.input_keys if k not in obs]
        if missing:
            raise ObservationError(
                f"Observation is missing {missing} (it has {sorted(obs)}); the reward model "
                f"{self.source} reads {self.input_keys}: make the env with the same cameras "
                "(obs=pixels, same camera names and image size) as the classifier's training data"
            )
        out = {}
        for key in self.input_keys:
            value = np.asarray(obs[key])
            shape = tuple(self.features[key].shape)
            if value.shape != shape:
                raise ObservationError(
                    f"{key!r}: expected one frame of shape {list(shape)} (no batch dimension), "
                    f"got {list(value.shape)}; the classifier was trained on {list(shape)}"
                )
            if self.features[key].is_image:
                if value.dtype != np.uint8:
                    raise ObservationError(
                        f"{key!r} is a camera image and must be uint8 HWC (got {value.dtype})"
                    )
            else:
                value = value.astype(np.float32)
                if not np.all(np.isfinite(value)):
                    raise ObservationError(f"{key!r} contains NaN or Inf")
            out[key] = np.ascontiguousarray(value[None, None])  # [1, 1, *shape]
        return out

    def probability(self, obs: Mapping[str, Any]) -> float:
        """Probability that ``obs`` (one frame, as an env returns it) shows success."""
        probs = np.asarray(self._predict(self.check_observation(obs)))
        assert probs.shape == (1,), probs.shape
        return float(probs[0])

    def __call__(self, obs: Mapping[str, Any]) -> tuple[float, bool]:
        """``(probability, probability >= threshold)`` for one observation."""
        p = self.probability(obs)
        return p, p >= self.threshold

    def neutral_observation(self) -> dict[str, np.ndarray]:
        """A valid observation (black images, zero states), used as the load-time smoke test."""
        return {
            k: np.zeros(
                self.features[k].shape, np.uint8 if self.features[k].is_image else np.float32
            )
            for k in self.input_keys
        }


def load_reward_model(
    path: str | Path, runtime: str = "onnxruntime", threads: int | None = None
) -> RewardModel:
    """A :class:`RewardModel` from a checkpoint, a training run or an exported bundle folder.

    ``runtime`` applies to bundles (``onnxruntime``, ``torch`` or ``auto``); checkpoints run in
    torch. Raises ``FileNotFoundError``/:class:`BundleError` naming what the folder lacks, and
    ``ValueError`` when it holds a controller rather than a reward classifier.
    """
    path = Path(path)
    if (path / BUNDLE_FILE).is_file():
        model = _from_bundle(path, runtime, threads)
    else:
        model = _from_checkpoint(_checkpoint_dir(path), threads)
    model.probability(model.neutral_observation())  # fail now, not at the first env step
    return model


def _checkpoint_dir(path: Path) -> Path:
    if (path / "config.json").is_file():
        return path
    if (path / "final" / "config.json").is_file():
        return path / "final"  # a training run folder
    raise FileNotFoundError(
        f"{path} is neither a reward classifier checkpoint (config.json + model.safetensors, "
        "e.g. <run>/final) nor a bundle (policy.json); train one with `robot-learning train "
        "policy=reward_classifier dataset=DIR out=RUN` and pass RUN, RUN/final or an exported bundle"
    )


def _from_checkpoint(directory: Path, threads: int | None) -> RewardModel:
    import torch

    from robot_learning.policy import Policy

    if threads:
        torch.set_num_threads(int(threads))
    policy = Policy.load(directory)  # dispatches through the policy registry
    predict_success = getattr(policy, "predict_success", None)
    if policy.predicts_actions or predict_success is None:
        raise ValueError(
            f"{directory} holds a {policy.name!r} policy, not a reward classifier; train one with "
            "`robot-learning train policy=reward_classifier dataset=DIR out=RUN`"
        )

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            batch = {k: torch.from_numpy(v).to(policy.device) for k, v in inputs.items()}
            return predict_success(batch).cpu().numpy()

    metrics_file = directory / CLASSIFIER_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    return RewardModel(
        predict, policy.features, policy.input_keys, float(policy.threshold), metrics,
        directory, "torch",
    )  # fmt: skip


def _from_bundle(directory: Path, runtime: str, threads: int | None) -> RewardModel:
    spec = read_bundle(directory)
    section = spec.get(REWARD_SECTION)
    if section is None:
        raise BundleError(
            f"{directory} is a bundle of the {spec['policy']!r} policy, not of a reward classifier "
            f"(policy.json has no {REWARD_SECTION!r} section); export a checkpoint trained with "
            "policy=reward_classifier"
        )
    backend = resolve_runtime(runtime, directory, spec)(directory, spec, threads=threads)
    check_signature(spec, backend.input_signature(), backend.name)
    return RewardModel(
        backend.run, spec["features"], list(spec["input_keys"]), float(section["threshold"]),
        section.get("metrics"), directory, backend.name,
    )  # fmt: skip
