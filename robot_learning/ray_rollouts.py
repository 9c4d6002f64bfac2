"""Collection and evaluation episodes on Ray actors (``num_workers=N [cluster=...]``).

Design: each :class:`CollectWorker` actor owns one environment and the task's expert (or a
policy) and runs whole episodes for the seeds the driver hands out; each :class:`EvalWorker`
owns its own copy of the evaluated policy and runs :func:`~robot_learning.evaluation.evaluate`
on a contiguous block of evaluation seeds. The driver keeps everything that decides what is
saved: it hands out seed ``first_seed + attempt`` to whichever worker is free, buffers what comes
back and commits episodes **in seed order** through the same dataset writer and the same
accounting as local collection (``only_success``, ``max_attempts``, ``resume``,
``collect.json``), so a dataset does not depend on how many workers made it. Evaluation results
are merged in episode order into one :class:`~robot_learning.evaluation.EvalResult`; episodes
match a local evaluation exactly for a policy that does not sample (for a sampling policy each
block restarts the noise generator from its first seed, so the noise differs from a local run's
while its distribution does not).

No pickle for our payloads. The argued exception to the project's no-pickle rule is Ray's own
control plane: it pickles task and actor specs (the worker classes travel by reference to this
module, so every node needs the same ``robot_learning`` install) and the error of a failed
worker call. That is acceptable only inside one authenticated cluster, whose members can run
code on each other by design anyway; hence the network rules below. Everything
*we* send and receive is built from int, float, str, bool, bytes, None and lists/dicts of those,
which Ray serialises with msgpack and never hands to pickle (Ray falls back to pickle only for
other types; :func:`plain` checks both directions, so returning a numpy array fails loudly).
Configs cross as ``dataclasses.asdict`` dicts, episodes as one safetensors blob (the frames'
arrays stacked per key) plus JSON metadata.

Network: Ray's servers listen on all interfaces (Ray 2.60 maps 127.0.0.1 to the machine's
address, so they cannot be held to loopback); a new ``cluster=local`` therefore relies on Ray's
token authentication, which Ray 2.60 turns on for a new ``ray.init()`` cluster unless
``RAY_AUTH_MODE`` says otherwise (checked: a client with a wrong token, or without
authentication, cannot connect), and is refused here when ``RAY_AUTH_MODE`` is set to anything
but ``token``. ``cluster=auto`` or ``cluster=<address>`` joins a cluster someone started with
``ray start``: keep it on a trusted network and start every node with ``RAY_AUTH_MODE=token``
and a shared token (``ray get-auth-token --generate``; see
https://docs.ray.io/en/latest/ray-security/token-auth.html).

The RL collector of ``finetune`` steps its environments on Ray actors of the same kind
(:mod:`robot_learning.ray_envs`, one environment per worker, the learner stays here). Not
distributed yet: ``hil`` (its actors are its own processes), algorithms that wrap the
environment (``residual``), videos (recorded only by a local evaluation) and real robots
(``robot=``, one per process).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from robot_learning.envs import TaskConfig

log = logging.getLogger(__name__)

#: ``cluster=`` values that are not an address
CLUSTER_MODES = ("local", "auto")
#: True while a Ray connection opened by :func:`start_workers` is up (closed by :func:`stop_workers`)
_STARTED_RAY = False


def check_worker_settings(
    num_workers: int | None, cluster: str | None, robot: Any = None, videos: int = 0
) -> None:
    """Raise ``ValueError`` naming the setting when ``num_workers=``/``cluster=`` cannot work."""
    if num_workers is None:
        if cluster is not None:
            raise ValueError(
                f"cluster={cluster!r} needs num_workers=N (the Ray rollout workers to start on it)"
            )
        return
    if num_workers < 1:
        raise ValueError(
            f"num_workers={num_workers} must be >= 1 (or null: run the episodes in this process)"
        )
    if cluster is not None and cluster not in CLUSTER_MODES and ":" not in cluster:
        raise ValueError(
            f"cluster={cluster!r} must be local, auto or a Ray address such as 10.0.0.5:6379"
        )
    if cluster in (None, "local"):
        _check_local_auth()
    if robot is not None:
        raise ValueError(
            "robot=... runs episodes on one real robot in this process; num_workers= spreads "
            "simulated episodes over Ray workers: drop one of them"
        )
    if videos:
        raise ValueError(
            "video=true records videos in this process; drop num_workers= to record them"
        )


def plain(value: Any, where: str) -> Any:
    """``value`` unchanged if it is msgpack-able primitives only, else a ``TypeError`` naming ``where``.

    Ray pickles anything else; this keeps numpy arrays or objects from slipping onto the wire.
    """
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            plain(item, where)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: dict key {key!r} is not a str (Ray would pickle it)")
            plain(item, f"{where}.{key}")
        return value
    raise TypeError(f"{where}: {type(value).__name__} is not a plain value (Ray would pickle it)")


def encode_episode(frames: list[dict[str, np.ndarray]]) -> bytes:
    """Frames (one dict of arrays each) -> safetensors bytes of the arrays stacked per key."""
    from safetensors.numpy import save

    return save({k: np.stack([np.asarray(f[k]) for f in frames]) for k in frames[0]})


def decode_episode(data: bytes) -> list[dict[str, np.ndarray]]:
    """Inverse of :func:`encode_episode`."""
    from safetensors.numpy import load

    arrays = load(data)
    length = len(next(iter(arrays.values())))
    return [{k: v[i] for k, v in arrays.items()} for i in range(length)]


class CollectWorker:
    """Rollout worker of ``collect``: one environment plus the expert or policy acting in it."""

    def __init__(self, task: dict, expert: str, policy: str | None) -> None:
        """``task``: ``asdict(TaskConfig)``; ``expert``/``policy``: as ``CollectConfig``'s."""
        from robot_learning.envs import make_env, make_expert

        self.env = make_env(TaskConfig.from_dict(task))
        if policy is not None:
            from robot_learning.policy_actions import PolicyActions

            self.actions = PolicyActions(policy, self.env)
        else:
            self.actions = make_expert(self.env, None if expert == "scripted" else expert)

    def episode(self, seed: int) -> dict:
        """Run the episode of ``seed``: ``{"seed", "success", "frames", "tasks", "data"}``.

        ``data`` is :func:`encode_episode` of the frames ``collect.run_episode`` produces;
        ``tasks`` the instruction of each frame (JSON), as local collection records them.
        """
        from robot_learning.collect import run_episode
        from robot_learning.envs import episode_instruction

        frames: list[dict] = []
        tasks: list[str] = []

        def keep(frame: dict) -> None:
            frames.append(frame)
            tasks.append(episode_instruction(self.env))

        success, n = run_episode(self.env, self.actions, int(seed), on_frame=keep)
        reply = {
            "seed": int(seed),
            "success": bool(success),
            "frames": int(n),
            "tasks": json.dumps(tasks),
            "data": encode_episode(frames),
        }
        return plain(reply, "CollectWorker.episode")


