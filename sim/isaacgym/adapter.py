"""Isaac Gym ``VecTask`` tasks behind the project's task contract (``backend=isaacgym``).

A ``VecTask`` (IsaacGymEnvs' base class, or :class:`sim.isaacgym.vec_task.VecTask`) steps all of
its ``num_envs`` environments at once, on batched tensors, and resets finished ones itself from
torch's global generator. The contract wants gymnasium environments whose ``reset(seed=s)``
decides the episode. The adapter maps one onto the other:

- :class:`VecTaskBatch` owns one ``VecTask``; :class:`IsaacGymTaskEnv` is the gymnasium view of
  its env ``index``. ``make_env`` builds a batch of one; :func:`robot_learning.envs.make_envs`
  (evaluation, the RL collector) builds ``n`` views of one batch of ``n``, and
  :func:`robot_learning.env_threads.step_envs` steps them with one ``VecTask.step``.
- ``reset(seed=s)`` of a view calls the task's ``reset_idx([index])`` with torch's generator
  forked and seeded with ``s`` (so the episode depends on ``s`` alone, and the caller's own
  random state is untouched), then ``compute_observations()``; an env whose episode ended is
  reset this way before the task's own automatic reset would run, and an idle one (no view
  stepped it) gets a zero action and resets itself. ``VecTask.step`` draws from the batch's own
  stream of torch's generator, so the caller's generator never moves (runs resume exactly).
- ``reset_buf`` ends an episode: ``extras["time_outs"]`` -> truncated, otherwise terminated;
  ``task.max_episode_steps`` also truncates. Success is ``extras[task.success_key]`` (default
  ``successes``); ``task.reward=sparse`` is 1 on success. Observations ``obs_dict["obs"]`` are
  ``observation.state`` (no declared bounds), actions ``[-1, 1]`` (``VecTask`` convention).

What was run: only against the fake ``isaacgym`` module of ``tests/fakes`` (simplified physics
speaking the ``gymapi``/``gymtorch`` calls used here); never on NVIDIA's Isaac Gym.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from robot_learning.envs import RandomizationConfig, TaskConfig, TaskEnv, register_task
from robot_learning.features import Feature, FeatureSpec
from robot_learning.registry import Registry

#: VecTask classes by name (``task.vec_task=<name>``); each has ``DEFAULT_CFG`` in its module
VEC_TASKS: Registry[type] = Registry("Isaac Gym task")


def register_vec_task(name: str, default_cfg: dict[str, Any]):
    """Class decorator registering a ``VecTask`` class and its default config as ``name``."""

    def decorate(cls: type) -> type:
        setattr(cls, "default_cfg", default_cfg)  # noqa: B010  (any class, no declared field)
        return VEC_TASKS.register(name)(cls)

    return decorate


def require_isaacgym() -> None:
    """Import ``isaacgym`` or fail naming how to get it."""
    if importlib.util.find_spec("isaacgym") is None:
        raise ValueError(
            "backend=isaacgym needs NVIDIA Isaac Gym (Preview 4: download it from NVIDIA, then "
            "`pip install -e isaacgym/python`); it is not on PyPI"
        )
    importlib.import_module("isaacgym")


def vec_task_class(name: str) -> type:
    """The ``VecTask`` class ``name``: registered, or ``module:Class``."""
    if ":" not in name:
        if name not in VEC_TASKS:
            raise ValueError(
                f"task.vec_task={name!r} is not a registered Isaac Gym task "
                f"({VEC_TASKS.names()}); name another as module:Class "
                "(e.g. isaacgymenvs.tasks.cartpole:Cartpole)"
            )
        return VEC_TASKS.get(name)
    module, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"task.vec_task={name!r} cannot be imported: {exc}") from exc


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, section by section (copies; neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _unhonoured(cfg: TaskConfig) -> list[str]:
    bad = []
    defaults = RandomizationConfig()
    for name in ("friction", "mass", "camera_pose", "lighting"):
        if getattr(cfg.randomization, name) != getattr(defaults, name):
            bad.append(f"task.randomization.{name} (randomise in the VecTask's own config)")
    if cfg.obs != "state":
        bad.append("obs=pixels (the adapter maps obs_dict['obs'] only)")
    if cfg.cameras is not None:
        bad.append("task.cameras")
    if cfg.env_state_slots is not None:
        bad.append("task.env_state_slots")
    return bad


class VecTaskBatch:
    """One ``VecTask`` of ``num_envs`` environments, stepped and reset for its views."""

    def __init__(self, cfg: TaskConfig, num_envs: int) -> None:
        bad = _unhonoured(cfg)
        if bad:
            raise ValueError(
                f"task {cfg.name!r} (backend=isaacgym) cannot honour " + "; ".join(bad)
            )
        require_isaacgym()
        cls = vec_task_class(str(cfg.vec_task))
        config = merged(getattr(cls, "default_cfg", {}), cfg.vec_task_cfg)
        missing = [k for k in ("env", "sim") if k not in config]
        if missing:
            raise ValueError(
                f"task.vec_task={cfg.vec_task!r} has no default config: task.vec_task_cfg must "
                f"hold its IsaacGymEnvs config (missing sections {missing})"
            )
        config["env"]["numEnvs"] = num_envs
        self.cfg, self.num_envs = cfg, num_envs
        self.task = cls(
            config=config,
            rl_device=cfg.sim_device,
            sim_device=cfg.sim_device,
            graphics_device_id=0,
            headless=True,
            virtual_screen_capture=False,
            force_render=False,
        )
        self.success_key = cfg.success_key or "successes"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the batch's own random stream (see _generator)
            cpu_state = torch.get_rng_state()
        cuda_state = None
        if torch.device(self.task.device).type == "cuda":
            cuda_state = torch.cuda.get_rng_state(torch.device(self.task.device).index or 0)
        self._stream: tuple[torch.Tensor, torch.Tensor | None] = (cpu_state, cuda_state)
        self.steps: np.ndarray = np.zeros(num_envs, np.int64)

    @property
    def fps(self) -> int:
        """Control rate: one ``step`` is ``controlFrequencyInv`` physics steps of ``dt``."""
        return int(round(1.0 / (self.task.dt * getattr(self.task, "control_freq_inv", 1))))

    @contextmanager
    def _generator(self, seed: int | None = None) -> Iterator[None]:
        """Run the block on torch's generator seeded with ``seed`` (None: the batch's own
        stream, continued), then give the caller back its own generator state."""
        device = torch.device(self.task.device)
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            if seed is not None:
                torch.manual_seed(seed)
            else:
                torch.set_rng_state(self._stream[0])
                if cuda:
                    torch.cuda.set_rng_state(self._stream[1], cuda[0])
            yield
            if seed is None:
                self._stream = (
                    torch.get_rng_state(),
                    torch.cuda.get_rng_state(cuda[0]) if cuda else None,
                )

    def _draw(self) -> int:
        """A seed from the batch's own stream (a reset without ``seed``)."""
        with self._generator():
            return int(torch.randint(0, 2**31 - 1, (1,)).item())

    def reset_env(self, index: int, seed: int | None) -> np.ndarray:
        """Reset env ``index`` from torch's generator seeded with ``seed``; its observation."""
        with self._generator(seed if seed is not None else self._draw()):
            ids = torch.tensor([index], device=self.task.device, dtype=torch.long)
            self.task.reset_idx(ids)
        obs = self.task.compute_observations()
        if obs is None:  # IsaacGymEnvs tasks fill obs_buf and return nothing
            obs = self.task.obs_buf
        self.steps[index] = 0
        return _numpy(obs[index])

    def step_views(self, views: list[IsaacGymTaskEnv], actions: list[Any]) -> list[tuple]:
        """One ``VecTask.step``: each view's action on its env, zeros on the others."""
        full = np.zeros((self.num_envs, self.task.num_actions), np.float32)
        for view, action in zip(views, actions, strict=True):
            full[view.index] = view.checked_action(action)
        with self._generator():  # idle envs' own resets, a task's noise: not the caller's stream
            obs_dict, rewards, resets, extras = self.task.step(
                torch.as_tensor(full, device=self.task.rl_device)
            )
        obs, rewards, resets = _numpy(obs_dict["obs"]), _numpy(rewards), _numpy(resets)
        timeouts = _numpy(extras.get("time_outs", np.zeros(self.num_envs)))
        success = extras.get(self.success_key)
        success = np.zeros(self.num_envs) if success is None else _numpy(success)
        results = []
        for view in views:
            i = view.index
            self.steps[i] += 1
            results.append(
                view.result(obs[i], rewards[i], bool(resets[i]), bool(timeouts[i]), success[i])
            )
        return results

    def close(self) -> None:
        """Free the simulation (once, whichever view closes first)."""
        if self.task is not None:
            self.task.close()
            self.task = None


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


