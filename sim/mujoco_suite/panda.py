"""MJCF of a Franka Emika Panda on a table, built from the Panda's published kinematics.

Kinematics follow Franka's official (modified, Craig-convention) DH table: joint offsets
d1 = 0.333, d3 = 0.316, d5 = 0.384, a4 = 0.0825, a5 = -0.0825, a7 = 0.088 and the flange at
0.107 along the last joint axis; the hand is rotated -45 deg about the flange axis and its
fingers slide from 0.0584 m below the flange. Joint limits are Franka's datasheet limits.

Geometry is deliberately simple (capsules and boxes, no meshes) because rendering runs on the
CPU (OSMesa). Only the hand, the fingers, the table and the task objects collide; the arm links
are visual-only, which keeps the contact pipeline cheap and avoids self-collision tuning.

Frames: world origin at the robot base on the table top (z = ``arm_common.TABLE_Z``), +x away
from the robot, +z up. The ``tcp`` site sits between the fingertip pads (the point that
``ee_pos`` reports and that the controller moves).
"""

from __future__ import annotations

import numpy as np

from sim import arm_common
from sim.arm_common import (
    FRONT_CAMERA_FOVY,
    FRONT_CAMERA_POS,
    FRONT_CAMERA_TARGET,
    WRIST_CAMERA_FOVY,
    WRIST_CAMERA_POS,
    WRIST_CAMERA_TARGET,
)

#: Franka datasheet joint limits (rad), joints 1..7 (shared with the observation bounds)
JOINT_LIMITS = arm_common.PANDA_JOINT_LIMITS
#: per-joint position-servo stiffness (N m / rad) and damping (N m s / rad); with gravity
#: compensation on the links these track a 10 Hz target stream to well under a millimetre
JOINT_KP = (3000.0, 3000.0, 2500.0, 2500.0, 1200.0, 1000.0, 600.0)
JOINT_KV = (120.0, 140.0, 70.0, 80.0, 30.0, 25.0, 15.0)
#: Franka datasheet joint torque limits (N m), applied as actuator force ranges
JOINT_TORQUE = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
#: finger servo: stiffness (N/m) and force limit (N) per finger; closing on a 4 cm cube with a
#: 0 m target squeezes with ~20 N, enough to hold the cube or the peg against insertion friction
FINGER_KP = 1000.0
FINGER_FORCE = 40.0
#: hand frame to tcp (m) along the approach axis: the centre of the fingertip pads, the same
#: point as panda.urdf's panda_grasptarget so both backends report the same ee_pos
TCP_OFFSET = 0.105
#: finger pad geometry in the finger frame (half sizes, m): 2 cm wide, 5.2 cm long
FINGER_HALF = (0.010, 0.007, 0.026)

# camera poses are shared with the PyBullet backend (sim/arm_common.py)

# Link masses (kg) from Franka's published dynamic identification, rounded; inertias are
# approximate diagonal values adequate for a gravity-compensated position-controlled arm.
_LINK_INERTIAL = {
    "link1": ("0 -0.04 -0.05", 4.97, "0.70 0.70 0.01"),
    "link2": ("0 -0.07 0.03", 0.65, "0.008 0.003 0.008"),
    "link3": ("0.03 0.04 -0.07", 3.23, "0.04 0.04 0.01"),
    "link4": ("-0.05 0.10 0.03", 3.59, "0.03 0.01 0.03"),
    "link5": ("0 0.04 -0.11", 1.23, "0.04 0.03 0.01"),
    "link6": ("0.06 -0.01 0.01", 1.67, "0.002 0.004 0.005"),
    "link7": ("0.01 0.01 0.08", 0.74, "0.01 0.01 0.002"),
}


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of URDF-style fixed-axis roll-pitch-yaw (R = Rz Ry Rx)."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    return np.array(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ]
    )


