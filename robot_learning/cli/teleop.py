"""``robot-learning teleop``: operator demonstrations and corrections into a LeRobotDataset v3.0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import (
    TASK_SHORTHANDS,
    build,
    load_config,
    take_setting,
    task_config,
    to_container,
)

#: keys of configs/teleop.yaml that are not TeleopConfig fields (they fill ``task``)
_CLI_ONLY = (*TASK_SHORTHANDS, "task")
#: prefix of device options on the command line (``device.reaction_steps=3``)
_DEVICE_PREFIX = "device."


def split_device_options(args: list[str]) -> tuple[list[str], dict[str, Any], str | None]:
    """(the other overrides, ``{option: value}`` from ``device.<option>=value`` arguments, the
    ``policy=`` folder or None).

    Device option values are parsed as YAML scalars (``3`` -> int, ``0.5`` -> float). ``policy``
    is taken out before Hydra sees it: ``configs/policy/`` is the zoo's config group, so Hydra
    would read ``policy=DIR`` as a group choice.
    """
    args, policy = take_setting(args, "policy")
    rest, options = [], {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.startswith(_DEVICE_PREFIX) and len(key) > len(_DEVICE_PREFIX):
            options[key[len(_DEVICE_PREFIX) :]] = yaml.safe_load(value) if value else None
        else:
            rest.append(arg)
    return rest, options, policy


@COMMANDS.register("teleop")
def teleop_command(args: list[str]) -> int:
    """Parse overrides, record, print a summary; exit 1 if fewer episodes than asked were saved
    (unless the operator stopped the session)."""
    from hardware.teleop.base import DeviceError
    from robot_learning.teleop import TeleopConfig, teleop

    args, options, policy = split_device_options(args)
    cfg = load_config("teleop", args)
    data = to_container(cfg)
    settings = {k: v for k, v in data.items() if k not in _CLI_ONLY}
    if policy is not None:
        settings["policy"] = policy
    run = build(
        TeleopConfig,
        {**settings, "device_options": options, "task": task_config(cfg)},
        where="teleop",
    )
    console = Console()
    try:
        result = teleop(run)
    except DeviceError as exc:
        console.print(f"[red]error:[/] device={run.device}: ", end="")
        console.print(str(exc), markup=False, highlight=False)
        if (Path(run.out) / "teleop.json").is_file():
            console.print(
                f"committed episodes are kept in {run.out} (teleop.json records the stop)"
            )
        return 2
    total = result.totals()
    rate = total["successes"] / total["episodes"] if total["episodes"] else 0.0
    console.print(
        f"[bold]teleop[/] recorded {result.episodes} episodes ({result.frames} frames) of "
        f"{run.task.name}/{run.task.backend}/{run.task.obs} with device={run.device} into {run.out}"
        f" (now {total['episodes']} episodes, success {rate:.1%}); "
        f"{result.interventions} interventions ({result.intervention_frames} frames), "
        f"{result.rerecorded} re-recorded; details in {run.out}/teleop.json"
    )
    if result.interrupted:
        return 130
    return 0 if total["episodes"] >= run.episodes or result.stopped else 1
