"""Robot drivers; importing this package registers them (vendor SDKs load in ``connect()``)."""

from hardware.robots import franka, ros2_control, servo, sim, ur  # noqa: F401