@register_task("adapter", backend="isaacgym")
class IsaacGymTaskEnv(TaskEnv):
    """The gymnasium view of env ``index`` of a :class:`VecTaskBatch` (a batch of one alone)."""

    def __init__(self, cfg: TaskConfig, batch: VecTaskBatch | None = None, index: int = 0) -> None:
        self.cfg = cfg
        self.batch = batch if batch is not None else VecTaskBatch(cfg, 1)
        self.index = index
        task = self.batch.task
        self.fps = self.batch.fps
        self.max_episode_steps = cfg.max_episode_steps or int(task.max_episode_length)
        self.task_description = getattr(task, "description", None) or f"Isaac Gym {cfg.vec_task}"
        self.features = FeatureSpec(
            {
                "observation.state": Feature("float32", (int(task.num_obs),)),
                "action": Feature(
                    "float32",
                    (int(task.num_actions),),
                    low=-np.ones(task.num_actions),
                    high=np.ones(task.num_actions),
                    control_mode=cfg.control_mode,
                ),
            }
        )
        self._init_spaces()
        self._obs = np.zeros(task.num_obs, np.float32)

    @classmethod
    def make_batch(cls, cfg: TaskConfig, n: int) -> list[IsaacGymTaskEnv]:
        """``n`` views of one ``VecTask`` of ``n`` environments."""
        batch = VecTaskBatch(cfg, n)
        return [cls(cfg, batch, i) for i in range(n)]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._obs = self.batch.reset_env(self.index, seed).astype(np.float32)
        return {"observation.state": self._obs.copy()}, {"is_success": False}

    def step(self, action):
        if self.batch.num_envs > 1:
            raise RuntimeError(
                f"env {self.index} is one of {self.batch.num_envs} views of one Isaac Gym "
                "simulation: step them together with robot_learning.env_threads.step_envs"
            )
        return self.batch.step_views([self], [action])[0]

    def checked_action(self, action: Any) -> np.ndarray:
        """The action clipped to ``[-1, 1]``, held elements set (see :class:`TaskEnv`)."""
        return self._checked_action(action)

    def result(self, obs, reward, reset: bool, timeout: bool, success: Any) -> tuple:
        """The gymnasium 5-tuple of this env from the batch's step."""
        self._obs = np.asarray(obs, np.float32)
        success = bool(success > 0)
        limit = self.batch.steps[self.index] >= self.max_episode_steps
        terminated = reset and not timeout
        truncated = (timeout or limit) and not terminated
        reward = float(success) if self.cfg.reward == "sparse" else float(reward)
        info = {"is_success": success}
        return {"observation.state": self._obs.copy()}, reward, terminated, truncated, info

    def render(self) -> None:
        """No camera frames (the adapter maps state observations only)."""
        return None

    def task_state(self) -> dict[str, np.ndarray]:
        """The observation: Isaac Gym tasks expose no other privileged state here."""
        return {"state": self._obs.copy()}

    def close(self) -> None:
        self.batch.close()
