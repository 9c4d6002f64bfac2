#!/usr/bin/env python3
"""Key-press-to-action latency of ``device=keyboard`` through a real pseudo-terminal (issue 14).

A key byte is written to the master side of a pty at time t0; the control side polls
``device.read()`` at ``--poll-hz`` on the slave side (``device.tty``) and records the time to the
first ``read()`` whose action carries the motion, then lets the key's hold time expire before
the next press. Same clock on both sides. A control loop reading once per tick adds up to one
period (1/fps) to these numbers.

Usage::

    MUJOCO_GL=osmesa .venv/bin/python scripts/bench_teleop_keyboard.py --presses 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware.teleop.base import TeleopContext, make_device  # noqa: E402
from robot_learning.envs import make_env  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--poll-hz", type=float, default=1000.0)
    parser.add_argument("--hold-s", type=float, default=0.05)
    args = parser.parse_args()
    env = make_env("lift")
    obs, _ = env.reset(seed=0)
    master, slave = os.openpty()
    options = {"tty": os.ttyname(slave), "hold_s": args.hold_s}
    device = make_device("keyboard", TeleopContext(env.features, env.fps, env, options))
    device.connect()
    latencies = []
    try:
        for _ in range(args.presses):
            t0 = time.perf_counter()
            os.write(master, b"w")
            while True:
                action = device.read(obs, None).action
                if action is not None and action[0] > 0:
                    latencies.append(1000 * (time.perf_counter() - t0))
                    break
                if time.perf_counter() - t0 > 1.0:
                    raise RuntimeError("a key press never reached read()")
                time.sleep(1 / args.poll_hz)
            time.sleep(args.hold_s + 0.02)  # the motion expires before the next press
            device.read(obs, None)
    finally:
        device.disconnect()
        os.close(master)
        os.close(slave)
        env.close()
    ms = np.asarray(latencies)
    report = {
        "device": "keyboard",
        "presses": len(ms),
        "poll_hz": args.poll_hz,
        "latency_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "latency_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "latency_ms_max": round(float(ms.max()), 3),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
