"""Adapter: any installed gymnasium environment id as a task with the project's feature spec.

A small YAML file in ``configs/task/`` names the id (``backend: gymnasium``, ``gym_id:
Hopper-v5``); the adapter maps a flat ``Box`` observation to ``observation.state`` (a ``Dict``
observation maps each sub-key ``k`` to ``observation.<k>``, image-shaped uint8 boxes to
``observation.images.<k>``) and a ``Box`` action to ``action`` with its bounds. An observation
``Box`` whose bounds are all finite keeps them as the feature's bounds; an unbounded one
declares none (bundles then check against the dataset's statistics, ``robot_learning.bounds``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robot_learning.envs import TaskConfig, TaskEnv, register_task
from robot_learning.features import Feature, FeatureSpec


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
        try:
            self.env = gym.make(cfg.gym_id, render_mode="rgb_array", **cfg.gym_kwargs)
        except gym.error.Error as exc:
            raise ValueError(
                f"Cannot build gymnasium env {cfg.gym_id!r} for task {cfg.name!r}: {exc}. "
                "Is the suite installed (e.g. `pip install 'gymnasium[mujoco]'`)?"
            ) from exc
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
            control_mode="joint_torque",
        )
        self.features = FeatureSpec(feats)
        self._init_spaces()
        self._step_count = 0
        self._last_obs: dict[str, np.ndarray] = {}

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
        obs, info = self.env.reset(seed=seed, options=options)
        self._step_count = 0
        return self._map_obs(obs), {**info, "is_success": bool(info.get("is_success", False))}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, np.float32))
        self._step_count += 1
        truncated = truncated or self._step_count >= self.max_episode_steps
        success = bool(info.get("is_success", False))
        return (
            self._map_obs(obs),
            float(reward),
            bool(terminated),
            bool(truncated),
            {**info, "is_success": success},
        )

    def render(self) -> np.ndarray:
        return self.env.render()

    def task_state(self) -> dict[str, np.ndarray]:
        """External suites expose only their observation; there is no scripted expert for them."""
        return dict(self._last_obs)

    def close(self) -> None:
        self.env.close()
