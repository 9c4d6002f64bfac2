"""Robot drivers; importing this package registers them (vendor SDKs load in ``connect()``)."""

from hardware.robots import ros2_control, sim  # noqa: F401
