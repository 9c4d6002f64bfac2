"""``algo=hil_serl`` in the RL registry: RLPD's update, run as a learner with actors (:mod:`.local`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robot_learning.hil.config import HilSerlConfig
from robot_learning.rl.algos import register_algo
from robot_learning.rl.algos.rlpd import RLPD


@register_algo("hil_serl")
class HilSerl(RLPD):
    """RLPD whose data comes from actors with a human (or ``device=expert``) in the loop."""

    Config = HilSerlConfig

    @staticmethod
    def run_finetune(cfg: Any, progress: bool, on_eval: Callable[[int, dict], None]) -> Any:
        """``finetune algo=hil_serl``: one learner here and ``algo.num_actors`` actor processes."""
        from robot_learning.hil.local import run_local

        return run_local(cfg, progress=progress, on_eval=on_eval)
