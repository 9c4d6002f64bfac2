"""Launch a simulated task as a robot and a policy node serving an exported bundle.

ros2 launch ros_nodes sim_deploy.launch.py bundle:=/path/to/bundle task:=lift
Then drive episodes with: ros2 service call /policy/reset std_srvs/srv/Trigger
                           ros2 service call /robot/reset std_srvs/srv/Trigger
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    """sim_robot_node + policy_node with the launch arguments as parameters."""
    args = {
        "bundle": "",  # exported bundle folder (required)
        "task": "lift",
        "obs": "state",
        "runtime": "auto",
        "seed": "100000",
        "lockstep": "true",
    }
    config = {name: LaunchConfiguration(name) for name in args}
    return LaunchDescription(
        [
            *[DeclareLaunchArgument(name, default_value=value) for name, value in args.items()],
            Node(
                package="ros_nodes",
                executable="sim_robot_node",
                name="sim_robot_node",
                output="screen",
                parameters=[
                    {
                        "task": config["task"],
                        "obs": config["obs"],
                        "seed": config["seed"],
                        "lockstep": config["lockstep"],
                    }
                ],
            ),
            Node(
                package="ros_nodes",
                executable="policy_node",
                name="policy_node",
                output="screen",
                parameters=[
                    {
                        "bundle": config["bundle"],
                        "runtime": config["runtime"],
                        "seed": config["seed"],
                    }
                ],
            ),
        ]
    )
