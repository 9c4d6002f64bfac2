"""File-system errors that always name their path.

Python's own file calls put the path into ``OSError.filename``; pyarrow and safetensors do not
(safetensors does not even raise ``OSError``). Wrapping their writes in :func:`naming_path`
turns every such failure into an ``OSError`` carrying the errno and the path, which the CLI
prints as one line (see ``robot_learning.cli.describe_os_error``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_OS_ERROR = re.compile(r"os error (\d+)")


@contextmanager
def naming_path(path: str | Path) -> Iterator[None]:
    """Re-raise any I/O failure inside the block as an ``OSError`` whose ``filename`` is ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        match = _OS_ERROR.search(str(exc))
        if match is None:
            raise
        code = int(match.group(1))
        raise OSError(code, os.strerror(code), str(path)) from exc
