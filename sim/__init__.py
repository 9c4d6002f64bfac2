"""Task suites: importing this package registers every task and scripted expert.

Simulator libraries (MuJoCo, PyBullet) are imported by the task modules themselves; PyBullet
only when a PyBullet task is constructed.
"""

from sim import experts, external, isaacgym, mujoco_suite, pybullet_suite  # noqa: F401  (registration)
