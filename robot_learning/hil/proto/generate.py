"""Regenerate ``hil_pb2.py`` from ``hil.proto`` (needs ``grpcio-tools``, a dev dependency).

``python -m robot_learning.hil.proto.generate [--check]``: ``--check`` exits 1 when the committed
module differs from what the schema generates (run by the tests when ``grpcio-tools`` is present).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "hil.proto"
MODULE = HERE / "hil_pb2.py"


def generate(out_dir: Path) -> Path:
    """Run protoc (from ``grpc_tools``) on ``hil.proto``; returns the generated module's path."""
    from grpc_tools import protoc

    code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out_dir}", str(PROTO)])
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
    return out_dir / "hil_pb2.py"


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) ``hil_pb2.py``."""
    with tempfile.TemporaryDirectory() as tmp:
        text = generate(Path(tmp)).read_text()
    if "--check" in argv:
        same = MODULE.is_file() and MODULE.read_text() == text
        print(f"{MODULE.name} {'matches' if same else 'differs from'} {PROTO.name}")
        return 0 if same else 1
    MODULE.write_text(text)
    print(f"wrote {MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