class EvalWorker:
    """Rollout worker of ``eval``: its own copy of the policy; evaluates blocks of seeds."""

    def __init__(self, source: dict) -> None:
        """``source``: the eval command's ``checkpoint``/``bundle``/``runtime``/``device``/``threads``."""
        from robot_learning.cli.eval import policy_source

        self.source = policy_source(source)[0]

    def evaluate(self, cfg: dict) -> dict:
        """Evaluate ``asdict(EvalConfig)``; the per-episode lists and timings of the result."""
        from robot_learning.evaluation import EvalConfig, evaluate

        run = EvalConfig(**{**cfg, "task": TaskConfig.from_dict(cfg["task"])})
        self.source.reseed(run.seed)
        result = evaluate(self.source, run)
        reply = {k: v for k, v in asdict(result).items() if k != "videos"}
        return plain(reply, "EvalWorker.evaluate")


def start_workers(cls: type, num_workers: int, cluster: str | None, *args: Any) -> list:
    """Start ``num_workers`` actors of ``cls(*args)``, first connecting to ``cluster`` (or
    starting a local one) unless Ray is already initialised in this process."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "num_workers= needs Ray: pip install 'robot-learning[distributed]'"
        ) from exc
    global _STARTED_RAY
    if not ray.is_initialized():
        if (cluster or "local") == "local":
            _check_local_auth()
            ray.init(num_cpus=num_workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=cluster, log_to_driver=False)
        _STARTED_RAY = True
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < num_workers:
        log.warning(
            "num_workers=%d but the Ray cluster has %g CPUs: workers wait", num_workers, cpus
        )
    actor = ray.remote(num_cpus=1)(cls)
    plain(list(args), f"{cls.__name__} settings")
    return [actor.remote(*args) for _ in range(num_workers)]


def stop_workers(workers: list) -> None:
    """End the actors, and the Ray connection (and a local cluster) if :func:`start_workers` opened it."""
    import ray

    global _STARTED_RAY
    for worker in workers:
        ray.kill(worker)
    if _STARTED_RAY:
        ray.shutdown()
        _STARTED_RAY = False


def _check_local_auth() -> None:
    """Refuse to start a local cluster without Ray's token authentication (see the module doc)."""
    auth = os.environ.get("RAY_AUTH_MODE", "token")
    if auth.lower() != "token":
        raise ValueError(
            f"RAY_AUTH_MODE={auth} would start a Ray cluster whose servers accept anyone on the "
            "network; unset it (Ray then uses a token) or set RAY_AUTH_MODE=token"
        )


