"""``robot-learning bench ros``: observation->command latency over ROS 2 (DDS on loopback)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_learning.collect import write_json
from robot_learning.config import build, load_config, to_container


def bench_ros(args: list[str]) -> int:
    """Deploy each configured policy against a free-running simulated robot; print the latency table."""
    from robot_learning.bench.ros import RosBenchConfig, run_ros_bench

    data = to_container(load_config("bench_ros", args))
    cfg = build(RosBenchConfig, data, where="bench ros")
    console = Console()
    console.print(
        f"deploying {len(cfg.cases)} policies over ROS 2 for {cfg.steps} steps each at {cfg.control_rate_hz:g} Hz ..."
    )
    result = run_ros_bench(
        cfg,
        report=lambda row: console.print(
            f"  {row['case']} ({row['inference']}): p50 {row['latency_ms_p50']} ms, p99 {row['latency_ms_p99']} ms, "
            f"{row['control_rate_hz']:.1f} Hz, {row['missed_deadlines']} missed deadlines"
        ),
    )
    out = Path(cfg.out) / "bench.json"
    write_json(out, result)
    table = Table(
        title=f"bench ros (observation->command over DDS, {result['machine']['cpus']} CPUs)"
    )
    columns = ("case", "inference", "runtime", "steps", "p50 ms", "p99 ms", "max ms", "Hz")
    for col in (*columns, "missed", "stalls"):
        table.add_column(col, justify="left" if col in columns[:3] else "right", overflow="fold")
    for row in result["results"]:
        table.add_row(
            row["case"],
            row["inference"],
            row["runtime"],
            str(row["steps"]),
            f"{row['latency_ms_p50']:.2f}",
            f"{row['latency_ms_p99']:.2f}",
            f"{row['latency_ms_max']:.2f}",
            f"{row['control_rate_hz']:.1f}",
            str(row["missed_deadlines"]),
            str(row["inference_stalls"]),
        )
    console.print(table)
    console.print(f"wrote {out}")
    return 0
