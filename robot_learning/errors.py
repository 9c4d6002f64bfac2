"""Errors every command reports as one line (no traceback) with the fix in the message."""

from __future__ import annotations


class HardwareUnavailable(RuntimeError):
    """A robot or camera cannot be used (SDK missing, port absent, no answer, no permission,
    no privileged state); the message names the fix. ``hardware`` raises subclasses of it."""
