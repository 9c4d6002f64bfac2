"""``robot-learning bench <name>``: measured numbers into bench.json plus a printed table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_learning.cli import COMMANDS
from robot_learning.collect import write_json
from robot_learning.config import ConfigError, build, load_config, to_container

BENCHES = ("sim", "train", "inference", "ros")


@COMMANDS.register("bench")
def bench_command(args: list[str]) -> int:
    """Dispatch to one benchmark."""
    if not args or args[0] not in BENCHES:
        raise ConfigError(
            f"usage: robot-learning bench <{'|'.join(BENCHES)}> [key=value ...]; got {args[:1]}"
        )
    if args[0] == "train":
        from robot_learning.cli.bench_train import bench_train

        return bench_train(args[1:])
    if args[0] == "inference":
        from robot_learning.cli.bench_inference import bench_inference

        return bench_inference(args[1:])
    if args[0] == "ros":
        from robot_learning.cli.bench_ros import bench_ros

        return bench_ros(args[1:])
    return _bench_sim(args[1:])


def _bench_sim(args: list[str]) -> int:
    from robot_learning.bench.sim import SimBenchConfig, run_sim_bench

    data = to_container(load_config("bench_sim", args))
    cfg = build(SimBenchConfig, data, where="bench sim")
    console = Console()
    console.print(
        f"timing env steps/s (single env, AsyncVectorEnv x{cfg.num_envs}, "
        f"{cfg.num_envs} envs on threads) ..."
    )
    result = run_sim_bench(cfg, report=lambda row: console.print(f"  {row}"))
    out = Path(cfg.out) / "bench.json"
    write_json(out, result)
    table = Table(title=f"bench sim (steps/s, {result['machine']['cpus']} CPUs)")
    vec_key = f"steps_per_s_vector_{cfg.num_envs}"
    thr_key = f"steps_per_s_threads_{cfg.num_envs}"
    n = cfg.num_envs
    for col in (
        "task",
        "backend",
        "obs",
        "single",
        f"async x{n}",
        "speedup",
        f"threads x{n}",
        "speedup",
    ):
        table.add_column(col)
    for row in result["results"]:
        threaded = row[thr_key]
        table.add_row(
            row["task"],
            row["backend"],
            row["obs"],
            f"{row['steps_per_s_single']:.0f}",
            f"{row[vec_key]:.0f}",
            f"{row['vector_speedup']:.2f}x",
            "-" if threaded is None else f"{threaded:.0f}",
            "-" if threaded is None else f"{row['threads_speedup']:.2f}x",
        )
    console.print(table)
    console.print(f"wrote {out}")
    return 0
