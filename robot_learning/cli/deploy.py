"""``robot-learning deploy``: run a bundle against a (simulated) robot as ROS 2 nodes, write deploy.json."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robot_learning.cli import COMMANDS, err_console
from robot_learning.config import (
    ConfigError,
    build,
    check_types,
    check_values,
    load_config,
    reject_unknown,
    task_config,
    to_container,
)

DEPLOY_KEYS = (
    "episodes",
    "robot",
    "runtime",
    "inference",
    "threads",
    "seed",
    "control_rate_hz",
    "lockstep",
    "realtime",
    "stale_after_s",
    "domain_id",
    "startup_timeout_s",
    "episode_timeout_s",
    "grace_s",
    "teleop",
    "teleop_options",
)

#: types of the keys of configs/deploy.yaml that are not DeployConfig fields (``task`` aside)
CLI_TYPES = {
    "backend": str | None,
    "obs": str | None,
    "instruction": str | None,
    "max_episode_steps": int | None,
    "bundle": str,
    "out": str | None,
}


def _robot_settings(data: dict) -> Any:
    """The ``robot:`` block as a typed robot config; ``data["robot"]`` becomes its name."""
    from hardware.build import robot_config

    robot = robot_config(data["robot"])
    data["robot"] = robot.type
    return robot


def _safety_parameters(robot: Any, task: Any) -> dict:
    """policy_node parameters that apply ``robot.safety`` to every executed action."""
    from robot_learning.envs import TASKS, task_key

    scale = getattr(TASKS.get(task_key(task)), "action_scale", None)
    return {"safety": json.dumps(asdict(robot.safety)), "ee_action_scale": float(scale or 0.0)}


@COMMANDS.register("deploy")
def deploy_command(args: list[str]) -> int:
    """Deploy ``bundle=DIR`` on ``robot=sim task=<name>`` for ``episodes=N``; prints deploy.json's numbers."""
    from robot_learning.cli.eval import _recorded_task
    from robot_learning.cli.train import resolve_task
    from robot_learning.collect import write_json
    from robot_learning.runtime.bundle import LANGUAGE_SECTION, read_bundle

    try:
        from ros_nodes.deploy import DeployConfig, DeployError, run_deploy
    except ImportError as exc:
        raise ConfigError(
            f"deploy needs ROS 2 (rclpy and message packages): pip install -e '.[ros]' ({exc})"
        ) from exc
    cfg = load_config("deploy", args)
    data = to_container(cfg)
    reject_unknown(data, [*CLI_TYPES, *DEPLOY_KEYS, "task"], where="deploy")
    robot = _robot_settings(data)
    data.update(check_types({k: data[k] for k in CLI_TYPES}, CLI_TYPES))
    data.update(check_values(DeployConfig, {k: data[k] for k in DEPLOY_KEYS}, where="deploy"))
    if data["max_episode_steps"] is not None and data["max_episode_steps"] < 1:
        raise ConfigError(f"max_episode_steps={data['max_episode_steps']} must be >= 1 (or null)")
    bundle = Path(data["bundle"])
    spec = read_bundle(bundle)
    if "task" in data:
        task = resolve_task(task_config(cfg), spec["features"], args)
    else:
        task = resolve_task(_recorded_task(spec.get("task"), bundle, data), spec["features"], args)
    if data["max_episode_steps"] is not None:
        task.max_episode_steps = data["max_episode_steps"]
    out = Path(data["out"]) if data["out"] is not None else bundle / "deploy"
    from hardware.safety import SafetyConfig

    extra = (
        {"policy_node": _safety_parameters(robot, task)} if robot.safety != SafetyConfig() else {}
    )
    if spec.get(LANGUAGE_SECTION) and task.instruction is None:
        # each episode's instruction, drawn by the task, goes to the policy node over ROS
        extra["sim_robot_node"] = {"publish_instruction": True}
    robot_settings = asdict(robot) if robot.type != "sim" else {}
    run = build(
        DeployConfig,
        {
            "bundle": str(bundle),
            "task": task,
            "out": str(out),
            "extra": extra,
            "robot_settings": robot_settings,
            **{k: data[k] for k in DEPLOY_KEYS},
        },
        where="deploy",
    )
    console = Console()
    columns = [
        TextColumn("[bold]deploy[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("success {task.fields[rate]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console) as bar:
        bar_id = bar.add_task(
            f"{spec['policy']} on {task.name} over ROS 2", total=run.episodes, rate="-"
        )
        try:
            report = run_deploy(
                run,
                progress=lambda done, total, rate: bar.update(
                    bar_id, completed=done, rate=f"{rate:.0%}"
                ),
            )
        except DeployError as exc:
            err_console.print("[red]error:[/] ", end="")
            err_console.print(str(exc), markup=False, highlight=False)
            return 1
    write_json(out / "deploy.json", report)
    low, high = report["success_ci95"]
    console.print(
        f"[bold]deploy[/] {report['policy']} on {task.name} ({run.robot}, {'lockstep' if run.lockstep else 'free-running'}): "
        f"success {report['success_rate']:.1%} (95% CI {low:.1%}-{high:.1%}) over {report['episodes']} episodes; "
        f"observation->command latency p50 {report['latency_ms_p50']} ms, p99 {report['latency_ms_p99']} ms; "
        f"{report['control_rate_hz']:.1f} Hz achieved, {report['missed_deadlines']} missed deadlines; wrote {out / 'deploy.json'}"
    )
    return 0
