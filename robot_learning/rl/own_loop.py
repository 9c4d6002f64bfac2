"""Algorithms that bring their own training loop to ``robot-learning finetune``.

Most algorithms plug into the per-step off-policy loop (:mod:`robot_learning.rl.loop`, registry
``ALGOS``). Chunk-level methods such as PA-RL on a VLA iterate differently (collect chunks ->
critic -> improve + distil), so they register a whole run function here instead:
``f(settings, task, algo) -> exit code``, with ``settings`` the finetune command's resolved
top-level settings (``out``, ``demos``, ``eval_episodes``, ``seed``, ...) and ``algo`` the
``algo.<field>`` values. The function's ``config_class`` attribute (a dataclass) is what
``finetune --help algo=<name>`` documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robot_learning.envs import TaskConfig
from robot_learning.registry import Registry

LoopAlgo = Callable[[dict[str, Any], TaskConfig, dict[str, Any]], int]

LOOP_ALGOS: Registry[LoopAlgo] = Registry(
    "algorithm with its own loop", discover=("policies.vla.pa_rl_run",)
)
