"""``robot-learning robot list|check|calibrate``: what robots exist, is this one healthy, calibrate it."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from robot_learning.cli import COMMANDS
from robot_learning.config import (
    ConfigError,
    load_config,
    reject_unknown,
    task_config,
    to_container,
)

ACTIONS = ("list", "check", "calibrate")


@COMMANDS.register("robot")
def robot_command(args: list[str]) -> int:
    """Dispatch ``robot list``, ``robot check robot=<name>`` or ``robot calibrate robot=<name>``."""
    if not args or args[0] not in ACTIONS:
        raise ConfigError(
            f"usage: robot-learning robot <{'|'.join(ACTIONS)}> [robot=<name>] [key=value ...]; "
            f"got {args[:1]}"
        )
    if args[0] == "list":
        if args[1:]:
            raise ConfigError(f"robot list takes no settings, got {args[1:]}")
        return _list()
    cfg = load_config("robot", args[1:])
    data = to_container(cfg)
    reject_unknown(data, ["robot", "task", "steps", "out"], where=f"robot {args[0]}")
    steps = data["steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be a positive integer")
    from hardware.build import make_robot, robot_config

    robot_cfg = robot_config(data["robot"])
    task = task_config(cfg) if data.get("task") else None
    robot = make_robot(robot_cfg, task)
    if args[0] == "calibrate":
        return _calibrate(robot)
    return _check(robot, steps, data["out"])


def _list() -> int:
    from hardware.robot import ROBOTS

    table = Table(title="robots (robot=<name>)")
    for col in ("name", "description", "needs"):
        table.add_column(col)
    for name in ROBOTS.names():
        cls = ROBOTS.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, doc, getattr(cls, "extra", None) or "-")
    Console().print(table)
    return 0


def _calibrate(robot: Any) -> int:
    console = Console()
    with robot:
        data = robot.calibrate()
    if not data:
        console.print(f"robot {robot.name!r} needs no calibration; nothing written")
        return 0
    path = robot.save_calibration(data)
    console.print(f"calibration of {robot.name!r} (id {robot.cfg.id!r}) written to {path}")
    return 0


def check_robot(robot: Any, steps: int) -> dict[str, Any]:
    """Connect, read and hold for ``steps`` control periods; report the observed rates,
    observation ranges, limits and safety events."""
    t0 = time.perf_counter()
    with robot:
        connect_s = time.perf_counter() - t0
        obs = robot.get_observation()
        reads, sends = [], []
        lows = {
            k: np.asarray(v, np.float64) for k, v in obs.items() if np.asarray(v).dtype != np.uint8
        }
        highs = {k: v.copy() for k, v in lows.items()}
        period = 1.0 / robot.control_hz
        next_tick = time.perf_counter()
        for _ in range(steps):
            start = time.perf_counter()
            obs = robot.get_observation()
            reads.append(time.perf_counter() - start)
            for k in lows:
                value = np.asarray(obs[k], np.float64)
                lows[k], highs[k] = np.minimum(lows[k], value), np.maximum(highs[k], value)
            start = time.perf_counter()
            robot.send_action(robot.filter.hold(obs))
            sends.append(time.perf_counter() - start)
            if robot.realtime:
                next_tick += period
                time.sleep(max(0.0, next_tick - time.perf_counter()))
        elapsed = time.perf_counter() - t0 - connect_s
        report = {
            "robot": robot.name,
            "id": robot.cfg.id,
            "control_hz": robot.control_hz,
            "achieved_hz": steps / elapsed if elapsed > 0 else None,
            "connect_s": connect_s,
            "read_ms_p50": float(np.percentile(reads, 50) * 1e3),
            "read_ms_max": float(np.max(reads) * 1e3),
            "send_ms_p50": float(np.percentile(sends, 50) * 1e3),
            "send_ms_max": float(np.max(sends) * 1e3),
            "features": robot.features.to_dict(),
            "limits": robot.limits(),
            "observed": {k: {"min": lows[k].tolist(), "max": highs[k].tolist()} for k in lows},
            "safety_events": dict(robot.log.counts),
            "cameras": {
                name: dataclasses.asdict(cam.stats())
                for name, cam in getattr(robot, "cameras", {}).items()
            },
        }
    return report


def _check(robot: Any, steps: int, out: str | None) -> int:
    report = check_robot(robot, steps)
    console = Console()
    table = Table(title=f"robot check: {report['robot']} (id {report['id']})")
    table.add_column("measure")
    table.add_column("value")
    achieved = report["achieved_hz"]
    rows = [
        ("control rate", f"{report['control_hz']:g} Hz (achieved {achieved:.1f} Hz)"),
        ("connect", f"{report['connect_s'] * 1e3:.1f} ms"),
        (
            "read observation",
            f"p50 {report['read_ms_p50']:.2f} ms, max {report['read_ms_max']:.2f} ms",
        ),
        ("send action", f"p50 {report['send_ms_p50']:.2f} ms, max {report['send_ms_max']:.2f} ms"),
        ("control mode", str(report["limits"]["control_mode"])),
        ("action bounds", f"{report['limits']['action_low']} .. {report['limits']['action_high']}"),
        ("safety events", str(report["safety_events"] or "none")),
    ]
    for name, stats in report["cameras"].items():
        rows.append(
            (f"camera {name}", f"{stats['fps']:.1f} fps observed, {stats['frames']} frames")
        )
    for key, rng in report["observed"].items():
        rows.append(
            (key, f"min {np.round(rng['min'], 3).tolist()} max {np.round(rng['max'], 3).tolist()}")
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        console.print(f"wrote {path}")
    return 0
