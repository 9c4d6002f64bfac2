"""Robots (``robot.py`` contract, ``robots/`` drivers, the safety layer) and teleop devices
(``teleop/``), behind the same contract as ``sim/``."""
