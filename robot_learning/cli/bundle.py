"""``robot-learning bundle info DIR [json=true]``: what a bundle expects on ROS 2, from ``policy.json`` alone.

Prints the bundle's format and verification status (every file's SHA-256 and the metadata hash,
as every runtime checks them at load), its control rate, horizons and sampler, and for the
``policy_node``: each input key's topic, message type, the field read and its element (joint)
names and bounds; the command topic with the action's joint names and bounds; the QoS of each
endpoint; the diagnostics status name, levels and values; the services. Topics, QoS and
diagnostics come from the node's own constants (:mod:`ros_nodes.topics`), so this output cannot
drift from what the node does. No torch and no rclpy are imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import ConfigError, build

ACTIONS = ("info",)


@COMMANDS.register("bundle")
def bundle_command(args: list[str]) -> int:
    """``bundle info DIR [json=true]``; exit code 1 if the bundle fails verification."""
    if len(args) < 2 or args[0] not in ACTIONS:
        raise ConfigError(
            f"usage: robot-learning bundle <{'|'.join(ACTIONS)}> DIR [json=true]; got {args}"
        )
    options = dict(_option(item) for item in args[2:])
    opts = build(BundleInfoOptions, options, where="bundle info")
    info = bundle_info(Path(args[1]))
    if opts.json:
        print(json.dumps(info, indent=2))
    else:
        print_info(info, Console(soft_wrap=True))
    return 0 if info["verified"] else 1


@dataclass
class BundleInfoOptions:
    """Options of ``bundle info``."""

    json: bool = False
    """Print the description as JSON (for scripts) instead of text."""


def _option(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"expected key=value after the bundle path, got {item!r}")
    lowered = value.strip().lower()
    return key.strip(), {"true": True, "false": False}.get(lowered, value.strip())


def bundle_info(root: Path) -> dict[str, Any]:
    """The description printed by ``bundle info`` (also its ``json=true`` output)."""
    from robot_learning.runtime.bundle import BUNDLE_FILE, METADATA_HASH, BundleError, read_bundle

    try:
        spec, verified, problem = read_bundle(root), True, None
    except BundleError as exc:
        spec, verified, problem = _raw_spec(root, exc), False, str(exc)
    ros = _ros_interface(spec)
    return {
        "bundle": str(root),
        "verified": verified,
        "verification": problem
        or f"every file matches its SHA-256 and {BUNDLE_FILE} its {METADATA_HASH}",
        "format": f"{spec.get('format')} v{spec.get('format_version')}",
        "policy": spec.get("policy"),
        "files": {
            name: {"bytes": meta.get("bytes"), "sha256": meta.get("sha256")}
            for name, meta in sorted(spec.get("files", {}).items())
        },
        "control_rate_hz": spec.get("control_rate_hz"),
        "n_obs_steps": spec.get("n_obs_steps"),
        "horizon": spec.get("horizon"),
        "n_action_steps": spec.get("n_action_steps"),
        "sampler": spec.get("sampler"),
        "task": (spec.get("task") or {}).get("name"),
        **ros,
    }


def _raw_spec(root: Path, error: Exception) -> dict[str, Any]:
    """``policy.json`` without verification (to show what a failing bundle declares)."""
    from robot_learning.features import FeatureSpec
    from robot_learning.runtime.bundle import BUNDLE_FILE

    try:
        spec = json.loads((root / BUNDLE_FILE).read_text())
        spec["features"] = FeatureSpec.from_dict(spec["features"])
        spec["input_keys"] = list(spec["input_keys"])
    except (OSError, ValueError, KeyError, TypeError):
        raise error from None  # nothing readable to show: the load error says what is wrong
    return spec


def _ros_interface(spec: dict[str, Any]) -> dict[str, Any]:
    """Topics, messages, joint names, bounds, QoS, diagnostics and services of the policy node."""
    try:
        from ros_nodes import topics as t
    except ImportError as exc:
        raise ConfigError(
            f"bundle info reads the ROS 2 interface from ros_nodes, which needs the ROS 2 message "
            f"packages: pip install -e '.[ros]' ({exc})"
        ) from exc
    from robot_learning.features import ACTION
    from ros_nodes.control import Counters
    from ros_nodes.conversions import IMAGE_ENCODINGS, element_names

    features = spec["features"]
    inputs = []
    for binding in t.TopicMap.build(features, spec["input_keys"]).bindings.values():
        feature = features[binding.key]
        if binding.kind == t.IMAGE:
            inputs.append({
                "key": binding.key, "topic": binding.topic, "message": "sensor_msgs/Image",
                "field": f"data, encoding one of {', '.join(sorted(IMAGE_ENCODINGS))}",
                "shape": list(feature.shape),
            })  # fmt: skip
            continue
        inputs.append({
            "key": binding.key, "topic": binding.topic, "message": "sensor_msgs/JointState",
            "field": f"{t.JOINT_STATE_FIELD} (read by joint name; order free, extra names ignored)",
            "names": list(binding.names), **_bounds(feature),
        })  # fmt: skip
    action = features[ACTION]
    return {
        "inputs": inputs,
        "command": {
            "topic": t.COMMAND_TOPIC,
            "message": "trajectory_msgs/JointTrajectory",
            "field": "points[0].positions = the action to execute now; points[k] at "
            "time_from_start = k / control_rate_hz (the rest of the chunk); clipped to the bounds",
            "names": list(element_names(ACTION, action)),
            **_bounds(action),
        },
        "qos": {
            "observations": t.OBSERVATION_QOS.to_dict(),
            "command": t.COMMAND_QOS.to_dict(),
            "diagnostics": t.COMMAND_QOS.to_dict(),
        },
        "diagnostics": {
            "topic": t.DIAGNOSTICS_TOPIC,
            "message": "diagnostic_msgs/DiagnosticArray",
            "status_name": t.DIAGNOSTICS_NAME,
            "hardware_id": spec.get("policy"),
            "levels": dict(t.DIAGNOSTICS_LEVELS),
            "values": [*t.DIAGNOSTICS_VALUES, *(f.name for f in fields(Counters))],
        },
        "services": {
            t.ESTOP_SERVICE: "std_srvs/Trigger: latch, nothing published until reset",
            t.RESET_SERVICE: "std_srvs/Trigger: clear latch, history and queued actions",
        },
    }


def _bounds(feature: Any) -> dict[str, list[float] | None]:
    """Per-element ``low``/``high`` (None when the feature is unbounded)."""
    size = int(np.prod(feature.shape))
    out = {}
    for side in ("low", "high"):
        value = getattr(feature, side)
        out[side] = (
            None
            if value is None
            else np.broadcast_to(np.asarray(value, float).ravel(), size).tolist()
        )
    return out


def print_info(info: dict[str, Any], console: Console) -> None:
    """The human-readable form of :func:`bundle_info`."""
    out = lambda text="": console.print(text, markup=False, highlight=False)  # noqa: E731
    status = "OK" if info["verified"] else "FAILED"
    out(f"bundle {info['bundle']}: {info['format']}, policy {info['policy']}, task {info['task']}")
    out(f"verification: {status}: {info['verification']}")
    for name, meta in info["files"].items():
        out(f"  {name}: {meta['bytes']} bytes, sha256 {str(meta['sha256'])[:16]}...")
    sampler = info["sampler"] or {}
    out(
        f"control rate {info['control_rate_hz']} Hz; n_obs_steps {info['n_obs_steps']}, horizon "
        f"{info['horizon']}, n_action_steps {info['n_action_steps']}; sampler "
        f"{sampler.get('name')} ({sampler.get('steps')} steps)"
    )
    out("inputs (policy_node subscribes):")
    for item in info["inputs"]:
        out(f"  {item['key']} <- {item['topic']} ({item['message']}, {item['field']})")
        if "names" in item:
            out(_elements(item))
        else:
            out(f"    image {item['shape']} (height, width, channels)")
    cmd = info["command"]
    out(f"command (policy_node publishes): {cmd['topic']} ({cmd['message']}): {cmd['field']}")
    out(_elements(cmd))
    for what, qos in info["qos"].items():
        out(f"QoS {what}: " + ", ".join(f"{k}={v}" for k, v in qos.items()))
    diag = info["diagnostics"]
    out(
        f"diagnostics: {diag['topic']} ({diag['message']}), status name {diag['status_name']!r}, "
        f"hardware_id {diag['hardware_id']!r}; levels: "
        + "; ".join(f"{k} = {v}" for k, v in diag["levels"].items())
    )
    out("  values: " + ", ".join(diag["values"]))
    for name, what in info["services"].items():
        out(f"service {name}: {what}")


def _elements(item: dict[str, Any]) -> str:
    low, high = item.get("low"), item.get("high")
    parts = []
    for i, name in enumerate(item["names"]):
        bound = "" if low is None else f" [{low[i]:g}, {high[i]:g}]"
        parts.append(f"{name}{bound}")
    return "    " + ", ".join(parts) + (" (no bounds declared)" if low is None else "")
