"""``robot-learning dataset info|validate|visualize|fix-fps DIR``."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import ConfigError

ACTIONS = ("info", "validate", "visualize", "fix-fps")


def _parse(args: list[str]) -> tuple[str, Path, dict[str, str]]:
    if len(args) < 2 or args[0] not in ACTIONS:
        raise ConfigError(
            f"usage: robot-learning dataset <{'|'.join(ACTIONS)}> DIR [key=value ...]; got {args}"
        )
    options = {}
    for item in args[2:]:
        if "=" not in item:
            raise ConfigError(f"expected key=value after the dataset path, got {item!r}")
        key, value = item.split("=", 1)
        options[key] = value
    return args[0], Path(args[1]), options


@COMMANDS.register("dataset")
def dataset_command(args: list[str]) -> int:
    """Inspect, check or render a LeRobotDataset v3.0 folder."""
    from robot_learning.datasets import dataset_info, validate_dataset, visualize_dataset

    action, root, options = _parse(args)
    console = Console()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    if action == "validate":
        _reject_options(options, set())
        problems = validate_dataset(root)
        if problems:
            console.print(f"[red]{root}: {len(problems)} problem(s)[/]")
            for problem in problems:
                console.print(f"  - {problem}")
            return 1
        console.print(f"[green]{root}: valid LeRobotDataset v3.0[/]")
        return 0
    if action == "fix-fps":
        from robot_learning.datasets.timing import repair_fps

        _reject_options(options, set())
        old, new = repair_fps(root)
        if old == new:
            console.print(f"{root}: fps={old} already agrees with the timestamps; nothing changed")
        else:
            console.print(f"{root}: fps {old} -> {new} (from the timestamps) in meta/info.json")
        return 0
    if action == "info":
        _reject_options(options, {"json"})
        info = dataset_info(root)
        if options.get("json", "false").lower() == "true":
            print(json.dumps(info, indent=2))
        else:
            console.print_json(json.dumps(info))
        return 0
    _reject_options(options, {"out", "episode"})
    episode = int(options.get("episode", 0))
    # default next to (not inside) the dataset, so the dataset folder stays pure LeRobot layout
    out = Path(options.get("out", root.parent / f"{root.name}_episode{episode}.png"))
    if out.suffix not in (".png", ".mp4"):
        raise ConfigError(f"out={out} must end in .png (contact sheet) or .mp4 (video)")
    visualize_dataset(root, out, episode=episode)
    console.print(f"wrote {out}")
    return 0


def _reject_options(options: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown options {unknown}; allowed: {sorted(allowed) or 'none'}")
