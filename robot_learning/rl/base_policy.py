"""A frozen zoo policy as the base of residual RL: loading, receding-horizon stepping, demo labels.

The residual learner sees the base policy's current action as one more observation key,
``observation.base_action``. :class:`BaseActionWrapper` adds it to any task: at reset and after
every step it feeds the new observation to a :class:`BaseRunner`, which runs the base exactly as
evaluation does (history padded with the first frame, one chunk every ``n_action_steps`` steps).
The runner reseeds the base's sampler noise with the episode seed, so an episode is a pure
function of its seed and actions (the collector's resume-by-replay relies on that).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robot_learning.features import ACTION, FeatureSpec
from robot_learning.runtime.bundle import BASE_ACTION  # the observation key of the base's action


def load_base_source(path: str | Path, seed: int = 0, threads: int | None = None) -> Any:
    """A checkpoint folder or an exported bundle -> an :class:`~robot_learning.evaluation.ActionSource`.

    Bundles (``policy.json``) load with the fastest runtime here; checkpoints (``config.json``,
    or a run folder holding one) with torch.
    """
    from robot_learning.runtime.bundle import BUNDLE_FILE

    root = _existing_base(path)
    if (root / BUNDLE_FILE).is_file():
        from robot_learning.runtime import load_bundle

        return load_bundle(root, runtime="auto", threads=threads, seed=seed)
    from robot_learning.cli.eval import checkpoint_dir
    from robot_learning.evaluation import TorchPolicySource
    from robot_learning.policy import Policy

    return TorchPolicySource(Policy.load(checkpoint_dir(root)), seed=seed)


def _existing_base(path: str | Path) -> Path:
    """``path`` as a Path, or a clear error when there is nothing there."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(
            f"base policy {root} does not exist; pass algo.base=<checkpoint or bundle folder>"
        )
    return root


#: the run folder's copy of the frozen base policy
BASE_SNAPSHOT = "base"


def snapshot_base(path: str | Path, run_dir: str | Path, fresh: bool) -> Path:
    """Copy the frozen base into ``run_dir/base`` so the run needs nothing outside its folder.

    A checkpoint contributes its ``config.json`` and weights, a bundle its ``policy.json`` and the
    files it lists. ``fresh`` (a new run) replaces an existing copy; otherwise (resume, export) the
    copy is used as it is and ``path`` is read only when there is none (runs from before copies).
    The copy is written atomically: a crash leaves the old copy or none, never half of one.
    """
    from robot_learning.runtime.bundle import BUNDLE_FILE
    from robot_learning.training.checkpoint import write_atomic_dir

    dest = Path(run_dir) / BASE_SNAPSHOT
    if dest.exists() and not fresh:
        return dest
    root = _existing_base(path)
    if (root / BUNDLE_FILE).is_file():
        from robot_learning.runtime.bundle import read_bundle

        names = [BUNDLE_FILE, *read_bundle(root)["files"]]  # read_bundle names what is broken
    else:
        from robot_learning.cli.eval import checkpoint_dir
        from robot_learning.policy import CONFIG_FILE, WEIGHTS_FILE

        root, names = checkpoint_dir(root), [CONFIG_FILE, WEIGHTS_FILE]

    def copy(tmp: Path) -> None:
        for name in names:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, tmp / name)

    return write_atomic_dir(dest, copy)


class BaseRunner:
    """One episode of a base policy, one step at a time (the same receding horizon as evaluation)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.keys = list(source.input_keys)
        self._start = source.n_obs_steps - 1
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=source.n_obs_steps)
        self._queue: deque[np.ndarray] = deque()

    def reset(self, obs: Mapping[str, np.ndarray], seed: int | None) -> np.ndarray:
        """Start an episode at ``obs`` (noise reseeded with ``seed`` when given); returns the first action."""
        if seed is not None:
            self.source.reseed(int(seed))
        self._history.clear()
        self._queue.clear()
        self._history.extend([self._frame(obs)] * self._history.maxlen)
        return self._next()

    def step(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The base action for the next observation of the running episode."""
        self._history.append(self._frame(obs))
        return self._next()

    def _frame(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(obs[k]) for k in self.keys}

    def _next(self) -> np.ndarray:
        if not self._queue:
            batch = {k: np.stack([f[k] for f in self._history])[None] for k in self.keys}
            chunk = np.asarray(self.source.predict_chunk(batch))[0]
            self._queue.extend(chunk[self._start : self._start + self.source.n_action_steps])
        return np.asarray(self._queue.popleft(), np.float32)


def with_base_action(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` plus ``observation.base_action`` (the action's shape and bounds), last among observations."""
    action = spec[ACTION]
    return spec.merge({BASE_ACTION: dataclasses.replace(action, control_mode=None)})


class BaseActionWrapper(gym.Wrapper):
    """Adds ``observation.base_action`` (the base policy's action for this step) to every observation."""

    def __init__(self, env: gym.Env, source: Any) -> None:
        super().__init__(env)
        from robot_learning.envs import spaces_from_spec
        from robot_learning.evaluation import check_task_features

        check_task_features(
            source.features,
            list(source.input_keys),
            env.features,
            what=f"base policy {source.name}",
        )
        self.runner = BaseRunner(source)
        self.features = with_base_action(env.features)
        self.observation_space = spaces_from_spec(
            self.features.select(self.features.observation_keys)
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return {**obs, BASE_ACTION: self.runner.reset(obs, seed)}, info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return {**obs, BASE_ACTION: self.runner.step(obs)}, reward, terminated, truncated, info


def label_episode(source: Any, obs: Mapping[str, np.ndarray], seed: int) -> np.ndarray:
    """Base actions ``[T, A]`` for a recorded episode's observations ``{key: [T, ...]}``.

    Frame ``t`` gets the action the base would have output having seen frames ``0..t``, with its
    chunking, exactly as :class:`BaseActionWrapper` would have during that episode.
    """
    runner = BaseRunner(source)
    length = len(next(iter(obs.values())))
    frames = [{k: obs[k][t] for k in runner.keys} for t in range(length)]
    out = [runner.reset(frames[0], seed)]
    out += [runner.step(frame) for frame in frames[1:]]
    return np.stack(out).astype(np.float32)
