"""Adapter: any installed gymnasium environment id as a task with the project's feature spec.

A small YAML file in ``configs/task/`` (or a user folder, ``config_dir=``) names the id
(``backend: gymnasium``, ``gym_id: Hopper-v5``, or ``gym_id: my_suite.envs:Reach-v0`` when a
module the project does not import registers it); the adapter maps a flat ``Box`` observation
to ``observation.state`` (a ``Dict`` observation maps each sub-key ``k`` to ``observation.<k>``,
image-shaped uint8 boxes to ``observation.images.<k>``) and a ``Box`` action to ``action`` with
its bounds and ``task.control_mode``. An observation ``Box`` whose bounds are all finite keeps
them as the feature's bounds; an unbounded one declares none (bundles then check against the
dataset's statistics, ``robot_learning.bounds``).

What the adapter makes of the suite (the task contract): success is ``info[task.success_key]``
(default ``is_success``, else ``success``; a warning after the first episode names the keys it
saw when neither appears); an episode ends at its first success unless
``task.terminate_on_success=false``; ``task.reward=sparse`` is 1 on success; actions are clipped
to the declared bounds (``info["clipped_action_elements"]`` counts them); a suite whose
``reset(seed=...)`` does not decide its initial state (probed once when the env is built: one
seed twice, two seeds) is reported with the fix ``task.reseed=true``, which seeds its
generators before every reset. Settings it cannot
honour (domain randomisation hooks, cameras of its own) are errors naming them.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import gymnasium as gym
import numpy as np

from robot_learning.envs import RandomizationConfig, TaskConfig, TaskEnv, register_task
from robot_learning.features import Feature, FeatureSpec

log = logging.getLogger(__name__)
#: success keys tried, in order, when ``task.success_key`` is not set
SUCCESS_KEYS = ("is_success", "success")
#: seeds of the construction-time probe of ``reset(seed=...)``
PROBE_SEEDS = (987_654, 987_655)


def _flat(obs: Any) -> list:
    return [obs[k] for k in sorted(obs)] if isinstance(obs, dict) else [obs]


def _unhonoured(cfg: TaskConfig) -> list[str]:
    """Settings of ``cfg`` that an adapted suite cannot honour."""
    bad = []
    rand = cfg.randomization
    defaults = RandomizationConfig()
    for name in ("friction", "mass", "camera_pose", "lighting"):
        if getattr(rand, name) != getattr(defaults, name):
            bad.append(f"task.randomization.{name}")
    if not rand.object_pose:
        bad.append("task.randomization.object_pose (the suite's reset decides the initial state)")
    if cfg.cameras is not None:
        bad.append("task.cameras (the suite's observation decides its images)")
    if cfg.env_state_slots is not None:
        bad.append("task.env_state_slots (the suite's observation decides its state)")
    return bad


def _is_image_box(space: gym.Space) -> bool:
    return (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] in (1, 3)
    )


def _box_feature(space: gym.Space, where: str) -> Feature:
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"{where}: only Box spaces can be adapted, got {type(space).__name__}")
    if _is_image_box(space):
        return Feature("video", space.shape, ("height", "width", "channels"))
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if np.all(np.isfinite(low)) and np.all(np.isfinite(high)):
        return Feature("float32", space.shape, low=low.ravel(), high=high.ravel())
    # unbounded (e.g. MuJoCo locomotion): no declared bounds; consumers fall back to the
    # dataset's statistics (robot_learning.bounds)
    return Feature("float32", space.shape)


@register_task("adapter", backend="gymnasium")
class GymnasiumTaskEnv(TaskEnv):
    """Wraps ``gymnasium.make(cfg.gym_id)`` so it satisfies the task contract."""

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        bad = _unhonoured(cfg)
        if bad:
            raise ValueError(
                f"task {cfg.name!r} (backend=gymnasium, {cfg.gym_id}) cannot honour "
                + "; ".join(bad)
                + ": the adapter passes the suite through; remove them"
            )
        self.env = _make(cfg)
        inner = self.env.unwrapped
        fps = cfg.fps or inner.metadata.get("render_fps")
        if not fps:
            raise ValueError(
                f"{cfg.gym_id} declares no render_fps; set fps=<Hz> in the task config"
            )
        self.fps = int(round(fps))
        self.max_episode_steps = (
            cfg.max_episode_steps
            or (self.env.spec.max_episode_steps if self.env.spec else None)
            or 1000
        )
        self.task_description = f"gymnasium {cfg.gym_id}"
        obs_space = self.env.observation_space
        if isinstance(obs_space, gym.spaces.Dict):
            self._obs_keys = {
                k: (f"observation.images.{k}" if _is_image_box(s) else f"observation.{k}")
                for k, s in obs_space.spaces.items()
            }
            feats = {
                self._obs_keys[k]: _box_feature(s, f"{cfg.gym_id} obs[{k!r}]")
                for k, s in obs_space.spaces.items()
            }
        else:
            self._obs_keys = None
            feats = {"observation.state": _box_feature(obs_space, f"{cfg.gym_id} observation")}
        act = self.env.action_space
        if not isinstance(act, gym.spaces.Box):
            raise TypeError(
                f"{cfg.gym_id}: only continuous Box action spaces are supported, got {act}"
            )
        feats["action"] = Feature(
            "float32",
            act.shape,
            low=act.low.ravel(),
            high=act.high.ravel(),
            control_mode=cfg.control_mode,
        )
        self.features = FeatureSpec(feats)
        if cfg.obs == "pixels" and not self.features.image_keys:
            raise ValueError(
                f"task {cfg.name!r}: obs=pixels, but {cfg.gym_id}'s observation has no images "
                "(uint8 H x W x C boxes); use obs=state"
            )
        self._init_spaces()
        self._step_count = 0
        self._last_obs: dict[str, np.ndarray] = {}
        self._success_key: str | None = cfg.success_key
        self._info_keys: set[str] = set()
        self._episodes_done = 0
        self.clipped_action_elements = 0
        """Action elements clipped to the declared bounds since the env was built."""
        self._probe_seeding()

    def _map_obs(self, obs: Any) -> dict[str, np.ndarray]:
        if self._obs_keys is None:
            out = {"observation.state": np.asarray(obs, dtype=np.float32)}
        else:
            out = {}
            for k, v in obs.items():
                key = self._obs_keys[k]
                out[key] = np.asarray(v, np.uint8 if self.features[key].is_image else np.float32)
        self._last_obs = out
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self._step_count:
            self._end_of_episode()
        if self.cfg.reseed and seed is not None:
            _reseed(self.env, seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._step_count = 0
        return self._map_obs(obs), {**info, "is_success": self._success(info)}

    def step(self, action):
        raw = np.asarray(action, np.float32)
        act = np.clip(raw, self.action_space.low, self.action_space.high)
        clipped = int(np.count_nonzero(act != raw))
        self.clipped_action_elements += clipped
        obs, reward, terminated, truncated, info = self.env.step(act)
        self._step_count += 1
        self._info_keys.update(info)
        success = self._success(info)
        if self.cfg.reward == "sparse":
            reward = float(success)
        terminated = bool(terminated) or (success and self.cfg.terminate_on_success)
        truncated = (
            bool(truncated) or self._step_count >= self.max_episode_steps
        ) and not terminated
        return (
            self._map_obs(obs),
            float(reward),
            terminated,
            truncated,
            {**info, "is_success": success, "clipped_action_elements": clipped},
        )

    # ------------------------------------------------------------------ success and seeds
    def _success(self, info: dict[str, Any]) -> bool:
        if self._success_key is None:
            self._success_key = next((k for k in SUCCESS_KEYS if k in info), None)
        return bool(info.get(self._success_key, False)) if self._success_key else False

    def _end_of_episode(self) -> None:
        self._episodes_done += 1
        if self._episodes_done != 1:
            return
        key = self.cfg.success_key or self._success_key
        if key is None or key not in self._info_keys:
            wanted = repr(key) if key else " or ".join(repr(k) for k in SUCCESS_KEYS)
            log.warning(
                "task %r (%s): no info[%s] in the first episode, so success reads as False; "
                "its info keys are %s: set task.success_key=<key> if one of them reports success",
                self.cfg.name,
                self.cfg.gym_id,
                wanted,
                sorted(self._info_keys),
            )

    def _probe_seeding(self) -> None:
        """Warn (with the fix) when ``reset(seed=...)`` does not decide the initial state: the
        same seed twice giving two observations, or two seeds giving one."""
        probe = {}
        for tag, seed in (("a", PROBE_SEEDS[0]), ("again", PROBE_SEEDS[0]), ("b", PROBE_SEEDS[1])):
            if self.cfg.reseed:
                _reseed(self.env, seed)
            obs, _ = self.env.reset(seed=seed)
            probe[tag] = np.concatenate([np.asarray(v, np.float64).ravel() for v in _flat(obs)])
        problem = None
        if not np.array_equal(probe["a"], probe["again"]):
            problem = (
                "the same seed twice gave two initial observations (runs are not reproducible)"
            )
        elif np.array_equal(probe["a"], probe["b"]):
            problem = "two seeds gave the same initial observation (every episode starts alike)"
        if problem is not None and not self.cfg.reseed:
            log.warning(
                "task %r (%s) ignores reset(seed=...): %s; set task.reseed=true to seed its "
                "generators before every reset",
                self.cfg.name,
                self.cfg.gym_id,
                problem,
            )
        self.seeding_problem = problem
        """What the seeding probe at construction found (None: resets follow their seed)."""

    def render(self) -> np.ndarray:
        return self.env.render()

    def task_state(self) -> dict[str, np.ndarray]:
        """External suites expose only their observation; there is no scripted expert for them."""
        return dict(self._last_obs)

    def close(self) -> None:
        self.env.close()


def _make(cfg: TaskConfig) -> gym.Env:
    """``gymnasium.make(cfg.gym_id)``; a missing id names the fixes (install, or ``module:id``)."""
    try:
        return gym.make(cfg.gym_id, render_mode="rgb_array", **cfg.gym_kwargs)
    except (gym.error.Error, ModuleNotFoundError) as exc:
        hint = "Is the suite installed (e.g. `pip install 'gymnasium[mujoco]'`)?"
        if ":" not in cfg.gym_id:
            hint += (
                " If a module registers it on import, name the module: "
                f"gym_id=<module>:{cfg.gym_id} (gymnasium imports it first)"
            )
        raise ValueError(
            f"Cannot build gymnasium env {cfg.gym_id!r} for task {cfg.name!r}: {exc}. {hint}"
        ) from exc


def _reseed(env: gym.Env, seed: int) -> None:
    """Seed what a suite that ignores ``reset(seed=...)`` may draw from: its own generator, its
    spaces and the global ``random`` / ``numpy.random`` state."""
    inner = env.unwrapped
    inner._np_random = np.random.default_rng(seed)
    inner._np_random_seed = seed
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
