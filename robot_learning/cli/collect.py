"""``robot-learning collect``: expert demonstrations into a LeRobotDataset v3.0."""

from __future__ import annotations

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.collect import CollectConfig, collect
from robot_learning.config import (
    TASK_SHORTHANDS,
    build,
    load_config,
    take_setting,
    task_config,
    to_container,
)

#: keys of configs/collect.yaml that are not CollectConfig fields (they fill ``task``)
_CLI_ONLY = (*TASK_SHORTHANDS, "task")


@COMMANDS.register("collect")
def collect_command(args: list[str]) -> int:
    """Parse overrides, collect, print a summary; exit 1 if fewer episodes than asked were saved."""
    args, policy = take_setting(args, "policy")  # configs/policy/ is the zoo's group
    cfg = load_config("collect", args)
    data = to_container(cfg)
    settings = {k: v for k, v in data.items() if k not in _CLI_ONLY}
    if policy is not None:
        settings["policy"] = policy
    run = build(CollectConfig, {**settings, "task": task_config(cfg)}, where="collect")
    result = collect(run)
    console = Console()
    console.print(
        f"[bold]collected[/] {result.episodes} episodes ({result.frames} frames) of "
        f"{run.task.name}/{run.task.backend}/{run.task.obs} into {run.out}"
        f" (now {result.totals()['episodes']} episodes)\n"
        f"expert success rate {result.success_rate:.1%} ({result.attempt_successes}/{result.attempts} attempts)"
        f", {result.frames / max(result.seconds, 1e-9):.1f} frames/s; details in {run.out}/collect.json"
    )
    if result.interrupted:
        return 130
    return 0 if result.totals()["episodes"] >= run.episodes else 1
