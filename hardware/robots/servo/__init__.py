"""Servo arms: SO-100/SO-101 (Feetech STS3215) and Koch (Dynamixel) through the vendors' SDKs.

Layers, each its own module: :mod:`.tables` (control tables, models), :mod:`.bus` (the shared
motor-bus interface; :mod:`.feetech`, :mod:`.dynamixel`), :mod:`.calibration` (LeRobot's file
format, ticks <-> degrees), :mod:`.arm` (the robot contract), :mod:`.arms` (the registered arms),
:mod:`.leader` (leader arms as teleop devices) and the fakes (:mod:`.fake_motor`,
:mod:`.fake_bus`: the real packet protocols on a pseudo-terminal). Importing this package
registers ``robot=so101|so100|koch`` and ``device=so101_leader|so100_leader|koch_leader``; the
SDKs are imported only in ``connect()``.
"""

from hardware.robots.servo import arms, leader  # noqa: F401  (registration)
