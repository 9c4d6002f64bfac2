"""``robot-learning finetune algo=pa_rl``: PA-RL on a trained VLA checkpoint, from the CLI.

PA-RL works on action chunks in iterations (collect -> critic -> improve + distil), not on the
per-step off-policy loop of the other algorithms, so it registers its own loop in
:data:`robot_learning.rl.LOOP_ALGOS`. Every iteration saves the VLA to ``out/final`` (a normal
checkpoint: ``eval``, ``export`` and ``train init=`` take it) and the metrics to
``out/pa_rl.json``; ``eval_episodes`` evaluates the base and the result on the same seeds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from policies.vla.pa_rl import PARLConfig, evaluate_policy, pa_rl
from policies.vla.pa_rl_data import demo_chunks
from robot_learning.config import ConfigError, build
from robot_learning.envs import TaskConfig
from robot_learning.rl.own_loop import LOOP_ALGOS

#: the finetune settings PA-RL reads (the per-step loop's env_steps, utd_ratio, ... do not apply)
USED = ("out", "demos", "eval_episodes", "seed", "threads", "max_minutes", "gamma")


@dataclasses.dataclass
class PARLRun(PARLConfig):
    """``configs/algo/pa_rl.yaml``: which VLA to improve and for how long, plus every
    :class:`~policies.vla.pa_rl.PARLConfig` field."""

    base: str | None = None
    """Checkpoint folder of the VLA to improve (``train policy=vla`` output, e.g. DIR/final)."""
    iterations: int = 8
    """Collect -> critic -> improve + distil rounds."""


def run_pa_rl(settings: dict[str, Any], task: TaskConfig, algo: dict[str, Any]) -> int:
    """Run PA-RL from the finetune command's resolved settings; returns the exit code."""
    from robot_learning.policy import Policy

    if settings.get("resume"):
        raise ConfigError(
            "finetune algo=pa_rl cannot resume: start a new run with algo.base=<out>/final"
        )
    run_fields = {f.name for f in dataclasses.fields(PARLRun)}
    run = build(
        PARLRun, {k: v for k, v in algo.items() if k in run_fields}, where="algo", prefix="algo."
    )
    if not run.base:
        raise ConfigError(
            "finetune algo=pa_rl needs algo.base=<VLA checkpoint folder> (train policy=vla ... out=DIR -> DIR/final)"
        )
    own = {f.name for f in dataclasses.fields(PARLConfig)}
    cfg = PARLConfig(**{k: v for k, v in dataclasses.asdict(run).items() if k in own})
    if settings.get("threads"):
        torch.set_num_threads(int(settings["threads"]))
    base, out = Path(run.base), Path(settings["out"])
    policy = Policy.load(base)
    if not getattr(policy, "uses_language", False) or not hasattr(policy, "encode_prefix"):
        raise ConfigError(
            f"algo.base={base} is a {policy.name!r} policy; PA-RL here improves a vla checkpoint"
        )
    out.mkdir(parents=True, exist_ok=True)
    meta = (
        json.loads((base / "config.json").read_text()) if (base / "config.json").is_file() else {}
    )
    train_config = meta.get("train_config", {})
    demos = demo_chunks(policy, settings["demos"], cfg.gamma) if settings.get("demos") else None
    report: dict[str, Any] = {
        "base": str(base),
        "demos": settings.get("demos"),
        "config": dataclasses.asdict(cfg),
    }
    episodes = int(settings.get("eval_episodes") or 0)
    if episodes:
        report["base_success"] = evaluate_policy(policy.eval(), task, episodes)
        print(f"base success {report['base_success']:.0%} ({episodes} episodes)", flush=True)
    started, budget = time.monotonic(), settings.get("max_minutes")

    def save(it: int, metrics: dict[str, list[float]]) -> bool:
        metrics.setdefault("minutes", []).append(round((time.monotonic() - started) / 60, 2))
        print(
            f"iteration {it}: " + ", ".join(f"{k} {v[-1]:.3g}" for k, v in metrics.items()),
            flush=True,
        )
        policy.eval().save(out / "final", extra={"train_config": train_config})
        (out / "pa_rl.json").write_text(json.dumps({**report, "metrics": metrics}, indent=2))
        return budget is None or time.monotonic() - started < 60 * float(budget)

    metrics = pa_rl(policy.train(), task, cfg, run.iterations, on_iteration=save, demos=demos)
    if episodes:
        report["final_success"] = evaluate_policy(policy.eval(), task, episodes)
        print(
            f"after PA-RL: success {report['final_success']:.0%} ({episodes} episodes)", flush=True
        )
    (out / "pa_rl.json").write_text(json.dumps({**report, "metrics": metrics}, indent=2))
    print(f"VLA after {len(metrics.get('return', []))} iterations: {out / 'final'}")
    return 0


run_pa_rl.config_class = PARLRun  # what `finetune --help algo=pa_rl` documents
LOOP_ALGOS.register("pa_rl")(run_pa_rl)
