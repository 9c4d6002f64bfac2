"""Nodes as child processes: start with parameters, watch, read their log tail, stop cleanly.

Each node runs as ``python -m ros_nodes.<node> --ros-args -p name:=value ...`` in its own
session (so a terminal Ctrl-C reaches only the orchestrator, which then stops the nodes in
order), with stdout and stderr in ``<log_dir>/<node>.log`` (a file, never a pipe that could fill
and block the node). :meth:`NodeProcess.stop` sends SIGINT (rclpy shuts down cleanly) and
SIGKILL after a grace period. Children also exit on their own if the orchestrator dies
(``ROBOT_LEARNING_PARENT_PID``, see :mod:`ros_nodes.base`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from ros_nodes.base import PARENT_ENV

log = logging.getLogger(__name__)


def format_parameter(value: Any) -> str:
    """A Python value as the YAML text of ``-p name:=value`` (strings always quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_parameter(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def node_command(module: str, parameters: Mapping[str, Any]) -> list[str]:
    """``[python, -m, module, --ros-args, -p, name:=value, ...]``; None values are left out."""
    args = [sys.executable, "-m", module, "--ros-args"]
    for name, value in parameters.items():
        if value is not None:
            args += ["-p", f"{name}:={format_parameter(value)}"]
    return args


def ros_environment(domain_id: int) -> dict[str, str]:
    """This process's environment for the nodes: the domain, localhost discovery, the parent pid."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env[PARENT_ENV] = str(os.getpid())
    return env


class NodeProcess:
    """One node running as a child process (see the module docstring)."""

    def __init__(
        self,
        name: str,
        module: str,
        parameters: Mapping[str, Any],
        log_dir: Path,
        env: Mapping[str, str],
    ) -> None:
        self.name = name
        self.command = node_command(module, parameters)
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = dict(env)
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Launch the node."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.info("started %s (pid %d): %s", self.name, self.process.pid, json.dumps(self.command))

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the node's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_exit(self) -> str:
        """'<name> exited with code N; last log lines: ...' for error messages."""
        code = None if self.process is None else self.process.poll()
        return f"{self.name} exited with code {code}; last lines of {self.log_path}:\n{self.tail()}"

    def stop(self, grace_s: float = 5.0, interrupt: bool = True) -> int | None:
        """SIGINT (unless already sent), then SIGKILL after ``grace_s``; returns the exit code (idempotent)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                if interrupt:
                    proc.send_signal(signal.SIGINT)
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop within %.1f s of SIGINT; killing it", self.name, grace_s
                )
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if proc is None else proc.returncode


def stop_all(processes: list[NodeProcess], grace_s: float) -> None:
    """SIGINT every process at once, then wait for each (SIGKILL after the shared grace period)."""
    for p in processes:
        if p.alive:
            p.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for p in processes:
        p.stop(grace_s=max(0.1, deadline - time.monotonic()), interrupt=False)
