"""``robot-learning bench train``: collect -> train -> evaluate -> time inference, into bench.json."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_learning.cli.train import check_policy_settings
from robot_learning.collect import write_json
from robot_learning.config import build, load_config, to_container


def bench_train(args: list[str]) -> int:
    """Run one learning benchmark preset and print its numbers."""
    from robot_learning.bench.train import TrainBenchConfig, run_train_bench

    data = to_container(load_config("bench_train", args))
    policy_fields = dict(data.pop("policy"))
    name = policy_fields.pop("name")
    cfg = build(
        TrainBenchConfig,
        {"policy": name, "policy_overrides": policy_fields, **data},
        where="bench train",
    )
    check_policy_settings(name, policy_fields)
    console = Console()
    result = run_train_bench(
        cfg, report=lambda stage, message: console.print(f"[bold]{stage}[/] {message}")
    )
    out = Path(cfg.out) / "bench.json"
    write_json(out, result)
    train, ev, lat = result["train"], result["eval"], result["latency_ms"]
    table = Table(
        title=f"bench train {cfg.preset} / {cfg.policy} ({result['machine']['cpus']} CPUs)"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        (
            "demonstrations",
            f"{result['dataset']['episodes']} ({result['dataset']['frames']} frames)",
        ),
        ("parameters", f"{train['parameters'] / 1e6:.2f} M"),
        (
            "training steps",
            f"{train['steps']} in {train['seconds'] / 60:.1f} min ({train['steps_per_s']:.2f} steps/s)",
        ),
        ("final loss", f"{train['final_loss']:.4f}" if train["final_loss"] is not None else "-"),
        (
            "success rate",
            f"{ev['success_rate']:.1%} (95% CI {ev['success_ci95'][0]:.1%}-{ev['success_ci95'][1]:.1%}, "
            f"{ev['episodes']} episodes)",
        ),
        ("mean max reward", f"{ev['mean_max_reward']:.3f}"),
        ("predict_chunk p50 / p99", f"{lat['p50']:.1f} / {lat['p99']:.1f} ms (batch 1)"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"wrote {out}")
    return 0
