"""``robot-learning dataset info|validate|visualize|fix-fps|set-spec DIR``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import ConfigError, build

ACTIONS = ("info", "validate", "visualize", "fix-fps", "set-spec")


@dataclass
class InfoOptions:
    """Options of ``dataset info``."""

    json: bool = False
    """Print plain JSON (for scripts) instead of highlighted JSON."""


@dataclass
class VisualizeOptions:
    """Options of ``dataset visualize``."""

    episode: int = 0
    """Episode index to render."""
    out: str | None = None
    """``.png`` contact sheet or ``.mp4`` video; None: ``<dataset>_episode<N>.png`` next to the dataset."""

    def __post_init__(self) -> None:
        if self.episode < 0:
            raise ValueError(f"episode={self.episode} must be >= 0")


@dataclass
class NoOptions:
    """``dataset fix-fps`` takes no options."""


@dataclass
class ValidateOptions:
    """Options of ``dataset validate``."""

    deep: bool = False
    """Also decode every video frame (slower; catches corrupt bitstreams the frame count misses)."""


@dataclass
class SetSpecOptions:
    """Options of ``dataset set-spec``."""

    task: str = "???"
    """Registered task whose bounds, control mode and names the dataset should carry."""
    backend: str | None = None
    """Simulator backend of the task (default: the task's own)."""


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
        options[key] = _typed(key, value)
    return args[0], Path(args[1]), options


def _typed(key: str, value: str) -> Any:
    """``value`` typed as Hydra types override values (``3`` -> 3, ``true`` -> True, else a string)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides([f"{key}={value}"])[0].value()
    except HydraException:
        return value


@COMMANDS.register("dataset")
def dataset_command(args: list[str]) -> int:
    """Inspect, check, render or repair a LeRobotDataset v3.0 folder."""
    action, root, options = _parse(args)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    return _ACTIONS[action](root, options, Console())


def _validate(root: Path, options: dict[str, Any], console: Console) -> int:
    from robot_learning.datasets import validate_dataset

    opts = build(ValidateOptions, options, where="dataset validate")
    problems = validate_dataset(root, deep=opts.deep)
    if problems:
        console.print(f"[red]{root}: {len(problems)} problem(s)[/]")
        for problem in problems:
            console.print(f"  - {problem}", markup=False, highlight=False)
        return 1
    console.print(
        f"[green]{root}: valid LeRobotDataset v3.0[/]"
        + (" (every frame decoded)" if opts.deep else "")
    )
    return 0


def _fix_fps(root: Path, options: dict[str, Any], console: Console) -> int:
    from robot_learning.datasets.timing import repair_fps

    build(NoOptions, options, where="dataset fix-fps")
    old, new = repair_fps(root)
    if old == new:
        console.print(f"{root}: fps={old} already agrees with the timestamps; nothing changed")
    else:
        console.print(f"{root}: fps {old} -> {new} (from the timestamps) in meta/info.json")
    return 0


def _set_spec(root: Path, options: dict[str, Any], console: Console) -> int:
    from robot_learning.datasets import LeRobotDataset
    from robot_learning.datasets.set_spec import complete_features
    from robot_learning.envs import TaskConfig, make_env
    from robot_learning.evaluation import task_overrides_for

    opts = build(SetSpecOptions, options, where="dataset set-spec")
    if opts.task == "???":
        raise ConfigError("dataset set-spec needs task=<name>: the task the data was recorded on")
    values = {"name": opts.task, **task_overrides_for(LeRobotDataset(root).features)}
    if opts.backend is not None:
        values["backend"] = opts.backend
    env = make_env(TaskConfig.from_dict(values))
    try:
        notes = complete_features(root, env.features)
    finally:
        env.close()
    if not notes:
        console.print(
            f"{root}: already carries task {opts.task!r}'s bounds, control mode and names"
        )
    else:
        console.print(
            f"{root}: wrote task {opts.task!r}'s " + "; ".join(notes) + " into meta/info.json"
        )
    return 0


def _info(root: Path, options: dict[str, Any], console: Console) -> int:
    from robot_learning.datasets import dataset_info

    opts = build(InfoOptions, options, where="dataset info")
    info = dataset_info(root)
    if opts.json:
        print(json.dumps(info, indent=2))
    else:
        console.print_json(json.dumps(info))
    return 0


def _visualize(root: Path, options: dict[str, Any], console: Console) -> int:
    from robot_learning.datasets import visualize_dataset

    opts = build(VisualizeOptions, options, where="dataset visualize")
    # default next to (not inside) the dataset, so the dataset folder stays pure LeRobot layout
    out = Path(opts.out or root.parent / f"{root.name}_episode{opts.episode}.png")
    if out.suffix not in (".png", ".mp4"):
        raise ConfigError(f"out={out} must end in .png (contact sheet) or .mp4 (video)")
    visualize_dataset(root, out, episode=opts.episode)
    console.print(f"wrote {out}")
    return 0


_ACTIONS = {
    "info": _info,
    "validate": _validate,
    "visualize": _visualize,
    "fix-fps": _fix_fps,
    "set-spec": _set_spec,
}
