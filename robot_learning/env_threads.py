"""Several in-process environments stepped at once on a thread pool (batched CPU simulation).

MuJoCo releases the GIL while it integrates, so the physics of ``num_envs`` environments runs in
parallel threads of one process, without the pickling and inter-process traffic of gymnasium's
``AsyncVectorEnv``; the Python parts of a step (controllers, rewards) still take turns. Every
environment is stepped exactly as it would be alone, so results do not depend on the number of
threads. Camera rendering stays on one thread (OpenGL contexts belong to the thread that made
them): pixel tasks and videos are refused with ``threads > 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class EnvThreads:
    """``map(fn, items)`` on ``threads`` threads (1: in the calling thread, in order)."""

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"env_threads={threads} must be >= 1")
        self.threads = threads
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="env")
            if threads > 1
            else None
        )

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, the calls spread over the threads."""
        if self._pool is None:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        """Stop the threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> EnvThreads:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_threadable(threads: int, obs: str, videos: int = 0, where: str = "") -> None:
    """Refuse ``threads > 1`` for camera observations or videos (rendering is single-threaded)."""
    if threads > 1 and (obs != "state" or videos):
        what = "videos" if videos else f"obs={obs}"
        raise ValueError(
            f"{where}env_threads={threads} steps environments in parallel threads, which cannot "
            f"render ({what}): use env_threads=1 for camera tasks and videos"
        )


def step_envs(threads: EnvThreads, envs: Sequence[Any], actions: Sequence[Any]) -> list[tuple]:
    """``env.step(action)`` for each pair: one call of the batch when ``envs`` are views of one
    batched simulator (Isaac Gym, :func:`robot_learning.envs.make_envs`), else on ``threads``.

    Returns each environment's ``(obs, reward, terminated, truncated, info)``.
    """
    batches = {id(getattr(env, "batch", None)) for env in envs}
    batch = getattr(envs[0], "batch", None) if envs else None
    if batch is not None and len(batches) == 1:
        return batch.step_views(list(envs), list(actions))
    return threads.map(lambda pair: pair[0].step(pair[1]), zip(envs, actions, strict=True))
