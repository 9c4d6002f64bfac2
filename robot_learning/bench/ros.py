"""``robot-learning bench ros``: observation->command latency of exported policies over DDS on loopback.

Each case is a randomly initialised zoo policy exported to a bundle by the helpers of
:mod:`robot_learning.bench.inference` (latency does not depend on the weights), then deployed
with :func:`ros_nodes.deploy.run_deploy` against ``sim_robot_node`` running free (``lockstep``
off: the robot steps at ``control_rate_hz`` whether or not a command arrived, as a real robot
does) for ``steps`` control steps. Latency is measured by the robot: command receipt minus the
stamp of the observation the command answers (both nodes are separate processes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robot_learning.bench.inference import _machine, check_case, ensure_bundle, synthetic_model
from robot_learning.collect import write_json
from robot_learning.envs import TaskConfig


def _default_cases() -> list[dict[str, Any]]:
    return [
        {
            "policy": "meanflow",
            "task": "lift",
            "obs": "state",
            "steps": [1],
            "overrides": {"down_dims": [64, 128, 256]},
        },
        {
            "policy": "meanflow",
            "task": "lift",
            "obs": "pixels",
            "cameras": ["front"],
            "image_size": 96,
            "steps": [1],
            "overrides": {"down_dims": [64, 128, 256], "vision_backbone": "resnet18"},
        },
    ]


@dataclass
class RosBenchConfig:
    """Settings of ``bench ros`` (``configs/bench_ros.yaml``)."""

    cases: list[dict[str, Any]] = field(default_factory=_default_cases)
    """Synthetic models, with the keys of ``bench inference`` cases (one sampler step count each)."""
    control_rate_hz: float = 20.0
    """Rate of the policy node and of the free-running robot."""
    steps: int = 1000
    """Control steps per case (episodes of ``episode_steps`` until at least this many)."""
    episode_steps: int = 200
    """Episode length limit of the simulated task."""
    runtime: str = "onnxruntime"
    """Runtime of the policy node."""
    inference: list[str] = field(default_factory=lambda: ["sync", "async"])
    """Policy-node inference modes to measure, each case in each (side by side in one run)."""
    threads: int = 1
    """CPU threads of the runtime."""
    seed: int = 0
    """Seed of the synthetic weights."""
    out: str = "runs/bench_ros"
    """Output folder: ``checkpoints/``, ``bundles/``, one deploy folder per case, ``bench.json``."""

    def __post_init__(self) -> None:
        if (
            self.steps < 1
            or self.episode_steps < 1
            or self.control_rate_hz <= 0
            or self.threads < 1
        ):
            raise ValueError(
                "need steps >= 1, episode_steps >= 1, control_rate_hz > 0 and threads >= 1"
            )
        self.inference = list(self.inference)
        bad = [m for m in self.inference if m not in ("sync", "async")]
        if bad or not self.inference:
            raise ValueError(f"inference={self.inference} must be a non-empty list of sync, async")
        self.cases = [check_case(case, i) for i, case in enumerate(self.cases)]
        if not self.cases:
            raise ValueError("bench ros needs at least one case")


def run_ros_bench(cfg: RosBenchConfig, report=None) -> dict[str, Any]:
    """Export every case, deploy it over ROS 2 and collect the latency rows (the bench.json payload)."""
    out = Path(cfg.out)
    rows = []
    for case in cfg.cases:
        model = synthetic_model(case, out / "checkpoints", cfg.seed)
        bundle, record = ensure_bundle(model, model.steps[0], out / "bundles")
        task = TaskConfig(
            name=model.task,
            obs=model.obs,
            cameras=tuple(model.cameras) or None,
            image_size=case["image_size"],
            max_episode_steps=cfg.episode_steps,
        )
        for mode in cfg.inference:
            row = _deploy_case(cfg, model, case, bundle, task, mode)
            row["bundle"] = record["bundle"]
            rows.append(row)
            if report is not None:
                report(row)
    return {
        "benchmark": "ros",
        "machine": _machine(cfg.threads),
        "config": asdict(cfg),
        "results": rows,
    }


def _deploy_case(cfg: RosBenchConfig, model, case, bundle: Path, task: TaskConfig, mode: str):
    """One case deployed in one inference mode -> its bench.json row."""
    from ros_nodes.deploy import DeployConfig, run_deploy

    deploy = DeployConfig(
        bundle=str(bundle),
        task=task,
        out=str(Path(cfg.out) / "deploy" / f"{model.name}_{mode}"),
        episodes=math.ceil(cfg.steps / cfg.episode_steps),
        runtime=cfg.runtime,
        inference=mode,
        threads=cfg.threads,
        control_rate_hz=cfg.control_rate_hz,
        lockstep=False,
        allow_rate_mismatch=True,  # a latency benchmark: any rate, the episodes do not matter
    )
    result = run_deploy(deploy)
    write_json(Path(deploy.out) / "deploy.json", result)
    node = result["policy_node"]
    return {
        "case": model.name,
        "inference": mode,
        "policy": model.policy,
        "obs": model.obs,
        "cameras": model.cameras,
        "sampler_steps": model.steps[0],
        "runtime": cfg.runtime,
        "threads": cfg.threads,
        "target_hz": cfg.control_rate_hz,
        "steps": result["steps"],
        "latency_ms_p50": result["latency_ms_p50"],
        "latency_ms_p99": result["latency_ms_p99"],
        "latency_ms_max": result["latency_ms_max"],
        "latency_samples": result["latency_samples"],
        "control_rate_hz": result["control_rate_hz"],
        "missed_deadlines": result["missed_deadlines"],
        "inference_ms_p99": node.get("inference_ms_p99"),
        "inference_stalls": node.get("inference_stalls", 0),
        "stale_holds": node.get("stale_holds"),
    }
