"""The ros2_control driver beyond the contract suite: kinematics from a URDF, the forward and
gripper controller interfaces against the fake arm, and errors that name the missing piece."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hardware.build import make_robot
from hardware.robot import RobotError
from robot_learning.envs import TaskConfig
from robot_learning.kinematics import ArmKinematics, load_model

DOMAIN = random.SystemRandom().randint(100, 120)

#: two 0.5 m links rotating about z on a 0.3 m post, a tool 0.1 m beyond the second link; the
#: meshes are not on disk: the loader must drop visual and collision geometry
TWO_LINK_URDF = """<?xml version="1.0"?>
<robot name="two_link">
  <link name="base"><visual><geometry><mesh filename="package://x/base.stl"/></geometry></visual></link>
  <link name="upper"><collision><geometry><mesh filename="package://x/upper.stl"/></geometry></collision></link>
  <link name="fore"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/><origin xyz="0 0 0.3"/><axis xyz="0 0 1"/>
    <limit lower="-2" upper="2" effort="10" velocity="1"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="upper"/><child link="fore"/><origin xyz="0.5 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-2.5" upper="2.5" effort="10" velocity="1"/>
  </joint>
</robot>
"""


def test_kinematics_from_a_urdf_with_meshes_that_are_not_there():
    kin = ArmKinematics(
        load_model(TWO_LINK_URDF),
        ["shoulder", "elbow"],
        body="fore",
        offset=(0.5, 0, 0),
        q_rest=(0.0, 0.0),
        null_gain=0.0,
        damping=1e-3,
    )
    q = np.array([0.3, 0.7])
    pos, _ = kin.fk(q)
    expect = [0.5 * np.cos(0.3) + 0.5 * np.cos(1.0), 0.5 * np.sin(0.3) + 0.5 * np.sin(1.0), 0.3]
    np.testing.assert_allclose(pos, expect, atol=1e-9)
    np.testing.assert_allclose(kin.q_lo, [-2 + 1e-3, -2.5 + 1e-3])
    target = np.array([0.6, 0.4, 0.3])
    q = np.array([0.1, 0.5])
    for _ in range(50):  # position-only task: a zero rotation weight via the current rotation
        q = kin.ik(target, kin.fk(q)[1], q)
    np.testing.assert_allclose(kin.fk(q)[0], target, atol=1e-4)
    with pytest.raises(ValueError, match="no joint 'wrist'"):
        ArmKinematics(load_model(TWO_LINK_URDF), ["shoulder", "wrist"], body="fore")


@pytest.mark.parametrize("interface", ["forward", "trajectory"])
def test_forward_and_gripper_controllers_drive_the_fake_arm(interface):
    settings = {
        "type": "ros2_control",
        "fake": True,
        "domain_id": DOMAIN + (interface == "forward"),
        "command_interface": interface,
        "gripper_command": "controller",
    }
    with make_robot(settings, TaskConfig(name="reach")) as robot:
        start = robot.get_observation()["observation.state"]
        for _ in range(4):
            robot.send_action(np.array([0.0, 0.0, 1.0, -1.0]))
        moved = robot.get_observation()["observation.state"]
        assert moved[2] - start[2] > 0.05  # up by 4 x 3 cm (less the servo lag)
        assert abs(moved[0] - start[0]) < 0.01 and abs(moved[1] - start[1]) < 0.01
        assert moved[3] > 0.06  # both fingers opened: width near 0.08 m
        assert robot.limits()["joint_names"][0] == "panda_joint1"


def test_a_missing_controller_manager_is_named(tmp_path):
    description = tmp_path / "arm.urdf"
    description.write_text(TWO_LINK_URDF)
    settings = {
        "type": "ros2_control",
        "domain_id": DOMAIN + 5,
        "timeout_s": 0.5,
        "joint_names": ["shoulder", "elbow"],
        "rest_joints": [0, 0],
        "joint_velocity_limit": [1, 1],
        "ee_body": "fore",
    }
    with pytest.raises(RobotError, match="robot_state_publisher"):
        make_robot(settings, None).connect()
    settings["description"] = str(description)
    with pytest.raises(RobotError, match="joint_state_broadcaster"):
        make_robot(settings, None).connect()
    with pytest.raises(ValueError, match="robot.ee_site or robot.ee_body"):
        make_robot({**settings, "ee_body": None}, None)
