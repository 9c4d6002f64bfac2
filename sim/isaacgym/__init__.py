"""Isaac Gym adapter (``backend=isaacgym``): IsaacGymEnvs-style ``VecTask`` tasks as project tasks.

:mod:`.adapter` maps a ``VecTask`` onto the task contract (seeded per-env resets, time-outs,
batched views for evaluation and RL); :mod:`.vec_task` is a ``VecTask`` base written against
``isaacgym.gymapi``; :mod:`.cartpole` a task on it, with :mod:`.expert` its scripted expert.
Importing this package never imports ``isaacgym`` (NVIDIA's package, not on PyPI): building a
task does, with an error naming how to install it when it is missing.
"""

from sim.isaacgym import adapter, cartpole, expert  # noqa: F401  (registration)
