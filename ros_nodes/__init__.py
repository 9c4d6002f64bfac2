"""ROS 2 nodes: ``policy_node`` (serves a bundle), ``sim_robot_node`` (a task as a robot), ``recorder_node``.

Every module here imports rclpy; ``robot_learning`` never imports this package at import time
(the ``deploy`` and ``bench ros`` commands load it when they run). Topics, parameters and
services are documented in each node's module docstring and in the README's "ROS 2" section.
"""
