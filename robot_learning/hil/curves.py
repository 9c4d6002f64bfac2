"""HIL learning curves: the RL curves plus intervention rate, against env steps and wall clock.

``learning_curve.png`` is the RL loop's (returns and success vs environment steps);
``hil_curve.png`` adds the operator's share of each actor episode (intervention rate, running
mean over 20 episodes) vs environment steps, and training/evaluation success vs wall-clock
minutes. Both histories are part of the learner checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.rl.collector import EpisodeStats
from robot_learning.rl.curves import LearningCurves


def running_mean(values: np.ndarray, window: int = 20) -> np.ndarray:
    """Mean of the last ``window`` values at every index."""
    return np.array([values[max(0, i - window + 1) : i + 1].mean() for i in range(len(values))])


class HilCurves(LearningCurves):
    """:class:`LearningCurves` plus per-episode intervention rates and wall-clock times."""

    def __init__(self, writer: Any | None = None) -> None:
        super().__init__(writer)
        self.hil: list[tuple[int, float, float, bool]] = []
        """(env step, wall seconds, intervention rate, success) per finished actor episode."""
        self.eval_wall: list[tuple[int, float, float]] = []
        """(env step, wall seconds, success rate) per evaluation."""

    def actor_episode(self, step: int, wall_s: float, ep: dict[str, Any]) -> None:
        """A finished actor episode (a dict as :mod:`robot_learning.hil.service` decodes it)."""
        self.episode(step, EpisodeStats(-1, ep["return"], ep["length"], ep["success"]))
        rate = ep["intervention_steps"] / max(1, ep["length"])
        self.hil.append((step, wall_s, rate, ep["success"]))
        if self.writer is not None:
            self.writer.add_scalar("train/intervention_rate", rate, step)
            self.writer.add_scalar("train/interventions", ep["interventions"], step)

    def timed_evaluation(self, step: int, wall_s: float, episodes: list[EpisodeStats]) -> dict:
        """:meth:`evaluation` that also records the wall clock."""
        summary = self.evaluation(step, episodes)
        self.eval_wall.append((step, wall_s, summary["success_rate"]))
        return summary

    def state_dict(self) -> dict[str, Any]:
        """RL history plus the HIL lists."""
        return {
            **super().state_dict(),
            "hil": [list(h) for h in self.hil],
            "eval_wall": [list(e) for e in self.eval_wall],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        super().load_state_dict(state)
        self.hil = [(int(s), float(w), float(r), bool(ok)) for s, w, r, ok in state["hil"]]
        self.eval_wall = [(int(s), float(w), float(ok)) for s, w, ok in state["eval_wall"]]

    def plot_hil(self, path: str | Path, title: str = "") -> Path:
        """Draw ``hil_curve.png``: intervention rate vs steps, success vs wall clock."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        hil = np.array(self.hil, float).reshape(-1, 4)
        evals = np.array(self.eval_wall, float).reshape(-1, 3)
        fig = Figure(figsize=(11, 4), dpi=100, layout="constrained")
        rate_ax, wall_ax = fig.subplots(1, 2)
        rate_ax.plot(hil[:, 0], running_mean(hil[:, 2]), color="#7a4fb0")
        rate_ax.set_xlabel("environment steps")
        rate_ax.set_ylabel("intervention rate (running mean of 20 episodes)")
        rate_ax.set_ylim(-0.02, 1.02)
        wall_ax.plot(hil[:, 1] / 60, running_mean(hil[:, 3]), color="#96aadc", label="training")
        wall_ax.plot(evals[:, 1] / 60, evals[:, 2], "o-", color="#c82828", ms=4, label="evaluation")
        wall_ax.set_xlabel("wall clock (minutes)")
        wall_ax.set_ylabel("success rate")
        wall_ax.set_ylim(-0.02, 1.02)
        wall_ax.legend(loc="best", fontsize="small")
        for ax in (rate_ax, wall_ax):
            ax.grid(alpha=0.3)
        fig.suptitle(title)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format="png")
        tmp.replace(path)
        return path
