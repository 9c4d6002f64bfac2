"""Training-loop scaffolding: the rich progress bar and graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)


class TrainProgress:
    """``train ━━━━ 1200/20000 loss 0.0312 41.3 steps/s 0:00:29 0:07:35`` (disabled -> no output)."""

    def __init__(self, total: int, start: int, enabled: bool = True, label: str = "train") -> None:
        self._bar = Progress(
            TextColumn(f"[bold]{label}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} steps/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self._task = self._bar.add_task("train", total=total, completed=start, loss="-", rate="-")
        self._t0, self._start = time.monotonic(), start
        self._smoothed: float | None = None
        self.steps_per_s = 0.0

    def __enter__(self) -> TrainProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def note(self, message: str) -> None:
        """Print a line above the bar (nothing when the bar is disabled)."""
        if not self._bar.disable:
            self._bar.console.print(message, markup=False, highlight=False)

    def update(self, step: int, loss: float) -> None:
        """Record a finished step and its loss (shown as an exponential moving average)."""
        self._smoothed = loss if self._smoothed is None else 0.95 * self._smoothed + 0.05 * loss
        self.steps_per_s = (step - self._start) / max(time.monotonic() - self._t0, 1e-9)
        self._bar.update(
            self._task, completed=step, loss=f"{self._smoothed:.4f}", rate=f"{self.steps_per_s:.1f}"
        )


class GracefulStop:
    """Context manager: the first SIGINT/SIGTERM sets :attr:`requested` so the loop can finish its
    step and checkpoint; a second SIGINT raises ``KeyboardInterrupt`` at once. Outside the main
    thread (where handlers cannot be installed) it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "%s received: stopping after this step (Ctrl-C again to abort without saving)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


def ignore_sigint(_worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: Ctrl-C is the training process's business, not the workers'."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class RunEstimate:
    """Once the rate is measured, say how long the whole run will take (and, on a CPU, where the
    CPU-sized settings are when it is long).

    The first step is excluded (allocation, lazy imports); the estimate is made after
    ``probe_steps`` further steps or ``probe_s`` seconds, whichever comes first.
    """

    #: runs longer than this on a CPU get the pointer to the CPU recipe
    LONG_S = 30 * 60

    def __init__(
        self, total: int, start: int, device: str, probe_steps: int = 10, probe_s: float = 20.0
    ):
        self.total, self.start, self.device = total, start, device
        self.probe_steps, self.probe_s = probe_steps, probe_s
        self._t1: float | None = None
        self.message: str | None = None

    def check(self, step: int) -> str | None:
        """Call after every step; returns the message once, when it is ready."""
        if self.message is not None:
            return None
        now = time.monotonic()
        if self._t1 is None:
            self._t1, self._s1 = now, step
            return None
        done, spent = step - self._s1, now - self._t1
        if done < self.probe_steps and spent < self.probe_s:
            return None
        rate = done / max(spent, 1e-9)
        left = (self.total - step) / max(rate, 1e-9)
        self.message = f"{rate:.2f} steps/s on {self.device}: {self.total - step} more steps take about {_duration(left)}"
        if self.device.startswith("cpu") and left > self.LONG_S:
            self.message += (
                "; these settings are sized for a GPU: for a CPU-sized run pass recipe=cpu or see "
                "the CPU recipe in BENCHMARKS.md (smaller policy.down_dims, fewer steps)"
            )
        return self.message


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def summary_writer(out: Path, step: int) -> Any:
    """The run's TensorBoard writer (``out/tb``), resuming at ``step``."""
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops events a killed run logged after its last checkpoint
    return SummaryWriter(str(out / "tb"), purge_step=step if step else None)


def log_scalars(
    writer: Any,
    step: int,
    losses: list[float],
    metrics: dict[str, float],
    lr: float,
    grad_norm: float,
    steps_per_s: float,
) -> None:
    """Log one window of training scalars to TensorBoard and the log."""
    writer.add_scalar("train/loss", float(np.mean(losses)), step)
    writer.add_scalar("train/lr", lr, step)
    writer.add_scalar("train/grad_norm", grad_norm, step)
    writer.add_scalar("train/steps_per_s", steps_per_s, step)
    for name, value in (metrics or {}).items():  # the policy's own metrics of the last step
        writer.add_scalar(f"policy/{name}", float(value), step)
    log.info(
        "step %d loss %.5f lr %.2e grad_norm %.3f", step, float(np.mean(losses)), lr, grad_norm
    )
