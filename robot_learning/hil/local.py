"""``finetune algo=hil_serl``: a learner in this process and ``algo.num_actors`` actor processes.

The learner binds 127.0.0.1 on a free port with a fresh random token (or
``ROBOT_LEARNING_HIL_TOKEN``); each actor is a child process started with a JSON spec file and
the token in its environment (never on disk). Actor logs go to ``out/actors/<id>.log``; their
summaries to ``out/actors/actor_<id>.json``; exit codes into ``hil.json``.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robot_learning.collect import write_json
from robot_learning.hil.config import TransportConfig
from robot_learning.hil.learner import run_learner
from robot_learning.hil.transport import TOKEN_ENV

log = logging.getLogger(__name__)

#: seconds actors get to finish after the learner ends before they are terminated
ACTOR_EXIT_S = 30.0


def actor_seed(base: int, index: int) -> int:
    """Episode seeds of actor ``index``: disjoint from the learner's and from other actors'."""
    return base + 10_000 * (index + 1)


def run_local(run: Any, progress: bool = False, on_eval: Any = None) -> Any:
    """Run the learner with local actors; returns a :class:`~robot_learning.rl.loop.FinetuneResult`."""
    from robot_learning.rl.loop import FinetuneResult, algo_config

    algo_cfg = algo_config(run)
    token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    transport = TransportConfig(port=0, token=token)
    actors_dir = Path(run.out) / "actors"
    procs: list[tuple[str, subprocess.Popen]] = []

    def launch(address: str) -> None:
        actors_dir.mkdir(parents=True, exist_ok=True)
        child_env = {**os.environ, TOKEN_ENV: token}
        for i in range(algo_cfg.num_actors):
            actor_id = f"actor-{i}"
            spec = {
                "task": asdict(run.task),
                "algo": dict(run.algo_overrides),
                "transport": {**asdict(transport), "learner": address, "token": None},
                "actor_id": actor_id,
                "seed": actor_seed(run.seed, i),
                "out": str(actors_dir),
                "threads": 1,
            }
            spec_path = actors_dir / f"{actor_id}.spec.json"
            write_json(spec_path, spec)
            logfile = open(actors_dir / f"{actor_id}.log", "ab")  # noqa: SIM115 (closed with the child)
            proc = subprocess.Popen(
                [sys.executable, "-m", "robot_learning.hil.actor_main", str(spec_path)],
                env=child_env,
                stdout=logfile,
                stderr=subprocess.STDOUT,
            )
            logfile.close()  # the child holds its own descriptor
            procs.append((actor_id, proc))

    try:
        summary = run_learner(run, algo_cfg, transport, progress=progress, on_ready=launch)
    except BaseException:
        for _, proc in procs:  # no learner: the actors would only wait for it
            proc.terminate()
        _reap(procs)
        raise
    codes = _reap(procs)
    summary["actor_exit_codes"] = codes
    bad = {k: c for k, c in codes.items() if c != 0}
    if bad:
        log.warning("actors exited with errors %s; see %s/<id>.log", bad, actors_dir)
    write_json(Path(run.out) / "hil.json", summary)
    write_json(Path(run.out) / "finetune.json", summary)
    evals = summary["evals"]
    if on_eval is not None:
        on_eval(evals[-1]["env_steps"], evals[-1])
    return FinetuneResult(
        env_steps=summary["env_steps"],
        updates=summary["updates"],
        seconds=summary["wall_s"],
        stopped=summary["stopped"],
        evals=evals,
    )


def _reap(procs: list[tuple[str, subprocess.Popen]]) -> dict[str, int]:
    """Wait for every actor (terminate, then kill, the ones that do not finish); exit codes."""
    codes = {}
    for actor_id, proc in procs:
        try:
            codes[actor_id] = proc.wait(timeout=ACTOR_EXIT_S)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                codes[actor_id] = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[actor_id] = proc.wait()
    return codes
