"""``robot=ros2_control``: the rclpy bridge to the standard ros2_control controllers."""

from hardware.robots.ros2_control.driver import Ros2ControlRobot

__all__ = ["Ros2ControlRobot"]
