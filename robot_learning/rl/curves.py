"""Learning curves: success rate and return versus environment steps, to TensorBoard and a PNG.

The PNG (matplotlib) has two panels: returns (training episodes as dots, evaluations as a
line) and success rates (training as a running mean over 20 episodes, evaluations as a line).
The history is part of the learner state, so a resumed run's plot covers the whole run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.rl.collector import EpisodeStats

_TRAIN, _EVAL = "#96aadc", "#c82828"


class LearningCurves:
    """Records episodes and evaluations; writes TensorBoard scalars and ``learning_curve.png``."""

    def __init__(self, writer: Any | None = None) -> None:
        self.writer = writer
        self.train: list[tuple[int, float, bool]] = []
        """(env step, return, success) per finished training episode."""
        self.evals: list[tuple[int, float, float]] = []
        """(env step, mean return, success rate) per evaluation."""

    def episode(self, step: int, ep: EpisodeStats) -> None:
        """A finished training episode at ``step`` environment steps."""
        self.train.append((step, ep.ret, ep.success))
        if self.writer is not None:
            self.writer.add_scalar("train/episode_return", ep.ret, step)
            self.writer.add_scalar("train/episode_success", float(ep.success), step)
            self.writer.add_scalar("train/episode_length", ep.length, step)

    def evaluation(self, step: int, episodes: list[EpisodeStats]) -> dict[str, float]:
        """Record an evaluation; returns its summary (``return``, ``success_rate``, ``length``)."""
        summary = {
            "return": float(np.mean([e.ret for e in episodes])),
            "success_rate": float(np.mean([e.success for e in episodes])),
            "length": float(np.mean([e.length for e in episodes])),
        }
        self.evals.append((step, summary["return"], summary["success_rate"]))
        if self.writer is not None:
            for key, value in summary.items():
                self.writer.add_scalar(f"eval/{key}", value, step)
        return summary

    def scalars(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        """Arbitrary scalars (losses, temperature, throughput) at ``step``."""
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def state_dict(self) -> dict[str, Any]:
        """The recorded history (JSON-friendly lists)."""
        return {"train": [list(t) for t in self.train], "evals": [list(e) for e in self.evals]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.train = [(int(s), float(r), bool(ok)) for s, r, ok in state["train"]]
        self.evals = [(int(s), float(r), float(ok)) for s, r, ok in state["evals"]]

    def plot(self, path: str | Path, title: str = "") -> Path:
        """Draw the two panels into ``path`` (PNG, written atomically)."""
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        from matplotlib.figure import Figure

        train = np.array(self.train, float).reshape(-1, 3)
        evals = np.array(self.evals, float).reshape(-1, 3)
        success = train[:, 2]
        running = np.array([success[max(0, i - 19) : i + 1].mean() for i in range(len(success))])
        fig = Figure(figsize=(11, 4), dpi=100, layout="constrained")
        ret, rate = fig.subplots(1, 2)
        ret.scatter(train[:, 0], train[:, 1], s=4, color=_TRAIN, label="training episodes")
        ret.plot(evals[:, 0], evals[:, 1], "o-", color=_EVAL, ms=4, label="evaluation (mean)")
        ret.set_ylabel("episode return")
        rate.plot(train[:, 0], running, color=_TRAIN, label="training (running mean of 20)")
        rate.plot(evals[:, 0], evals[:, 2], "o-", color=_EVAL, ms=4, label="evaluation")
        rate.set_ylabel("success rate")
        rate.set_ylim(-0.02, 1.02)
        for ax in (ret, rate):
            ax.set_xlabel("environment steps")
            ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
            ax.grid(alpha=0.3)
            ax.legend(loc="best", fontsize="small")
        fig.suptitle(title)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format="png")
        tmp.replace(path)
        return path
