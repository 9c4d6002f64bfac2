"""Crash-safe file primitives: every durable write is temp file + fsync + ``os.replace``.

``os.replace`` within one filesystem is atomic on POSIX: a reader sees either the old file or
the new one, never a torn one. The ``fsync`` of the file before the rename and of the directory
after it make the new name survive a power cut, not only a killed process.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: prefix of every temporary file; dot files are invisible to LeRobot's ``*/*.parquet`` globs.
TMP_PREFIX = ".tmp-"


def fsync_path(path: Path) -> None:
    """Flush a file's contents, or a directory's entry table, to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_path_for(path: Path) -> Path:
    """A unique hidden temporary name next to ``path`` (same directory, so rename is atomic)."""
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    ensure_dir(path.parent)
    tmp = tmp_path_for(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_path(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Atomically replace ``path`` with ``obj`` as indented JSON (LeRobot writes indent=4)."""
    write_bytes_atomic(path, (json.dumps(obj, indent=4, ensure_ascii=False) + "\n").encode())


def write_with_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    """Atomically replace ``path`` with whatever ``writer(tmp_path)`` writes."""
    with atomic_path(path) as tmp:
        writer(tmp)


def ensure_dir(path: Path) -> None:
    """Create ``path`` (and missing parents), flushing each parent that gained an entry."""
    path = Path(path)
    if path.is_dir():
        return
    ensure_dir(path.parent)
    path.mkdir(exist_ok=True)
    fsync_path(path.parent)


def move_durable(src: Path, dst: Path) -> None:
    """Rename an already fsynced ``src`` onto ``dst`` and flush the destination directory."""
    ensure_dir(dst.parent)
    os.replace(src, dst)
    fsync_path(dst.parent)
