"""``python tests/toy_cli.py <command> ...``: the robot-learning CLI with the test-only ``toy_mlp``
policy registered (for runs in separate processes, e.g. under torchrun)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import toy_policy  # noqa: E402

from robot_learning.cli import main  # noqa: E402

if __name__ == "__main__":
    with toy_policy.registered_one_thread():
        sys.exit(main(sys.argv[1:]))
