"""Scripted experts, one per task, reading env.unwrapped.task_state() (backend-agnostic)."""

import sim.experts.arm  # noqa: F401  (registers the reach, lift, peg_insert experts)
from sim.experts import pusht  # noqa: F401  (registers the expert)
