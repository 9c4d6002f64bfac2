"""A loaded bundle: checked inputs, sampler noise and receding-horizon control on numpy, no torch.

:func:`load_bundle` verifies the bundle (:func:`~robot_learning.runtime.bundle.read_bundle`),
loads its graph with the chosen runtime, compares the graph's inputs with ``policy.json`` and
runs one inference on a neutral observation, so every kind of broken bundle fails here rather
than at the first control step on a robot.

:class:`BundlePolicy` offers what ``Policy`` offers (``predict_chunk``, ``reset``,
``select_action``) and is an :class:`~robot_learning.evaluation.ActionSource`, so
``robot-learning eval bundle=...`` and the ROS 2 policy node use it directly.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.bounds import Bounds, bounds_violation, spec_observation_bounds
from robot_learning.features import ACTION, FeatureMismatchError
from robot_learning.language import TASK_KEY, TOKEN_MASK_KEY, TOKENS_KEY, InstructionError
from robot_learning.runtime.base import resolve_runtime
from robot_learning.runtime.bundle import (
    BASE_ACTION,
    LANGUAGE_SECTION,
    NOISE,
    REWARD_SECTION,
    BundleError,
    check_signature,
    read_bundle,
)

#: instruction of the load-time smoke test of a language bundle
NEUTRAL_INSTRUCTION = "do the task"


class ObservationError(ValueError):
    """An observation is missing a key, has the wrong shape or dtype, non-finite values or
    values outside the feature's bounds."""