def collect_on_workers(cfg, writer, result, wanted, max_attempts, first_seed, bar, bar_id) -> None:
    """``collect``'s episode loop with the episodes run on ``cfg.num_workers`` Ray actors.

    Seeds go out as workers free up, never more than could still be saved (so without
    ``only_success`` no episode is run in vain); replies are committed in seed order through
    :func:`robot_learning.collect.commit_episode`, which local collection uses too.
    """
    import ray

    from robot_learning.collect import commit_episode

    if wanted <= 0 or max_attempts <= 0:
        return  # nothing to collect: no cluster to start
    settings = (asdict(cfg.task), cfg.expert, cfg.policy)
    workers = start_workers(CollectWorker, cfg.num_workers, cfg.cluster, *settings)
    free, running, ready = list(workers), {}, {}
    next_attempt = 0

    def more() -> bool:
        return result.episodes < wanted and result.attempts < max_attempts

    try:
        while more():
            # episodes still possible: the saved ones plus those handed out but not committed
            while free and next_attempt < max_attempts:
                if result.episodes + (next_attempt - result.attempts) >= wanted:
                    break
                worker = free.pop()
                running[worker.episode.remote(first_seed + next_attempt)] = worker
                next_attempt += 1
            done, _ = ray.wait(list(running), num_returns=1)
            reply = ray.get(done[0])
            free.append(running.pop(done[0]))
            ready[reply["seed"]] = reply
            while more() and first_seed + result.attempts in ready:
                reply = ready.pop(first_seed + result.attempts)
                if not cfg.only_success or reply["success"]:
                    frames = decode_episode(reply["data"])
                    tasks = json.loads(reply["tasks"])
                    for frame, instruction in zip(frames, tasks, strict=True):
                        writer.add_frame(frame, task=instruction)
                commit_episode(
                    cfg, writer, result, reply["seed"], reply["success"], reply["frames"]
                )
                bar.update(bar_id, completed=result.episodes, rate=f"{result.success_rate:.0%}")
    finally:
        stop_workers(workers)


def evaluate_on_workers(source: dict, cfg, progress: bool = False):
    """``evaluate`` with blocks of consecutive episodes run by ``cfg.num_workers`` Ray actors.

    ``source``: the eval command's policy settings (:class:`EvalWorker`). Returns one
    :class:`~robot_learning.evaluation.EvalResult` in episode order (``seconds`` is wall time).
    """
    import ray
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from robot_learning.evaluation import EvalResult

    # blocks of num_envs episodes keep every worker busy and batch inference as locally
    size = max(1, min(cfg.num_envs, -(-cfg.episodes // cfg.num_workers)))
    blocks = [(a, min(size, cfg.episodes - a)) for a in range(0, cfg.episodes, size)]
    base = {**asdict(cfg), "task": asdict(cfg.task), "video_episodes": 0}
    for key in ("num_workers", "cluster"):  # a worker evaluates its block itself
        base.pop(key)
    start = time.perf_counter()
    workers = start_workers(EvalWorker, cfg.num_workers, cfg.cluster, source)
    free, running, replies = list(workers), {}, {}
    columns = [
        TextColumn("[bold]eval[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    try:
        with Progress(*columns, disable=not progress) as bar:
            bar_id = bar.add_task(
                f"{cfg.task.name} on {cfg.num_workers} workers", total=cfg.episodes
            )
            pending = list(blocks)
            while pending or running:
                while free and pending:
                    first, n = pending.pop(0)
                    block = {
                        **base,
                        "seed": cfg.seed + first,
                        "episodes": n,
                        "num_envs": min(cfg.num_envs, n),
                    }
                    worker = free.pop()
                    running[worker.evaluate.remote(plain(block, "EvalWorker.evaluate"))] = (
                        worker,
                        first,
                    )
                done, _ = ray.wait(list(running), num_returns=1)
                worker, first = running.pop(done[0])
                replies[first] = ray.get(done[0])
                free.append(worker)
                bar.update(bar_id, completed=sum(len(r["seeds"]) for r in replies.values()))
    finally:
        stop_workers(workers)
    result = EvalResult()
    for first in sorted(replies):
        for key in ("seeds", "successes", "max_rewards", "returns", "lengths", "flags"):
            getattr(result, key).extend(replies[first][key])
        result.inference_calls += replies[first]["inference_calls"]
        result.inference_seconds += replies[first]["inference_seconds"]
    result.seconds = time.perf_counter() - start
    return result
