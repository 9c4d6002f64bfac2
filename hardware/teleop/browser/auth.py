"""Access control of the browser teleop server: the one-time token, the Origin rule and TLS.

- **Token**: a random ``secrets.token_urlsafe(24)`` per session (or ``device.token=`` for tests),
  required on every page load (``/?token=...``) and WebSocket connect (``/ws?token=...``); it is
  compared in constant time. A missing or wrong token is HTTP 403 (the WebSocket handshake is
  refused with 403 before any upgrade).
- **Origin**: a WebSocket's ``Origin`` header must equal the page's own origin
  (``http[s]://<Host header>``): another site open in the operator's browser cannot drive the
  robot even if it learnt the URL.
- **TLS**: ``cert_file`` + ``key_file`` serve HTTPS/WSS (needed for the Gamepad API on a remote,
  non-localhost origin: browsers expose it only in secure contexts).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from hardware.teleop.base import DeviceError


def new_token() -> str:
    """A fresh random session token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def token_ok(given: str | None, expected: str) -> bool:
    """True when ``given`` equals the session token (constant-time comparison)."""
    if not given:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def origin_ok(origin: str | None, host: str | None, tls: bool) -> bool:
    """True when a WebSocket's ``Origin`` is the page's own origin (``scheme://host``)."""
    if not origin or not host:
        return False
    scheme = "https" if tls else "http"
    return origin.rstrip("/").lower() == f"{scheme}://{host}".lower()


def tls_files(cert_file: str | None, key_file: str | None) -> tuple[str, str] | None:
    """The (cert, key) pair to serve TLS with, None for plain HTTP; half a pair or a missing file
    is a DeviceError."""
    if not cert_file and not key_file:
        return None
    if not (cert_file and key_file):
        raise DeviceError("device=browser serves TLS with both device.cert_file and key_file")
    for name, path in (("cert_file", cert_file), ("key_file", key_file)):
        if not Path(path).is_file():
            raise DeviceError(f"device.{name}={path!r} does not exist")
    return cert_file, key_file