class BundlePolicy:
    """An exported policy served by one runtime (see the module docstring)."""

    def __init__(
        self,
        bundle_dir: str | Path,
        runtime: str = "auto",
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.spec = read_bundle(self.bundle_dir)
        spec = self.spec
        if REWARD_SECTION in spec:
            raise BundleError(
                f"{self.bundle_dir} is a reward classifier bundle (it outputs a success "
                "probability, not actions); load it with "
                "robot_learning.runtime.reward.load_reward_model, not as a policy"
            )
        self.features = spec["features"]
        self.name: str = spec["policy"]
        self.input_keys: list[str] = list(spec["input_keys"])
        self.n_obs_steps: int = int(spec["n_obs_steps"])
        self.horizon: int = int(spec["horizon"])
        self.n_action_steps: int = int(spec["n_action_steps"])
        self.control_rate_hz: float = float(spec["control_rate_hz"])
        self.action_shape = tuple(self.features[ACTION].shape)
        self.action_low, self.action_high = _bounds(self.features[ACTION], self.action_shape)
        self._dtypes = {d["name"]: np.dtype(d["dtype"]) for d in spec["inputs"]}
        #: per input key: declared bounds, else the normalisation statistics widened by a margin
        #: (None: image, or nothing to derive bounds from); see :mod:`robot_learning.bounds`
        self.observation_bounds: dict[str, Bounds | None] = spec_observation_bounds(
            self.features, self.input_keys, (spec.get("normalization") or {}).get("stats")
        )
        self.uses_noise = NOISE in self._dtypes
        self.tokenizer = None
        if spec.get(LANGUAGE_SECTION):
            from robot_learning.instruction_tokens import tokenizer_from_dict

            self.tokenizer = tokenizer_from_dict(spec[LANGUAGE_SECTION]["tokenizer"])
        #: the bundle follows a language instruction (``batch["task"]`` / ``obs["task"]``)
        self.uses_language = self.tokenizer is not None
        self.backend = resolve_runtime(runtime, self.bundle_dir, spec)(
            self.bundle_dir, spec, threads=threads
        )
        self.runtime: str = self.backend.name
        check_signature(spec, self.backend.input_signature(), self.runtime)
        self.residual = (
            ResidualGraph(self.bundle_dir, spec, threads) if spec.get("residual") else None
        )
        self.rng = np.random.default_rng(seed)
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.n_obs_steps)
        self._queue: deque[np.ndarray] = deque()
        self._smoke_test()

    # ------------------------------------------------------------------ chunk inference
    def check_inputs(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        """Observations ``[B, n_obs_steps, *shape]`` -> arrays of the graph's dtypes; :class:`ObservationError` if bad."""
        missing = [k for k in self.input_keys if k not in batch]
        if missing:
            raise ObservationError(
                f"Observation is missing {missing}; the bundle's inputs are {self.input_keys}"
            )
        out, size = {}, None
        for key in self.input_keys:
            value = np.asarray(batch[key])
            expected = (self.n_obs_steps, *self.features[key].shape)
            if value.ndim != len(expected) + 1 or value.shape[1:] != expected:
                raise ObservationError(
                    f"{key!r}: expected shape [B, {', '.join(map(str, expected))}], got {list(value.shape)}"
                )
            if size is not None and value.shape[0] != size:
                raise ObservationError(
                    f"{key!r} has batch size {value.shape[0]}, other inputs {size}"
                )
            size = value.shape[0]
            dtype = self._dtypes[key]
            if dtype == np.uint8 and value.dtype != np.uint8:
                raise ObservationError(f"{key!r} is an image and must be uint8 (got {value.dtype})")
            if dtype != np.uint8:
                value = value.astype(dtype, copy=False)
                if not np.all(np.isfinite(value)):
                    raise ObservationError(f"{key!r} contains NaN or Inf")
                reason = bounds_violation(
                    key, value, self.observation_bounds.get(key), self.features[key].names
                )
                if reason is not None:
                    raise ObservationError(reason)
            out[key] = np.ascontiguousarray(value)
        if self.uses_language:
            out.update(self._language_inputs(batch, size))
        return out

    def _language_inputs(self, batch: dict[str, Any], size: int | None) -> dict[str, np.ndarray]:
        """Token ids and mask: given, or tokenized from the ``task`` strings."""
        if TOKENS_KEY in batch:
            ids = np.asarray(batch[TOKENS_KEY], np.int64)
            mask = np.asarray(batch.get(TOKEN_MASK_KEY, ids != 0), np.int64)
        elif TASK_KEY in batch:
            texts = batch[TASK_KEY]
            texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
            ids, mask = self.tokenizer.encode(texts)
        else:
            raise InstructionError(
                f"this bundle ({self.name}) follows a language instruction: give it as "
                f"batch[{TASK_KEY!r}] (one string per sample) or obs[{TASK_KEY!r}]"
            )
        if ids.shape[0] != size:
            raise InstructionError(f"{ids.shape[0]} instructions for a batch of {size}")
        return {TOKENS_KEY: np.ascontiguousarray(ids), TOKEN_MASK_KEY: np.ascontiguousarray(mask)}

    def predict_chunk(self, batch: dict[str, Any], noise: np.ndarray | None = None) -> np.ndarray:
        """Observations ``[B, n_obs_steps, *shape]`` -> raw action chunk ``[B, horizon, *action_shape]``.

        ``noise`` (standard normal, ``[B, horizon, *action_shape]``) makes the result a pure
        function of the inputs; None draws it from this policy's seeded generator.
        """
        inputs = self.check_inputs(batch)
        size = next(iter(inputs.values())).shape[0]
        shape = (size, self.horizon, *self.action_shape)
        if noise is None:
            noise = self.rng.standard_normal(shape, dtype=np.float32)
        noise = np.ascontiguousarray(noise, dtype=np.float32)
        if noise.shape != shape:
            raise ValueError(f"noise must have shape {list(shape)}, got {list(noise.shape)}")
        if self.uses_noise:
            inputs[NOISE] = noise
        return self.backend.run(inputs)

    def reseed(self, seed: int) -> None:
        """Restart the sampler-noise generator from ``seed``."""
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ single-step control
    def reset(self) -> None:
        """Forget the observation history and queued actions (call at episode start)."""
        self._history.clear()
        self._queue.clear()

    def select_action(self, obs: dict[str, Any], noise: np.ndarray | None = None) -> np.ndarray:
        """One control step, as ``Policy.select_action``: one frame per key (no batch/time dims) -> raw action."""
        frame = {}
        for key in self.input_keys:
            if key not in obs:
                raise ObservationError(
                    f"Observation is missing {key!r}; the bundle's inputs are {self.input_keys}"
                )
            frame[key] = np.asarray(obs[key])
        if not self._history:
            self._history.extend([frame] * self.n_obs_steps)
        else:
            self._history.append(frame)
        if not self._queue:
            batch = {k: np.stack([f[k] for f in self._history])[None] for k in self.input_keys}
            if self.uses_language:
                if TASK_KEY not in obs:
                    raise InstructionError(
                        f"this bundle follows a language instruction: put it in the observation "
                        f"as obs[{TASK_KEY!r}]"
                    )
                batch[TASK_KEY] = [str(obs[TASK_KEY])]
            chunk = self.predict_chunk(batch, noise=None if noise is None else noise[None])[0]
            start = self.n_obs_steps - 1
            self._queue.extend(chunk[start : start + self.n_action_steps])
        return self.refine(frame, self._queue.popleft().astype(np.float32))

    def refine(self, obs: dict[str, Any], action: np.ndarray) -> np.ndarray:
        """The action to execute now, given the current frame and the chunk's action for this step.

        The identity for ordinary bundles; residual RL bundles add their residual here (see
        :class:`ResidualGraph`). Every per-step consumer (``select_action``, evaluation, the ROS
        2 policy node) calls it on the action it pops from the chunk.
        """
        return action if self.residual is None else self.residual(obs, action)

    @property
    def queue_depth(self) -> int:
        """Actions left in the current chunk."""
        return len(self._queue)

    # ------------------------------------------------------------------ load-time check
    def neutral_observation(self, batch: int = 1) -> dict[str, np.ndarray]:
        """A valid input batch: zero images, states at the middle of their normalisation range
        (without statistics: of their bounds), always inside the observation bounds."""
        stats = self.spec["normalization"]["stats"]
        out = {}
        for key in self.input_keys:
            shape = (batch, self.n_obs_steps, *self.features[key].shape)
            s, bounds = stats.get(key, {}), self.observation_bounds.get(key)
            if "min" in s and "max" in s:
                value = (np.asarray(s["min"], np.float64) + np.asarray(s["max"], np.float64)) / 2
            elif "mean" in s:
                value = np.asarray(s["mean"], np.float64)
            elif bounds is not None:
                value = bounds.middle()
            else:
                out[key] = np.zeros(shape, self._dtypes[key])
                continue
            if bounds is not None:
                value = np.clip(value.ravel(), bounds.low, bounds.high)
            value = value.reshape(self.features[key].shape)
            out[key] = np.broadcast_to(value, shape).astype(self._dtypes[key])
        if self.uses_language:
            out[TASK_KEY] = [NEUTRAL_INSTRUCTION] * batch
        return out

    def _smoke_test(self) -> None:
        started = time.perf_counter()
        noise = np.zeros((1, self.horizon, *self.action_shape), np.float32)
        try:
            chunk = self.predict_chunk(self.neutral_observation(), noise=noise)
        except (ObservationError, FeatureMismatchError, BundleError):
            raise
        except Exception as exc:  # an engine error on valid inputs means the graph is broken
            raise BundleError(
                f"{self.bundle_dir}: the {self.runtime} runtime failed on a valid observation: {exc}"
            ) from exc
        expected = (1, self.horizon, *self.action_shape)
        if chunk.shape != expected or not np.all(np.isfinite(chunk)):
            raise BundleError(
                f"{self.bundle_dir}: the graph returned shape {list(chunk.shape)} (finite: {bool(np.all(np.isfinite(chunk)))}) "
                f"for a valid observation; expected finite {list(expected)}. Re-export the bundle."
            )
        self.load_check_ms = (time.perf_counter() - started) * 1e3


class ResidualGraph:
    """A residual RL bundle's ``residual.onnx``: ``(current observation, base action) -> executed action``.

    It runs on onnxruntime whatever runtime serves the base graph (a small MLP; the CPU
    provider is fastest for it).
    """

    def __init__(self, bundle_dir: Path, spec: dict, threads: int | None = None) -> None:
        from robot_learning.features import FeatureSpec
        from robot_learning.runtime.backends.ort import OnnxRuntime

        section = spec["residual"]
        self.keys: list[str] = list(section["input_keys"])
        self.features = FeatureSpec.from_dict(section["features"])
        self.scale = float(section["scale"])
        self.backend = OnnxRuntime(bundle_dir, spec, threads=threads, graph=section["graph"])
        check_signature(
            {"inputs": section["inputs"]},
            self.backend.input_signature(),
            "onnxruntime (residual graph)",
        )

    def __call__(self, obs: dict[str, Any], base_action: np.ndarray) -> np.ndarray:
        """One step: ``obs`` holds one frame per key (no batch/time dims)."""
        inputs = {}
        for key in self.keys:
            value = base_action if key == BASE_ACTION else obs.get(key)
            if value is None:
                raise ObservationError(
                    f"Observation is missing {key!r}, an input of the residual policy"
                )
            value = np.asarray(value, np.float32).reshape(1, 1, *self.features[key].shape)
            if not np.all(np.isfinite(value)):
                raise ObservationError(f"{key!r} contains NaN or Inf")
            inputs[key] = value
        return self.backend.run(inputs)[0, 0].astype(np.float32)


def load_bundle(
    bundle_dir: str | Path, runtime: str = "auto", threads: int | None = None, seed: int = 0
) -> BundlePolicy:
    """Load and verify an exported bundle with ``runtime`` (``auto``, ``onnxruntime``, ``tensorrt``, ``torch``)."""
    return BundlePolicy(bundle_dir, runtime=runtime, threads=threads, seed=seed)


def _bounds(feature, shape: tuple[int, ...]) -> tuple[np.ndarray | None, np.ndarray | None]:
    low = (
        None
        if feature.low is None
        else np.broadcast_to(np.asarray(feature.low, np.float32), shape).copy()
    )
    high = (
        None
        if feature.high is None
        else np.broadcast_to(np.asarray(feature.high, np.float32), shape).copy()
    )
    return low, high
