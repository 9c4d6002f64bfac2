"""``robot-learning bench inference``: exported-bundle latency per policy, step count and runtime."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_learning.collect import write_json
from robot_learning.config import build, load_config, to_container


def bench_inference(args: list[str]) -> int:
    """Time every configured bundle with every runtime and print one row per measurement."""
    from robot_learning.bench.inference import InferenceBenchConfig, run_inference_bench

    data = to_container(load_config("bench_inference", args))
    cfg = build(InferenceBenchConfig, data, where="bench inference")
    console = Console()
    result = run_inference_bench(
        cfg,
        report=lambda row: console.print(
            f"  {row['case']} {row['sampler']} {row['steps']} / {row['runtime']}: "
            f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms"
        ),
    )
    out = Path(cfg.out) / "bench.json"
    write_json(out, result)
    machine = result["machine"]
    table = Table(
        title=f"bench inference (batch 1, {machine['cpus']} CPUs, {machine['threads']} thread(s))"
    )
    for col in ("case", "sampler", "runtime", "p50 ms", "p99 ms", "calls/s", "vs torch"):
        table.add_column(
            col,
            justify="left" if col in ("case", "sampler", "runtime") else "right",
            overflow="fold",
            no_wrap=col != "case",
        )
    for row in result["results"]:
        speedup = row["speedup_vs_torch"]
        table.add_row(
            row["case"],
            f"{row['sampler']} x{row['steps']}",
            row["runtime"],
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['calls_per_s']:.1f}",
            "-" if speedup is None else f"{speedup:.2f}x",
        )
    console.print(table)
    for name, reason in result["skipped_runtimes"].items():
        console.print(f"skipped runtime {name}: {reason}", markup=False, highlight=False)
    console.print(f"wrote {out}")
    return 0
