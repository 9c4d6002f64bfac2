"""A simulated task as a robot, a policy node, a teleop node and the intervention mux.

ros2 launch ros_nodes sim_teleop.launch.py bundle:=/path/to/bundle task:=lift device:=expert
The mux forwards the policy's or the operator's command to /robot/command (which the robot
follows); drive episodes with /mux/reset, /teleop/reset, /policy/reset, /robot/reset
(std_srvs/srv/Trigger), as ``robot-learning deploy teleop=<device>`` does.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    """sim_robot_node + policy_node + teleop_node + intervention_mux with the launch arguments."""
    args = {
        "bundle": "",  # exported bundle folder (required)
        "task": "lift",
        "obs": "state",
        "runtime": "auto",
        "seed": "100000",
        "device": "expert",  # teleop device (expert needs the simulator's task state)
        "lockstep": "true",
    }
    config = {name: LaunchConfiguration(name) for name in args}
    task = {"task": config["task"], "obs": config["obs"], "seed": config["seed"]}
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
                        **task,
                        "lockstep": config["lockstep"],
                        "command_topic": "/robot/command",
                        "publish_task_state": True,
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
            Node(
                package="ros_nodes",
                executable="teleop_node",
                name="teleop_node",
                output="screen",
                parameters=[{**task, "device": config["device"]}],
            ),
            Node(
                package="ros_nodes",
                executable="intervention_mux",
                name="intervention_mux",
                output="screen",
                parameters=[{"sync": config["lockstep"]}],
            ),
        ]
    )
