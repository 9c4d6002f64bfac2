"""The ``deploy.json`` payload: episode summaries and the policy node's counters in numbers."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robot_learning.evaluation import wilson_interval

if TYPE_CHECKING:
    from ros_nodes.deploy import DeployConfig


def stalled_episode(index: int, seed: int, timeout_s: float) -> dict[str, Any]:
    """The summary recorded for a stalled episode: a failure with no steps counted."""
    return {
        "episode": index,
        "seed": seed,
        "success": False,
        "length": 0,
        "max_reward": None,
        "duration_s": 0.0,
        "latencies_ms": [],
        "stalled": True,
        "timeout_s": timeout_s,
    }


def deploy_report(
    cfg: DeployConfig,
    episodes: list[dict],
    counters: list[dict],
    rate: float,
    domain: int,
    seconds: float,
    spec: dict,
) -> dict[str, Any]:
    """The deploy.json payload from the episode summaries and the policy node's counters."""
    latencies = (
        np.concatenate([np.asarray(e["latencies_ms"], float) for e in episodes])
        if episodes
        else np.zeros(0)
    )
    steps = int(sum(e["length"] for e in episodes))
    duration = float(sum(e["duration_s"] for e in episodes))
    successes = [bool(e["success"]) for e in episodes]
    rewards = [e["max_reward"] for e in episodes if e["max_reward"] is not None]
    final = counters[-1] if counters else {}
    per_episode = []
    for i, e in enumerate(episodes):
        lat = np.asarray(e["latencies_ms"], float)
        missed = (
            counters[i + 1]["missed_deadlines"] - counters[i]["missed_deadlines"]
            if i + 1 < len(counters)
            else None
        )
        per_episode.append(
            {
                "seed": e["seed"],
                "success": e["success"],
                "length": e["length"],
                "max_reward": e["max_reward"],
                "duration_s": e["duration_s"],
                "control_rate_hz": round(e["length"] / e["duration_s"], 2)
                if e["duration_s"]
                else 0.0,
                "latency_ms_p50": _percentile(lat, 50),
                "latency_ms_p99": _percentile(lat, 99),
                "missed_deadlines": missed,
                "instruction": e.get("instruction", ""),
            }
        )
    return {
        "episodes": len(episodes),
        "success_rate": float(np.mean(successes)) if successes else 0.0,
        "success_ci95": list(wilson_interval(int(sum(successes)), len(successes))),
        "latency_ms_p50": _percentile(latencies, 50),
        "latency_ms_p99": _percentile(latencies, 99),
        "control_rate_hz": round(steps / duration, 3) if duration else 0.0,
        "missed_deadlines": int(final.get("missed_deadlines", 0)),
        "latency_ms_max": round(float(latencies.max()), 3) if latencies.size else None,
        "latency_samples": int(latencies.size),
        "steps": steps,
        "target_control_rate_hz": rate,
        "mean_episode_length": float(np.mean([e["length"] for e in episodes])) if episodes else 0.0,
        "mean_max_reward": float(np.mean(rewards)) if rewards else 0.0,
        "stalled_episodes": [i for i, e in enumerate(episodes) if e.get("stalled")],
        "seeds": [e["seed"] for e in episodes],
        "successes": successes,
        "episode_lengths": [e["length"] for e in episodes],
        "max_rewards": [e["max_reward"] for e in episodes],
        "per_episode": per_episode,
        "policy_node": final,
        "policy": spec["policy"],
        "inference": cfg.inference,
        "bundle": str(Path(cfg.bundle).resolve()),
        "domain_id": domain,
        "seconds": round(seconds, 3),
        "config": {**asdict(cfg), "task": asdict(cfg.task)},
    }


def intervention_report(mux: list[dict], episodes: int) -> dict[str, Any]:
    """``interventions``, ``intervention_frames`` and per-episode counts from the mux's counters
    (read at every episode start and at the end; all 0 without a teleop device)."""
    per_episode = [
        {k: mux[i + 1][k] - mux[i][k] for k in mux[i]} for i in range(min(episodes, len(mux) - 1))
    ]
    final = mux[-1] if mux else {}
    return {
        "interventions": int(final.get("interventions", 0)),
        "intervention_frames": int(final.get("teleop_commands", 0)),
        "interventions_per_episode": [e["interventions"] for e in per_episode],
        "intervention_frames_per_episode": [e["teleop_commands"] for e in per_episode],
        "intervention_mux": final,
    }


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values.size else None
