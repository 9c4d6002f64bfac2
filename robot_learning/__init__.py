"""robot-learning: from simulated task to running robot."""

__version__ = "0.1.0"
