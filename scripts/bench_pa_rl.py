"""PA-RL on a trained VLA (numbers in BENCHMARKS.md): iterations of collect -> critic -> improve ->
distil on the task with sparse reward; the VLA is saved after every iteration.

  .venv/bin/python scripts/bench_pa_rl.py BASE_CHECKPOINT OUT [task=lift_color] [iterations=8]
      [episodes=8] [critic_updates=150] [distill_updates=40] [improve_steps=2] [num_samples=8]
      [minutes=40] [demos=DATASET] [critic_warmup_updates=2000] [demo_fraction=0.5]

Writes OUT/pa_rl.json (per-iteration metrics) and OUT/final; compare both with
  robot-learning eval checkpoint=BASE_CHECKPOINT|OUT/final task=lift_color episodes=100
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from policies.vla.pa_rl import PARLConfig, pa_rl
from policies.vla.pa_rl_data import demo_chunks
from robot_learning.envs import TaskConfig
from robot_learning.policy import Policy


def main(argv: list[str]) -> int:
    base, out, *rest = argv
    opts = dict(a.split("=", 1) for a in rest)
    torch.set_num_threads(1)
    base, out = Path(base), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_config = json.loads((base / "config.json").read_text()).get("train_config", {})
    policy = Policy.load(base).train()
    task = TaskConfig(name=opts.get("task", "lift_color"), reward="sparse")
    cfg = PARLConfig(
        episodes_per_iteration=int(opts.get("episodes", 8)),
        critic_updates=int(opts.get("critic_updates", 150)),
        distill_updates=int(opts.get("distill_updates", 40)),
        improve_steps=int(opts.get("improve_steps", 2)),
        num_samples=int(opts.get("num_samples", 8)),
        policy_lr=float(opts.get("policy_lr", 1e-5)),
        critic_warmup_updates=int(
            opts.get("critic_warmup_updates", 2000 if "demos" in opts else 0)
        ),
        demo_fraction=float(opts.get("demo_fraction", 0.5)),
    )
    demos = demo_chunks(policy, opts["demos"], cfg.gamma) if "demos" in opts else None
    started = time.monotonic()
    budget = 60 * float(opts.get("minutes", 40))

    def checkpoint(it: int, metrics: dict[str, list[float]]) -> bool:
        metrics.setdefault("minutes", []).append(round((time.monotonic() - started) / 60, 2))
        print(it, {k: round(v[-1], 3) for k, v in metrics.items()}, flush=True)
        policy.eval().save(out / "final", extra={"train_config": train_config})
        policy.train()
        report = {
            "base": str(base),
            "demos": opts.get("demos"),
            "config": asdict(cfg),
            "metrics": metrics,
        }
        (out / "pa_rl.json").write_text(json.dumps(report, indent=2))
        return time.monotonic() - started < budget

    iterations = int(opts.get("iterations", 8))
    pa_rl(policy, task, cfg, iterations, on_iteration=checkpoint, demos=demos)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
