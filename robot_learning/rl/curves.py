"""Learning curves: success rate and return versus environment steps, to TensorBoard and a PNG.

The PNG is drawn with Pillow (matplotlib is not a dependency): the left panel shows returns
(training episodes as dots, evaluations as a line), the right one success rates (training as a
running mean over 20 episodes, evaluations as a line). The history is part of the learner
state, so a resumed run's plot covers the whole run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.rl.collector import EpisodeStats

_W, _H, _PAD = 520, 360, 48
_TRAIN, _EVAL = (150, 170, 220), (200, 40, 40)


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
        """Draw the two panels into ``path`` (PNG)."""
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (2 * _W, _H + 24), "white")
        draw = ImageDraw.Draw(img)
        draw.text((8, 4), title, fill="black")
        train = np.array([(s, r, ok) for s, r, ok in self.train], float).reshape(-1, 3)
        evals = np.array(self.evals, float).reshape(-1, 3)
        success = train[:, 2]
        running = np.array([success[max(0, i - 19) : i + 1].mean() for i in range(len(success))])
        panels = [
            ("return", train[:, :2], evals[:, [0, 1]]),
            ("success rate", np.stack([train[:, 0], running], 1), evals[:, [0, 2]]),
        ]
        steps = np.concatenate([train[:, 0], evals[:, 0], [1.0]])
        for i, (name, tr, ev) in enumerate(panels):
            values = np.concatenate([tr[:, 1], ev[:, 1]])
            lo, hi = (
                (0.0, 1.0)
                if name == "success rate"
                else (float(values.min(initial=0)), float(values.max(initial=1)))
            )
            _panel(
                draw,
                i * _W,
                24,
                name,
                tr,
                ev,
                (0.0, float(steps.max())),
                (lo, hi if hi > lo else lo + 1),
            )
        path = Path(path)
        img.save(path)
        return path


def _panel(
    draw: Any,
    x0: int,
    y0: int,
    name: str,
    train: np.ndarray,
    evals: np.ndarray,
    xr: tuple[float, float],
    yr: tuple[float, float],
) -> None:
    left, top, right, bottom = x0 + _PAD, y0 + 12, x0 + _W - 16, y0 + _H - _PAD

    def xy(x: float, y: float) -> tuple[float, float]:
        px = left + (x - xr[0]) / (xr[1] - xr[0]) * (right - left)
        py = bottom - (y - yr[0]) / (yr[1] - yr[0]) * (bottom - top)
        return px, py

    draw.rectangle([left, top, right, bottom], outline="black")
    draw.text((left, bottom + 20), f"environment steps (0 .. {int(xr[1])})", fill="black")
    draw.text((x0 + 4, top - 12), name, fill="black")
    for frac in (0.0, 0.5, 1.0):
        y = yr[0] + frac * (yr[1] - yr[0])
        draw.text((x0 + 2, xy(0, y)[1] - 6), f"{y:.3g}", fill="black")
    for x, y in train:
        px, py = xy(x, y)
        draw.ellipse([px - 1.5, py - 1.5, px + 1.5, py + 1.5], fill=_TRAIN)
    if len(evals):
        points = [xy(x, y) for x, y in evals]
        if len(points) > 1:
            draw.line(points, fill=_EVAL, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=_EVAL)
    draw.text((right - 150, top + 4), "dots: train, line: eval", fill="black")
