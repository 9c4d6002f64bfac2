"""The HIL-SERL learner: serve actors over gRPC, store their transitions, train RLPD, publish weights.

Reads top to bottom: setup (seeding, the task's features and an evaluation env, the contract,
RLPD with ``algo.*``, the buffers with demonstrations, resume) -> serve (token, TLS, bound
address written to ``learner_address.json``) -> loop (take queued transitions into the buffers
-> ``utd_ratio`` updates per received environment step, at most a slice at a time so new data
keeps flowing -> publish weights every ``algo.publish_every`` actor updates -> evaluate,
checkpoint; stop on ``env_steps``, ``max_minutes`` or SIGINT/SIGTERM) -> tell actors to stop,
final evaluation, checkpoint, ``finetune.json`` and ``hil.json``.

Resume (``resume=true``) restores the learner exactly (networks, optimisers, both buffers,
counters, curves, RNGs); episodes that were running on actors when it stopped end there as
truncations, and actors start new ones when they reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_learning.collect import write_json
from robot_learning.envs import make_env
from robot_learning.evaluation import EVAL_SEED_OFFSET
from robot_learning.hil.config import HilSerlConfig, TransportConfig
from robot_learning.hil.contract import HilContract, weights_payload
from robot_learning.hil.curves import HilCurves
from robot_learning.hil.service import LearnerService
from robot_learning.hil.storage import HilStorage
from robot_learning.hil.transport import serve
from robot_learning.rl import learner_state
from robot_learning.rl.algos import Batch
from robot_learning.rl.algos.rlpd import RLPD
from robot_learning.rl.collector import run_episodes
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.demos import check_demo_reward, load_demos
from robot_learning.rl.loop import check_resumable
from robot_learning.training.loop import seed_everything
from robot_learning.training.progress import GracefulStop, TrainProgress

log = logging.getLogger(__name__)

#: updates between two looks at the inbox, so pushes never wait behind a long burst of updates
UPDATE_SLICE = 32
#: seconds the learner keeps answering after the run ends, so actors hear ``stop``
STOP_GRACE_S = 2.0


def run_learner(
    run: FinetuneConfig,
    algo_cfg: HilSerlConfig,
    transport: TransportConfig,
    progress: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the learner of ``run``; returns the ``hil.json`` summary.

    ``on_ready(address)`` is called once the server listens (``host:port``).
    """
    threads = torch.get_num_threads()
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    try:
        return _run(run, algo_cfg, transport, progress, on_ready)
    finally:
        torch.set_num_threads(threads)


