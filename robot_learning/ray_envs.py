"""The RL collector's environments on Ray actors (``finetune ... num_workers=N [cluster=...]``).

Each :class:`EnvWorker` actor owns one environment of the task; the driver keeps the learner,
the replay buffer and the evaluation environment, and talks to the workers through
:class:`RemoteEnv` proxies that the :class:`~robot_learning.rl.collector.Collector` steps like
local environments. All proxies of a run share one :class:`RemoteEnvBatch` as their ``batch``,
so :func:`robot_learning.env_threads.step_envs` hands it a whole step at once: it sends every
worker its action before waiting for any reply, and the workers step in parallel.

Same episodes as a local run: a worker builds its environment with :func:`make_env` from the
same ``TaskConfig``, resets with the seed the collector chose and steps with the exact action
(float32 values are exact as Python floats); observations come back as safetensors bytes, so
they are bit-identical and the replay buffer equals a local run's (tested). Payloads follow
:mod:`robot_learning.ray_rollouts`' no-pickle rule: int, float, str, bool, bytes, None and
lists/dicts of those, checked by :func:`~robot_learning.ray_rollouts.plain`.

Not on workers: algorithms that wrap the environment (``wrap_env``: ``residual``'s base policy
would be built in each worker from a path every node must see, and its construction draws from
the driver's seeded torch generator locally, so the run would differ from a local one) and
algorithms with their own actors (``hil_serl``); :func:`check_remote_algo` refuses both.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from robot_learning.envs import TaskConfig
from robot_learning.features import FeatureSpec
from robot_learning.ray_rollouts import plain, start_workers, stop_workers


def encode_obs(obs: dict[str, np.ndarray]) -> bytes:
    """An observation dict -> safetensors bytes (dtypes and values exact)."""
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in obs.items()})


def decode_obs(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_obs`."""
    from safetensors.numpy import load

    return load(data)


def plain_info(info: dict[str, Any]) -> dict[str, bool]:
    """What the collector and evaluation read of ``info``: ``is_success`` and the ``flag/...`` bools."""
    out = {"is_success": bool(info.get("is_success", False))}
    out.update({k: bool(v) for k, v in info.items() if k.startswith("flag/")})
    return out


class EnvWorker:
    """Ray actor owning one environment of the task; replies with plain values only."""

    def __init__(self, task: dict) -> None:
        """``task``: ``asdict(TaskConfig)``."""
        from robot_learning.envs import make_env

        self.env = make_env(TaskConfig.from_dict(task))
        self.action_shape = tuple(self.env.features.action.shape)

    def describe(self) -> dict:
        """``{"features": FeatureSpec JSON, "fps": control rate}`` of the environment."""
        reply = {"features": self.env.features.to_json(), "fps": int(self.env.fps)}
        return plain(reply, "EnvWorker.describe")

    def reset(self, seed: int | None) -> dict:
        """``env.reset(seed=seed)`` as ``{"obs": encode_obs bytes, "info": plain_info}``."""
        obs, info = self.env.reset(seed=seed)
        return plain({"obs": encode_obs(obs), "info": plain_info(info)}, "EnvWorker.reset")

    def step(self, action: list[float]) -> dict:
        """``env.step(action)`` as ``{"obs", "reward", "terminated", "truncated", "info"}``."""
        act = np.asarray(action, np.float32).reshape(self.action_shape)
        obs, reward, terminated, truncated, info = self.env.step(act)
        reply = {
            "obs": encode_obs(obs),
            "reward": float(reward),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "info": plain_info(info),
        }
        return plain(reply, "EnvWorker.step")


def _result(reply: dict) -> tuple:
    """A :meth:`EnvWorker.step` reply -> gymnasium's ``(obs, reward, terminated, truncated, info)``."""
    obs = decode_obs(reply["obs"])
    return obs, reply["reward"], reply["terminated"], reply["truncated"], reply["info"]


class RemoteEnvBatch:
    """The Ray workers of a run: steps several of them at once, stops them all at the end."""

    def __init__(self, workers: list) -> None:
        self.workers = workers
        self._open = len(workers)

    def step_views(self, envs: list[RemoteEnv], actions: list[Any]) -> list[tuple]:
        """Each env's ``(obs, reward, terminated, truncated, info)`` after its action; all
        requests go out before the first reply is awaited, so the workers step in parallel."""
        import ray

        refs = [
            env.worker.step.remote(np.asarray(action, np.float32).tolist())
            for env, action in zip(envs, actions, strict=True)
        ]
        return [_result(reply) for reply in ray.get(refs)]

    def release(self) -> None:
        """One proxy is closed; the last one stops the workers (and Ray, if this run started it)."""
        self._open -= 1
        if self._open == 0:
            stop_workers(self.workers)


class RemoteEnv:
    """Driver-side proxy of one :class:`EnvWorker`: ``reset``/``step``/``close`` and ``features``
    like a local task environment, stepped together with its siblings through ``batch``."""

    def __init__(self, worker: Any, batch: RemoteEnvBatch, features: FeatureSpec, fps: int) -> None:
        self.worker, self.batch, self.features, self.fps = worker, batch, features, fps
        self._closed = False

    @property
    def unwrapped(self) -> RemoteEnv:
        """The proxy itself (there is no local environment behind it)."""
        return self

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """``(obs, info)`` of the worker's ``env.reset(seed=seed)`` (``options`` must be None)."""
        import ray

        if options is not None:
            raise ValueError("a remote environment resets with a seed only (options=None)")
        reply = ray.get(self.worker.reset.remote(None if seed is None else int(seed)))
        return decode_obs(reply["obs"]), reply["info"]

    def step(self, action: Any) -> tuple:
        """``(obs, reward, terminated, truncated, info)`` of this environment alone."""
        return self.batch.step_views([self], [action])[0]

    def close(self) -> None:
        """Let the workers go (the last proxy closed stops them); closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self.batch.release()


def remote_envs(task: TaskConfig, num_workers: int, cluster: str | None) -> list[RemoteEnv]:
    """``num_workers`` :class:`RemoteEnv` proxies of ``task``, one per started :class:`EnvWorker`."""
    import ray

    workers = start_workers(EnvWorker, num_workers, cluster, asdict(task))
    try:
        described = ray.get([worker.describe.remote() for worker in workers])
    except BaseException:
        stop_workers(workers)
        raise
    batch = RemoteEnvBatch(workers)
    return [
        RemoteEnv(worker, batch, FeatureSpec.from_json(d["features"]), d["fps"])
        for worker, d in zip(workers, described, strict=True)
    ]


def check_remote_algo(algo: str, algo_cls: type) -> None:
    """Refuse ``num_workers=`` for an algorithm whose environments cannot live on workers."""
    if hasattr(algo_cls, "run_finetune"):
        raise ValueError(
            f"algo={algo} runs its own actors (algo.num_actors); drop num_workers= (it puts the "
            "environments of the shared RL loop on Ray workers)"
        )
    if hasattr(algo_cls, "wrap_env"):
        raise ValueError(
            f"algo={algo} wraps every environment (wrap_env: e.g. a base policy), which Ray "
            "workers do not run: drop num_workers= (see robot_learning/ray_envs.py)"
        )