def lookat_xyaxes(pos, target, up=(0.0, 0.0, 1.0)) -> str:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` (MuJoCo cameras look along -z)."""
    fwd = np.asarray(target, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, fwd)
    return " ".join(f"{v:.4f}" for v in (*right, *cam_up))


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _joint_body(name: str, xyz, rpy, joint: int, geoms: str, children: str) -> str:
    """One revolute link: frame from its parent (URDF joint origin), hinge about local z."""
    lo, hi = JOINT_LIMITS[joint - 1]
    ipos, mass, inertia = _LINK_INERTIAL[name]
    return f"""
    <body name="{name}" pos="{_fmt(xyz)}" quat="{_fmt(quat_from_rpy(*rpy))}" gravcomp="1">
      <inertial pos="{ipos}" mass="{mass}" diaginertia="{inertia}"/>
      <joint name="joint{joint}" axis="0 0 1" range="{lo} {hi}"/>
      {geoms}
      {children}
    </body>"""


def _arm_xml() -> str:
    """Nested bodies link0 .. link7, hand and fingers (Franka DH as URDF-style joint origins)."""
    half_pi = np.pi / 2
    fh = FINGER_HALF
    fingers = ""
    for side, sign in (("left", 1.0), ("right", -1.0)):
        # slide axis points away from the centre line, so the joint value is that finger's
        # half of the opening (0 = closed, 0.04 = fully open)
        fingers += f"""
          <body name="finger_{side}" pos="0 0 0.0584" gravcomp="1">
            <inertial pos="0 {sign * 0.01} 0.025" mass="0.015" diaginertia="2e-6 2e-6 1e-6"/>
            <joint name="finger_{side}" type="slide" axis="0 {sign} 0" range="0 0.04"
                   armature="0.05" damping="2"/>
            <geom name="finger_{side}_pad" class="gripper" type="box" size="{_fmt(fh)}"
                  pos="0 {sign * fh[1]} {fh[2] + 0.001}"/>
          </body>"""
    hand = f"""
        <body name="hand" pos="0 0 0.107" quat="{_fmt(quat_from_rpy(0, 0, -np.pi / 4))}" gravcomp="1">
          <inertial pos="0 0 0.03" mass="0.73" diaginertia="0.002 0.0005 0.002"/>
          <geom name="hand_box" class="gripper" type="box" size="0.022 0.095 0.025" pos="0 0 0.032"
                rgba="0.92 0.92 0.92 1"/>
          <geom class="visual" type="cylinder" size="0.035 0.012" pos="0 0 0.006" rgba="0.2 0.2 0.2 1"/>
          <site name="tcp" pos="0 0 {TCP_OFFSET}" size="0.004" rgba="0 1 0 0"/>
          <camera name="wrist" pos="{_fmt(WRIST_CAMERA_POS)}" fovy="{WRIST_CAMERA_FOVY:g}"
                  xyaxes="{lookat_xyaxes(WRIST_CAMERA_POS, WRIST_CAMERA_TARGET, up=(1.0, 0.0, 0.0))}"/>
          {fingers}
        </body>"""
    cap = 'class="visual" type="capsule"'
    dark = 'rgba="0.22 0.22 0.22 1"'
    link7 = _joint_body(
        "link7",
        (0.088, 0, 0),
        (half_pi, 0, 0),
        7,
        f'<geom {cap} size="0.045" fromto="0 0 -0.03 0 0 0.085" {dark}/>',
        hand,
    )
    link6 = _joint_body(
        "link6",
        (0, 0, 0),
        (half_pi, 0, 0),
        6,
        f'<geom {cap} size="0.055" fromto="0 0 -0.05 0 0 0.03" {dark}/>'
        f'<geom {cap} size="0.045" fromto="0 0 0 0.088 0 0"/>',
        link7,
    )
    link5 = _joint_body(
        "link5",
        (-0.0825, 0.384, 0),
        (-half_pi, 0, 0),
        5,
        f'<geom {cap} size="0.055" fromto="0 0 -0.25 0 0 0"/>'
        f'<geom {cap} size="0.04" fromto="0 0.07 -0.22 0 0.07 -0.05"/>',
        link6,
    )
    link4 = _joint_body(
        "link4",
        (0.0825, 0, 0),
        (half_pi, 0, 0),
        4,
        f'<geom {cap} size="0.06" fromto="0 0 -0.05 0 0 0.05" {dark}/>'
        f'<geom {cap} size="0.055" fromto="0 0 0 -0.0825 0.11 0"/>',
        link5,
    )
    link3 = _joint_body(
        "link3",
        (0, -0.316, 0),
        (half_pi, 0, 0),
        3,
        f'<geom {cap} size="0.06" fromto="0 0 -0.16 0 0 0"/>'
        f'<geom {cap} size="0.055" fromto="0 0 0 0.0825 0 0"/>',
        link4,
    )
    link2 = _joint_body(
        "link2",
        (0, 0, 0),
        (-half_pi, 0, 0),
        2,
        f'<geom {cap} size="0.06" fromto="0 0 -0.06 0 0 0.06" {dark}/>'
        f'<geom {cap} size="0.06" fromto="0 0 0 0 -0.16 0"/>',
        link3,
    )
    link1 = _joint_body(
        "link1",
        (0, 0, 0.333),
        (0, 0, 0),
        1,
        f'<geom {cap} size="0.06" fromto="0 0 -0.19 0 0 0.0"/>',
        link2,
    )
    return f"""
    <body name="link0" pos="0 0 {arm_common.TABLE_Z}">
      <geom class="visual" type="cylinder" size="0.07 0.07" pos="0 0 0.07"/>
      <geom class="visual" type="box" size="0.11 0.09 0.01" pos="-0.03 0 0.01" {dark}/>
      {link1}
    </body>"""


def _actuators_xml() -> str:
    lines = []
    for j in range(1, 8):
        lo, hi = JOINT_LIMITS[j - 1]
        lines.append(
            f'<position name="act{j}" joint="joint{j}" kp="{JOINT_KP[j - 1]}" kv="{JOINT_KV[j - 1]}" '
            f'ctrlrange="{lo} {hi}" forcerange="-{JOINT_TORQUE[j - 1]} {JOINT_TORQUE[j - 1]}"/>'
        )
    for side in ("left", "right"):
        lines.append(
            f'<position name="act_finger_{side}" joint="finger_{side}" kp="{FINGER_KP}" kv="20" '
            f'ctrlrange="0 0.04" forcerange="-{FINGER_FORCE} {FINGER_FORCE}"/>'
        )
    return "\n    ".join(lines)


def scene_xml(objects: str = "", timestep: float = 0.004, name: str = "panda") -> str:
    """Complete MJCF: options, lights, cameras, table, Panda, and ``objects`` (worldbody XML).

    Collision classes: task objects use the defaults (contype = conaffinity = 1); the gripper
    uses contype 2 so the two fingers never collide with each other but touch everything else.
    Contacts are stiff (time constant = MuJoCo's minimum of two 4 ms steps, solimp up to 0.99)
    so a squeezed cube or peg sinks < 0.5 mm into the pads; elliptic cones with impratio 10
    keep grasps from creeping.
    """
    table_half = (0.55, 0.6, 0.02)
    front_xyaxes = lookat_xyaxes(FRONT_CAMERA_POS, FRONT_CAMERA_TARGET)
    return f"""
<mujoco model="{name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.15 0.15 0.15" specular="0 0 0"/>
    <quality shadowsize="0" offsamples="0" numslices="16" numstacks="8"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.55 0.65 0.8" rgb2="0.15 0.17 0.2"
             width="64" height="64"/>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.3 0.32 0.35" rgb2="0.25 0.27 0.3"
             width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="8 8"/>
  </asset>
  <default>
    <joint armature="0.1" damping="1"/>
    <geom friction="1 0.005 0.0001" rgba="0.95 0.95 0.95 1" solref="{2 * timestep} 1" solimp="0.95 0.99 0.001"/>
    <default class="visual">
      <geom contype="0" conaffinity="0" group="1" density="0"/>
    </default>
    <default class="gripper">
      <geom contype="2" conaffinity="1" friction="1.5 0.01 0.0001" rgba="0.25 0.25 0.25 1"
            condim="4"/>
    </default>
  </default>
  <worldbody>
    <light name="key" pos="0.9 -0.5 1.6" dir="-0.4 0.3 -1" directional="true" castshadow="false"
           diffuse="0.5 0.5 0.5" specular="0.05 0.05 0.05"/>
    <light name="fill" pos="-0.5 0.8 1.2" dir="0.6 -0.5 -1" directional="true" castshadow="false"
           diffuse="0.2 0.2 0.2" specular="0 0 0"/>
    <camera name="front" pos="{_fmt(FRONT_CAMERA_POS)}" xyaxes="{front_xyaxes}" fovy="{FRONT_CAMERA_FOVY:g}"/>
    <geom name="floor" type="plane" size="3 3 1" pos="0 0 {arm_common.TABLE_Z - 0.75}"
          material="floor" contype="0" conaffinity="0"/>
    <geom name="table" type="box" size="{_fmt(table_half)}"
          pos="0.35 0 {arm_common.TABLE_Z - table_half[2]}" rgba="0.55 0.43 0.32 1"/>
    {_arm_xml()}
    {objects}
  </worldbody>
  <actuator>
    {_actuators_xml()}
  </actuator>
</mujoco>
"""
