"""colcon (ament_python) build of this folder for users with a system ROS 2 (Humble/Jazzy/...).

The folder itself is the ``ros_nodes`` Python package; the ``robot-learning`` package must be
installed in the same Python (``pip install -e /path/to/robot-learning``). Not used by the
project's own pip install, which ships ``ros_nodes`` from the top-level ``pyproject.toml``.
"""

from glob import glob

from setuptools import setup

PACKAGE = "ros_nodes"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    package_dir={PACKAGE: "."},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="robot-learning maintainers",
    description="ROS 2 nodes of robot-learning: policy server, simulated robot, recorder, teleop",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"policy_node = {PACKAGE}.policy_node:main",
            f"sim_robot_node = {PACKAGE}.sim_robot_node:main",
            f"recorder_node = {PACKAGE}.recorder_node:main",
            f"teleop_node = {PACKAGE}.teleop_node:main",
            f"intervention_mux = {PACKAGE}.intervention_mux:main",
        ],
    },
)
