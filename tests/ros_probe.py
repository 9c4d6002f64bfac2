"""A plain rclpy node in the test process: its own context and domain, spinning, services.

The ROS test modules subclass :class:`ProbeNode` and add the publishers and subscriptions they
need; the nodes under test run as separate processes.
"""

from __future__ import annotations

import json
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import Trigger


class ProbeNode:
    """An rclpy node on ``domain_id`` with a single-threaded executor and Trigger clients."""

    def __init__(self, domain_id: int, name: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.clients: dict[str, object] = {}

    def close(self) -> None:
        """Shut the node and its context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def spin(self, seconds: float) -> None:
        """Process callbacks for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition") -> None:
        """Spin until ``predicate()`` holds; fails the test after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < end, f"timed out waiting for {what}"
            self.executor.spin_once(timeout_sec=0.02)

    def call(self, service: str, timeout: float = 30.0) -> Trigger.Response:
        """Call a ``std_srvs/Trigger`` service and return its response."""
        client = self.clients.get(service) or self.node.create_client(Trigger, service)
        self.clients[service] = client
        end = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.1):
            assert time.monotonic() < end, f"{service} not available"
        future = client.call_async(Trigger.Request())
        self.wait_for(future.done, timeout, service)
        return future.result()

    def status(self, service: str) -> dict:
        """A Trigger service whose message is JSON, parsed."""
        return json.loads(self.call(service).message)
