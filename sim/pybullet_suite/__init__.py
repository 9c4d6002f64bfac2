"""PyBullet backend for the arm tasks (reach, lift), same feature spec as MuJoCo.

Importing this package registers the tasks; ``pybullet`` itself loads only when an env is built.
"""

from sim.pybullet_suite import lift, reach  # noqa: F401  (registration)
