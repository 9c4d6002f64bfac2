"""``python -m robot_learning.hil.actor_main SPEC.json``: one actor process of a local HIL run.

The spec file (written by :mod:`.local`) holds the task, ``algo.*``, the transport settings
without the token (it comes from ``ROBOT_LEARNING_HIL_TOKEN``), the actor id, seed and output
folder. JSON on disk, never pickle, is how the launcher talks to its children.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from robot_learning.compat import guard_triton
from robot_learning.config import build
from robot_learning.envs import TaskConfig
from robot_learning.hil.actor import run_actor
from robot_learning.hil.config import HilSerlConfig, TransportConfig


def main(argv: list[str]) -> int:
    """Run the actor described by ``argv[0]``; exit code 0 when the learner ended the run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    guard_triton()
    spec = json.loads(Path(argv[0]).read_text())
    stats = run_actor(
        TaskConfig.from_dict(spec["task"]),
        build(HilSerlConfig, spec["algo"], where="hil_serl", prefix="algo."),
        build(TransportConfig, spec["transport"], where="hil", prefix="transport."),
        actor_id=spec["actor_id"],
        seed=int(spec["seed"]),
        out=spec.get("out"),
        max_episodes=spec.get("max_episodes"),
        threads=spec.get("threads", 1),
    )
    logging.getLogger(__name__).info("actor %s done: %s", stats.actor_id, stats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
