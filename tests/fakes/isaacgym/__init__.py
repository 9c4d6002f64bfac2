"""A fake of NVIDIA's ``isaacgym`` package for tests (``tests/fakes`` on ``sys.path``).

It speaks the ``gymapi`` / ``gymtorch`` calls the project's Isaac Gym code makes, with a small
physics of its own instead of PhysX: URDF joints become DOFs; a revolute joint whose parent link
is moved by a prismatic joint is integrated as a pole on a cart, any other DOF as a driven mass.
"""