def _run(run, algo_cfg, transport, progress, on_ready) -> dict[str, Any]:
    # ---------------------------------------------------------------- setup
    out = Path(run.out)
    ckpt_root = out / "checkpoints"
    saved = learner_state.load_learner(ckpt_root) if run.resume else None
    if not run.resume and ckpt_root.exists() and any(ckpt_root.iterdir()):
        raise FileExistsError(f"{out} already holds a run; pass resume=true or choose another out=")
    security = transport.security()
    security.resolved_token()  # fail before building anything
    seed_everything(run.seed)
    rng = np.random.default_rng(run.seed)
    eval_env = make_env(run.task)
    contract = HilContract.for_algo(eval_env.features, algo_cfg)
    observations, encoder = contract.observations, contract.build_encoder()
    dim = contract.obs_dim if encoder is None else encoder.out_dim
    algo = RLPD(algo_cfg, dim, contract.action, encoder=encoder)
    shift_pad = algo_cfg.encoder.shift_pad if encoder is not None else 0
    offline = None
    if run.demos:  # on resume the checkpoint's offline buffer (demos + interventions) replaces it
        if algo_cfg.reward == "env" and saved is None:
            check_demo_reward(run.demos, run.task.reward)
        offline = load_demos(
            run.demos,
            contract.spec,
            run.demo_done_means,
            streams=2,
            extra_rows=algo_cfg.offline_rows,
        )
        if algo_cfg.reward == "rlif":
            offline.reward[:] = 0.0  # RLIF learns from interventions only: no task reward
    storage = HilStorage(
        contract.spec,
        contract.keys,
        online_rows=max(2, run.buffer_size // algo_cfg.max_actors),
        max_actors=algo_cfg.max_actors,
        reward=algo_cfg.reward,
        offline=offline,
        offline_rows=algo_cfg.offline_rows,
    )
    from torch.utils.tensorboard import SummaryWriter

    version, wall_before = 1, 0.0
    if saved is not None:
        check_resumable(saved, run)
        algo.load_state_dict(saved.state["algo"])
        storage.load_state_dict(saved.state["storage"], saved.replay)
        learner_state.restore_rng(saved.state["rng"], rng)
        version, wall_before = int(saved.state["version"]) + 1, float(saved.state["wall_s"])
    curves = HilCurves(SummaryWriter(str(out / "tb"), purge_step=storage.env_steps or None))
    if saved is not None:
        curves.load_state_dict(saved.state["curves"])
    write_json(out / "finetune_config.json", run.to_dict())
    write_json(out / "hil_transport.json", _public(transport))  # never the token

    service = LearnerService(
        contract.schema, contract.spec_hash, contract.arch_hash, algo_cfg.queue_limit
    )
    service.publish(version, weights_payload(algo.actor))
    server, port = serve(
        service.handlers(),
        security,
        transport.host,
        transport.port,
        transport.max_message_mb,
        workers=2 * algo_cfg.max_actors + 4,  # a weight stream and a push per actor, and spare
    )
    address = f"{transport.host}:{port}"
    write_json(out / "learner_address.json", {"address": address, "learner_id": service.learner_id})
    if on_ready is not None:
        on_ready(address)
    start = time.perf_counter()

    def wall() -> float:
        return wall_before + time.perf_counter() - start

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        return algo.act(observations.tensors(obs), explore=False).numpy()

    def evaluate() -> dict[str, float]:
        seeds = [EVAL_SEED_OFFSET + i for i in range(run.eval_episodes)]
        summary = curves.timed_evaluation(
            storage.env_steps, wall(), run_episodes(eval_env, policy, seeds)
        )
        log.info(
            "eval at %d env steps: success %.0f%%", storage.env_steps, 100 * summary["success_rate"]
        )
        return summary

    def save() -> None:
        meta, arrays = storage.state_dict()
        state = {
            "algo": algo.state_dict(),
            "storage": meta,
            "curves": curves.state_dict(),
            "rng": learner_state.capture_rng(rng),
            "version": service.version,
            "wall_s": wall(),
            "env_steps": storage.env_steps,
        }
        info = {"config": run.to_dict(), "env_steps": storage.env_steps, "updates": algo.updates}
        learner_state.save_learner(
            ckpt_root, storage.env_steps, state, arrays, info, run.keep_checkpoints
        )
        curves.plot(out / "learning_curve.png", f"hil_serl on {run.task.name}")
        curves.plot_hil(out / "hil_curve.png", f"hil_serl on {run.task.name}")

    if saved is None:
        evaluate()
    stopped = "completed"
    deadline = None if run.max_minutes is None else time.perf_counter() + 60 * run.max_minutes
    per_version = max(1, round(run.utd_ratio * algo_cfg.publish_every))
    bar = TrainProgress(run.env_steps, storage.env_steps, enabled=progress, label="hil_serl")
    metrics: dict[str, float] = {}
    # ---------------------------------------------------------------- loop
    try:
        with bar, GracefulStop() as stop:
            while storage.env_steps < run.env_steps:
                previous = storage.env_steps
                due = int(max(0, previous - run.warmup_steps) * run.utd_ratio)
                idle = algo.updates >= due or len(storage.online) == 0
                for d in service.take(0.05 if idle else 0.0):
                    if d.new_connection:
                        storage.end_actor(d.actor_id)
                    for t in d.transitions:
                        if storage.env_steps < run.env_steps:  # the budget is exact
                            storage.add(d.actor_id, t)
                    for ep in d.episodes:
                        curves.actor_episode(storage.env_steps, wall(), ep)
                due = int(max(0, storage.env_steps - run.warmup_steps) * run.utd_ratio)
                service.set_progress(storage.env_steps, _backlog(due, algo.updates, run.utd_ratio))
                for _ in range(UPDATE_SLICE):
                    if algo.updates >= due or len(storage.online) == 0:
                        break
                    sample = storage.sample(run.batch_size, rng, run.n_step, run.gamma)
                    batch = Batch.from_numpy(
                        sample,
                        observations.tensors(sample["obs"], shift_pad=shift_pad),
                        observations.tensors(sample["next_obs"], shift_pad=shift_pad),
                    )
                    metrics = algo.update(batch)
                    if algo.updates % per_version == 0:
                        service.publish(service.version + 1, weights_payload(algo.actor))
                now = storage.env_steps
                if metrics and _crossed(previous, now, run.log_every):
                    curves.scalars(now, {**metrics, "policy_version": service.version})
                if _crossed(previous, now, run.eval_every) and now < run.env_steps:
                    evaluate()
                if _crossed(previous, now, run.save_every) and now < run.env_steps:
                    save()
                service.set_progress(now, _backlog(due, algo.updates, run.utd_ratio))
                if metrics:
                    bar.update(now, metrics["critic_loss"])
                if stop.requested or (deadline is not None and time.perf_counter() > deadline):
                    stopped = "interrupted" if stop.requested else "time_budget"
                    log.warning("learner stopping at %d env steps (%s)", now, stopped)
                    break
    except BaseException:
        server.stop(0)  # streams break, not end: actors wait for a restarted learner
        raise
    # ---------------------------------------------------------------- end
    service.set_progress(storage.env_steps, stop=True)
    service.close()  # ends the weight streams: actors stop even if their next push comes late
    time.sleep(STOP_GRACE_S)  # and pushes within the grace period hear "stop" too
    service.take(0.0)  # late data is not stored: the run's step count is final
    for actor_id in list(storage.actors):  # interventions still running go to the offline buffer
        storage.end_actor(actor_id)
    if not curves.evals or curves.evals[-1][0] != storage.env_steps:
        evaluate()
    save()
    service.close()
    server.stop(grace=1.0)
    curves.writer.close()
    eval_env.close()
    final = {
        "env_steps": curves.evals[-1][0],
        "return": curves.evals[-1][1],
        "success_rate": curves.evals[-1][2],
    }
    summary = {
        "algo": "hil_serl",
        "task": run.task.name,
        "reward": algo_cfg.reward,
        "device": algo_cfg.device,
        "env_steps": storage.env_steps,
        "updates": algo.updates,
        "interventions": storage.interventions,
        "intervention_steps": storage.intervention_steps,
        "intervention_rate": round(storage.intervention_steps / max(1, storage.env_steps), 4),
        "policy_versions": service.version,
        "policy_inputs": contract.keys,
        "actors": len(storage.actors),
        "actor_episodes": len(curves.hil),
        "offline_transitions": len(storage.offline),
        "wall_s": round(wall(), 2),
        "stopped": stopped,
        "address": address,
        "initial_eval": _eval_dict(curves.evals[0]),
        "final_eval": final,
        "evals": [_eval_dict(e) for e in curves.evals],
    }
    write_json(out / "finetune.json", summary)
    write_json(out / "hil.json", summary)
    return summary


def _backlog(due: int, updates: int, utd_ratio: float) -> int:
    """Received environment steps the learner has not yet made its updates for."""
    return max(0, int((due - updates) / utd_ratio))


def _eval_dict(e: tuple[int, float, float]) -> dict[str, float]:
    return {"env_steps": e[0], "return": e[1], "success_rate": e[2]}


def _crossed(previous: int, now: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in ``(previous, now]`` (never for ``every == 0``)."""
    return every > 0 and now // every > previous // every


def _public(transport: TransportConfig) -> dict[str, Any]:
    """The transport settings without the token (never written to disk)."""
    from dataclasses import asdict

    return {k: v for k, v in asdict(transport).items() if k != "token"}
