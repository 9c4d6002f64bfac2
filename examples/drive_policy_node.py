"""Drive a running ``policy_node`` from plain rclpy: no robot-learning imports, only standard messages.

Start a policy node serving a bundle trained on ``reach`` (state observations), e.g.:

    python -m ros_nodes.policy_node --ros-args -p bundle:=/path/to/reach_bundle

then run this script:

    python examples/drive_policy_node.py [--ticks 20] [--rate 10]

It resets the policy (``/policy/reset``, ``std_srvs/Trigger``), then at ``--rate`` Hz publishes
the robot's state as ``sensor_msgs/JointState`` on ``/robot/state`` (end effector, gripper and
joint positions, named) and the target on ``/robot/environment_state``, and prints each command
received on ``/policy/command`` (``trajectory_msgs/JointTrajectory``: ``points[0]`` is the action
to execute now, ``header.stamp`` the stamp of the observation it answers). A real robot would
apply ``points[0]`` and publish its new state; here the state moves a little by itself.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

STATE_NAMES = ["ee_x", "ee_y", "ee_z", "gripper_width"] + [f"joint{i}" for i in range(1, 8)]
TARGET_NAMES = ["target_x", "target_y", "target_z"]


class Driver(Node):
    """Publishes observations on a timer and collects the policy's commands."""

    def __init__(self, rate_hz: float) -> None:
        super().__init__("drive_policy_node")
        self.state_pub = self.create_publisher(JointState, "/robot/state", 10)
        self.target_pub = self.create_publisher(JointState, "/robot/environment_state", 10)
        self.create_subscription(JointTrajectory, "/policy/command", self.on_command, 10)
        self.commands: list[JointTrajectory] = []
        self.tick = 0
        self.timer = self.create_timer(1.0 / rate_hz, self.publish_observation)

    def publish_observation(self) -> None:
        stamp = self.get_clock().now().to_msg()
        wobble = 0.01 * math.sin(0.3 * self.tick)
        # joint order does not matter: the policy node selects joints by name
        state = JointState(name=list(reversed(STATE_NAMES)))
        state.header.stamp = stamp
        state.position = list(reversed([0.4 + wobble, 0.0, 0.3, 0.04] + [0.0] * 7))
        target = JointState(name=TARGET_NAMES, position=[0.5, 0.1, 0.2])
        target.header.stamp = stamp
        self.state_pub.publish(state)
        self.target_pub.publish(target)
        self.tick += 1

    def on_command(self, msg: JointTrajectory) -> None:
        self.commands.append(msg)
        now = self.get_clock().now().nanoseconds
        sent = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        action = ", ".join(
            f"{name}={value:+.3f}"
            for name, value in zip(msg.joint_names, msg.points[0].positions, strict=True)
        )
        print(
            f"command {len(self.commands)}: {action} ({len(msg.points)} points, "
            f"{(now - sent) / 1e6:.2f} ms after the observation)",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=20, help="stop after this many commands")
    parser.add_argument("--rate", type=float, default=10.0, help="observation rate in Hz")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="give up after this many seconds"
    )
    args = parser.parse_args()
    rclpy.init()
    node = Driver(args.rate)
    try:
        reset = node.create_client(Trigger, "/policy/reset")
        if not reset.wait_for_service(timeout_sec=args.timeout):
            print(
                "no /policy/reset service: is policy_node running (same ROS_DOMAIN_ID)?",
                file=sys.stderr,
            )
            return 1
        future = reset.call_async(Trigger.Request())
        rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
        deadline = time.monotonic() + args.timeout
        while len(node.commands) < args.ticks and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if len(node.commands) < args.ticks:
            print(
                f"only {len(node.commands)} of {args.ticks} commands within {args.timeout} s",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
