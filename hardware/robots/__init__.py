"""Robot drivers; importing this package registers them (vendor SDKs load in ``connect()``)."""

from hardware.robots import sim  # noqa: F401
