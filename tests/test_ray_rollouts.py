"""Ray rollout workers: the checks of ``tests/ray_rollouts_checks.py``, run in a fresh interpreter.

In the full suite (one pytest process, ~900 tests before these) Ray 2.60's local node once
failed to start its raylet (its 30 s start-up timeout, no raylet log written), while the same
checks pass in a fresh process every time; the cause was not found. Running the module in its
own process keeps every check: any failing one fails this test with its report. Only when Ray's
node cannot start at all (that error, and not one check passed) is the test skipped, naming it.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = Path(__file__).with_name("ray_rollouts_checks.py")
#: Ray's own error when its raylet does not come up: an environment problem, reported as a skip
RAY_NODE_FAILED = "The current node timed out during startup"


def test_ray_rollout_checks_pass_in_a_fresh_process():
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CHECKS)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0 and RAY_NODE_FAILED in done.stdout and " passed" not in done.stdout:
        pytest.skip(f"Ray's local node did not start on this machine ({RAY_NODE_FAILED!r})")
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
