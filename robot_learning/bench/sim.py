"""``robot-learning bench sim``: environment steps per second, single env and vectorised.

For every (task, backend, observation mode) it times random-action steps in one env, in a
gymnasium ``AsyncVectorEnv`` of ``num_envs`` worker processes, and (state tasks) in ``num_envs``
envs of this process stepped on as many threads (:mod:`robot_learning.env_threads`; steps/s
counts env steps, i.e. vector steps x num_envs). Reset time is excluded: episodes are reset outside the timed region for the
single env; the vector env autoresets inside (as it would during collection).
"""

from __future__ import annotations

import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from robot_learning.env_threads import EnvThreads
from robot_learning.envs import TASKS, TaskConfig, make_env

log = logging.getLogger(__name__)


@dataclass
class SimBenchConfig:
    """Settings of ``bench sim`` (``configs/bench_sim.yaml``)."""

    tasks: list[str] | None = None
    """Task names to time; ``None`` = every registered task of the chosen backends."""
    backends: tuple[str, ...] = ("mujoco", "pybullet")
    """Backends to time."""
    obs_modes: tuple[str, ...] = ("state", "pixels")
    """Observation modes to time."""
    image_size: int = 96
    """Camera resolution in pixel mode."""
    state_steps: int = 2000
    """Timed env steps per state-mode measurement."""
    pixel_steps: int = 200
    """Timed env steps per pixel-mode measurement."""
    num_envs: int = 2
    """Workers in the AsyncVectorEnv."""
    seed: int = 0
    """Seed for resets and random actions."""
    out: str = "runs/bench_sim"
    """Folder for bench.json."""

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ValueError(f"num_envs={self.num_envs} must be >= 1")
        if self.state_steps < 1 or self.pixel_steps < 1:
            raise ValueError(
                f"state_steps={self.state_steps} and pixel_steps={self.pixel_steps} must be >= 1"
            )
        if self.image_size < 8:
            raise ValueError(f"image_size={self.image_size} is too small; use >= 8 pixels")
        empty = [
            k
            for k in ("tasks", "backends", "obs_modes")
            if getattr(self, k) == [] or getattr(self, k) == ()
        ]
        if empty:
            raise ValueError(
                f"{', '.join(f'{k}=[]' for k in empty)}: nothing to time; list at least one "
                "(tasks=null times every registered task)"
            )


def _env_fn(cfg: TaskConfig):
    def build():
        return make_env(cfg)

    return build


def time_single(cfg: TaskConfig, steps: int, seed: int) -> float:
    """Env steps per second of one env under uniformly random actions."""
    env = make_env(cfg)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    env.reset(seed=seed)
    elapsed, done_steps, episode = 0.0, 0, 0
    try:
        while done_steps < steps:
            action = rng.uniform(low, high).astype(np.float32)
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            elapsed += time.perf_counter() - t0
            done_steps += 1
            if terminated or truncated:
                episode += 1
                env.reset(seed=seed + episode)
    finally:
        env.close()
    return done_steps / elapsed


def time_vector(cfg: TaskConfig, steps: int, num_envs: int, seed: int) -> float:
    """Env steps per second (summed over workers) of a gymnasium AsyncVectorEnv."""
    # spawn, not fork: a forked child inherits the parent's OSMesa/GL state and deadlocks
    # creating its own renderer
    venv = gym.vector.AsyncVectorEnv([_env_fn(cfg) for _ in range(num_envs)], context="spawn")
    rng = np.random.default_rng(seed)
    try:
        venv.reset(seed=seed)
        low, high = venv.single_action_space.low, venv.single_action_space.high
        n_vec = max(1, steps // num_envs)
        t0 = time.perf_counter()
        for _ in range(n_vec):
            venv.step(rng.uniform(low, high, size=(num_envs, *low.shape)).astype(np.float32))
        elapsed = time.perf_counter() - t0
    finally:
        venv.close()
    return n_vec * num_envs / elapsed


def time_threads(cfg: TaskConfig, steps: int, num_envs: int, seed: int) -> float | None:
    """Env steps per second (summed) of ``num_envs`` envs in this process stepped on as many
    threads (:class:`~robot_learning.env_threads.EnvThreads`); None for camera tasks."""
    if cfg.obs != "state":
        return None
    envs = [make_env(cfg) for _ in range(num_envs)]
    rng = np.random.default_rng(seed)
    low, high = envs[0].action_space.low, envs[0].action_space.high

    def step(pair):
        env, action = pair
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    try:
        with EnvThreads(num_envs) as threads:
            for i, env in enumerate(envs):
                env.reset(seed=seed + i)
            n_vec = max(1, steps // num_envs)
            t0 = time.perf_counter()
            for _ in range(n_vec):
                actions = rng.uniform(low, high, size=(num_envs, *low.shape)).astype(np.float32)
                threads.map(step, zip(envs, actions, strict=True))
            elapsed = time.perf_counter() - t0
    finally:
        for env in envs:
            env.close()
    return n_vec * num_envs / elapsed


def run_sim_bench(cfg: SimBenchConfig, report=None) -> dict[str, Any]:
    """Time every selected (task, backend, obs) combination; ``report(row)`` sees each result."""
    rows = []
    for key in TASKS.names():
        backend, name = key.split("/", 1)
        if backend not in cfg.backends or (cfg.tasks is not None and name not in cfg.tasks):
            continue
        for obs in cfg.obs_modes:
            task_cfg = TaskConfig(name=name, backend=backend, obs=obs, image_size=cfg.image_size)
            steps = cfg.state_steps if obs == "state" else cfg.pixel_steps
            single = time_single(task_cfg, steps, cfg.seed)
            vector = time_vector(task_cfg, steps, cfg.num_envs, cfg.seed)
            threaded = time_threads(task_cfg, steps, cfg.num_envs, cfg.seed)
            row = {
                "task": name,
                "backend": backend,
                "obs": obs,
                "image_size": cfg.image_size if obs == "pixels" else None,
                "steps_per_s_single": round(single, 1),
                f"steps_per_s_vector_{cfg.num_envs}": round(vector, 1),
                "vector_speedup": round(vector / single, 2),
                f"steps_per_s_threads_{cfg.num_envs}": None
                if threaded is None
                else round(threaded, 1),
                "threads_speedup": None if threaded is None else round(threaded / single, 2),
            }
            log.info("bench sim %s", row)
            rows.append(row)
            if report is not None:
                report(row)
    if not rows:
        raise ValueError(
            f"No task matched tasks={cfg.tasks} backends={cfg.backends}; known: {TASKS.names()}"
        )
    return {
        "benchmark": "sim",
        "machine": {
            "cpus": _cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "config": asdict(cfg),
        "results": rows,
    }


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
