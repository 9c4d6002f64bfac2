#!/usr/bin/env python3
"""Input-to-published-command latency of ``teleop_node`` (keyboard, browser) over ROS 2 (issue 14).

Starts ``sim_robot_node`` (free-running: ``lockstep:=false`` at the task's rate, 10 Hz for
``lift``, following the operator's commands on ``/teleop/command``) and ``teleop_node
device:=keyboard`` reading a pseudo-terminal that this process holds open (``tty=/dev/pts/N``),
as separate processes on a random ROS domain. No policy runs: ``teleop_node`` waits
``policy_wait_s`` for a ``/policy/command`` that never comes, then reads the keyboard
(``--no-policy-topic``: it subscribes to no policy and reads at once). Intervene is toggled on
once (``i``), so every observation is answered with the operator's action.

This process subscribes to ``/teleop/command`` (rclpy). Per press: wait until a command without
motion arrives (the previous press expired, ``hold_s``), wait a random fraction of a control
period (so the press's phase relative to the ticks is uniform), write the key byte to the pty
master at t0 and record t0 -> arrival of the first command whose action carries the key's motion
(``w`` +x and ``s`` -x alternate, so the arm stays put). With the observation's stamp (the robot's
clock when it published the observation, same machine clock) the latency splits into the wait for
the next tick (t0 -> observation) and the ROS path (observation -> teleop_node reads the device
and publishes -> received here).

``--device browser``: ``teleop_node device:=browser`` serves its page on a free local port and a
headless Chromium (selenium + the system chromedriver, as in ``bench_teleop_latency.py``) opens it,
holds the intervene button and presses / releases ``w`` or ``s`` (key down ... key up); t0 is the
page's own timestamp of the first input message carrying the motion
(``performance.timeOrigin + performance.now()``, read by wrapping the page's ``WebSocket.send``),
so the latency is browser input -> command received here, on the same machine clock.

Usage::

    MUJOCO_GL=osmesa .venv/bin/python scripts/bench_teleop_ros.py --presses 100 [--device browser]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import sys
import tempfile
import time
import tty
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from ros_nodes.conversions import stamp_to_ns  # noqa: E402
from ros_nodes.processes import NodeProcess, ros_environment, stop_all  # noqa: E402
from ros_nodes.topics import TELEOP_COMMAND_TOPIC  # noqa: E402

#: key -> sign of action[0] (dx) it produces
KEYS = {"w": 1.0, "s": -1.0}

#: wraps the page's WebSocket.send: records (stamp ms, motion x) of every input message it sends
RECORD_SENDS_JS = """
if (!window.__benchSends) {
  window.__benchSends = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const m = JSON.parse(data);
      if (m.type === "input") window.__benchSends.push([m.t, m.motion[0], m.intervene]);
    } catch (e) { /* not JSON */ }
    return send.call(this, data);
  };
}
"""


class Listener:
    """An rclpy node recording every ``/teleop/command`` with its arrival time."""

    def __init__(self, domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node("teleop_latency_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        # (arrival perf_counter s, arrival wall ns, observation stamp ns, action or None)
        self.received: list[tuple[float, int, int, np.ndarray | None]] = []
        self.node.create_subscription(JointTrajectory, TELEOP_COMMAND_TOPIC, self._on_command, 50)

    def _on_command(self, msg: JointTrajectory) -> None:
        now, wall = time.perf_counter(), time.time_ns()
        action = np.asarray(msg.points[0].positions, np.float64) if msg.points else None
        self.received.append((now, wall, stamp_to_ns(msg.header.stamp), action))

    def spin_until(self, predicate, timeout: float, what: str) -> None:
        end = time.perf_counter() + timeout
        while not predicate():
            if time.perf_counter() > end:
                raise TimeoutError(f"timed out waiting for {what}")
            self.executor.spin_once(timeout_sec=0.005)

    def spin_for(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            self.executor.spin_once(timeout_sec=min(left, 0.005))

    def call(self, service: str, timeout: float = 60.0) -> Trigger.Response:
        client = self.node.create_client(Trigger, service)
        end = time.perf_counter() + timeout
        while not client.wait_for_service(timeout_sec=0.2):
            if time.perf_counter() > end:
                raise TimeoutError(f"{service} did not come up")
        future = client.call_async(Trigger.Request())
        self.spin_until(future.done, timeout, service)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "max": round(float(a.max()), 2),
        "min": round(float(a.min()), 2),
    }


class KeyboardInput:
    """Key bytes into a pseudo-terminal held open here; ``teleop_node`` reads its slave side."""

    device = "keyboard"

    def __init__(self, hold_s: float) -> None:
        self.master, self.slave = os.openpty()
        tty.setcbreak(self.slave)  # teleop_node does the same; here so the 'i' is readable at once
        self.options = [f"tty={os.ttyname(self.slave)}", f"hold_s={hold_s}"]

    def before_nodes(self) -> None:
        os.write(self.master, b"i")  # intervene from the first observation on

    def after_nodes(self, listener: Listener) -> None:
        pass

    def press(self, key: str) -> int:
        """Press ``key``; returns t0 (wall ns)."""
        t0 = time.time_ns()
        os.write(self.master, key.encode())
        return t0

    def input_stamp(self, t0: int, sign: float) -> int:
        return t0

    def release(self, key: str) -> None:
        pass  # a terminal has no key-up: the motion expires after hold_s

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


class BrowserInput:
    """A headless Chromium on ``teleop_node device:=browser``'s page (see the module docstring)."""

    device = "browser"

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.token = secrets.token_urlsafe(16)
        self.options = [f"port={self.port}", f"token={self.token}"]
        self.chrome = None
        self.sent_before = 0

    def before_nodes(self) -> None:
        pass

    def after_nodes(self, listener: Listener) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_teleop_latency import chrome_driver

        self.chrome = chrome_driver()
        url = f"http://127.0.0.1:{self.port}/?token={self.token}"
        deadline = time.monotonic() + 60
        while True:  # the node's server may still be starting
            self.chrome.get(url)
            if self.chrome.execute_script("return !!document.getElementById('intervene');"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"teleop_node's page at {url} did not load")
            listener.spin_for(0.5)
        self.chrome.execute_script(RECORD_SENDS_JS)
        self.actions = ActionChains
        button = self.chrome.find_element(By.ID, "intervene")
        ActionChains(self.chrome).click_and_hold(button).perform()

    def press(self, key: str) -> int:
        self.sent_before = self.chrome.execute_script("return window.__benchSends.length;")
        self.actions(self.chrome).key_down(key).perform()
        return time.time_ns()

    def input_stamp(self, t0: int, sign: float) -> int:
        sends = self.chrome.execute_script("return window.__benchSends;")[self.sent_before :]
        stamp = next(t for t, x, _ in sends if sign * x > 0)
        return int(round(stamp * 1e6))

    def release(self, key: str) -> None:
        self.actions(self.chrome).key_up(key).perform()

    def close(self) -> None:
        if self.chrome is not None:
            self.chrome.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["keyboard", "browser"], default="keyboard")
    parser.add_argument("--presses", type=int, default=100, help="presses to measure")
    parser.add_argument("--warmup", type=int, default=5, help="presses not counted")
    parser.add_argument("--task", default="lift")
    parser.add_argument("--hold-s", type=float, default=0.05, help="keyboard hold_s option")
    parser.add_argument(
        "--policy-wait-s",
        type=float,
        default=0.001,
        help="teleop_node policy_wait_s (0 there means one control period)",
    )
    parser.add_argument(
        "--no-policy-topic",
        action="store_true",
        help="teleop_node policy_topic:='' (no policy subscription: reads on the observation)",
    )
    parser.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: random 100-220)")
    parser.add_argument("--log-dir", help="node logs here (default: a temporary directory)")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the press phases")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    domain = (
        args.domain_id if args.domain_id is not None else random.SystemRandom().randint(100, 220)
    )
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="bench_teleop_ros_"))
    source = KeyboardInput(args.hold_s) if args.device == "keyboard" else BrowserInput()
    task = {"task": args.task, "max_episode_steps": 1_000_000}
    teleop = {
        **task,
        "device": source.device,
        "options": source.options,
        "policy_wait_s": args.policy_wait_s,
    }
    if args.no_policy_topic:
        teleop["policy_topic"] = ""
    env = ros_environment(domain)
    nodes = [
        NodeProcess(
            "sim_robot_node",
            "ros_nodes.sim_robot_node",
            {**task, "lockstep": False, "command_topic": TELEOP_COMMAND_TOPIC},
            log_dir,
            env,
        ),
        NodeProcess("teleop_node", "ros_nodes.teleop_node", teleop, log_dir, env),
    ]
    listener = Listener(domain)
    rows = []
    try:
        source.before_nodes()
        for n in nodes:
            n.start()
        deadline = time.perf_counter() + 120.0
        while listener.node.count_publishers(TELEOP_COMMAND_TOPIC) < 1:
            dead = [n.describe_exit() for n in nodes if not n.alive]
            if dead:
                raise RuntimeError("\n".join(dead))
            if time.perf_counter() > deadline:
                raise TimeoutError("teleop_node did not come up")
            listener.spin_for(0.1)
        listener.call("/robot/reset")
        source.after_nodes(listener)

        def intervening(start: int) -> bool:
            return sum(r[3] is not None for r in listener.received[start:]) >= 5

        listener.spin_until(lambda: intervening(0), 60.0, "the operator's first commands")
        stamps = [r[2] for r in listener.received[-5:]]
        period = float(np.median(np.diff(stamps))) / 1e9
        baseline = float(listener.received[-1][3][0])  # dx with no key held

        def moving(row, sign: float) -> bool:
            return row[3] is not None and sign * (row[3][0] - baseline) > 1e-6

        for i in range(args.warmup + args.presses):
            key = list(KEYS)[i % 2]
            sign = KEYS[key]
            # the previous press has ended: a command without motion arrived after it
            start = len(listener.received)
            listener.spin_until(
                lambda s=start: any(
                    r[3] is not None and abs(r[3][0] - baseline) <= 1e-6
                    for r in listener.received[s:]
                ),
                5.0,
                "the key to be released",
            )
            listener.spin_for(rng.uniform(0.0, period))  # random phase against the ticks
            start = len(listener.received)
            t0 = source.press(key)
            listener.spin_until(
                lambda s=start, g=sign: any(moving(r, g) for r in listener.received[s:]),
                5.0,
                f"a command carrying key {key!r}",
            )
            hit = next(r for r in listener.received[start:] if moving(r, sign))
            source.release(key)
            t0 = source.input_stamp(t0, sign)
            if i >= args.warmup:
                rows.append(
                    {
                        "total_ms": (hit[1] - t0) / 1e6,
                        "to_observation_ms": (hit[2] - t0) / 1e6,
                        "ros_path_ms": (hit[1] - hit[2]) / 1e6,
                    }
                )
        dead = [n.describe_exit() for n in nodes if not n.alive]
        if dead:
            raise RuntimeError("\n".join(dead))
    finally:
        try:
            source.close()
        finally:
            stop_all(nodes, grace_s=5.0)
            listener.close()
    report = {
        "device": source.device,
        "task": args.task,
        "presses": len(rows),
        "control_period_ms": round(1e3 * period, 2),
        "hold_s": args.hold_s if args.device == "keyboard" else None,
        "policy_topic": "" if args.no_policy_topic else "/policy/command (silent)",
        "policy_wait_s": None if args.no_policy_topic else args.policy_wait_s,
        "latency_ms": stats([r["total_ms"] for r in rows]),
        "input_to_observation_ms": stats([r["to_observation_ms"] for r in rows]),
        "observation_to_received_ms": stats([r["ros_path_ms"] for r in rows]),
        "logs": str(log_dir),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
