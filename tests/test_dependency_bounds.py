"""The declared lower bounds of the core dependencies are the checked ones.

pyproject.toml's ``>=`` bounds must be exactly the versions in scripts/lower-bounds.txt, which
scripts/check_lower_bounds.sh installs together (and runs a subset of the tests with), so a bound
cannot be edited in one place and not the other. torch/torchvision are pinned ``==`` instead.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BOUNDS = ROOT / "scripts" / "lower-bounds.txt"


def declared_lower_bounds(pyproject_text: str) -> dict[str, Version]:
    """name -> X of each ``name>=X`` in [project] dependencies (``==`` pins are left out)."""
    bounds = {}
    for line in tomllib.loads(pyproject_text)["project"]["dependencies"]:
        req = Requirement(line)
        ops = {spec.operator: spec.version for spec in req.specifier}
        assert ops.keys() in ({">="}, {"=="}), f"{line!r}: want one '>=' bound or one '==' pin"
        if ">=" in ops:
            bounds[canonicalize_name(req.name)] = Version(ops[">="])
    return bounds


def checked_lower_bounds(bounds_text: str) -> dict[str, Version]:
    """name -> X of each ``name==X`` line of lower-bounds.txt (comments and blank lines skipped)."""
    bounds: dict[str, Version] = {}
    for raw in bounds_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert m, f"lower-bounds.txt: {raw!r} is not name==version"
        name = canonicalize_name(m.group(1))
        assert name not in bounds, f"lower-bounds.txt names {name} twice"
        bounds[name] = Version(m.group(2))
    return bounds


def mismatches(pyproject_text: str, bounds_text: str) -> list[str]:
    declared = declared_lower_bounds(pyproject_text)
    checked = checked_lower_bounds(bounds_text)
    out = []
    for name in sorted(declared.keys() | checked.keys()):
        if name not in checked:
            out.append(f"{name}>={declared[name]} is declared but not in lower-bounds.txt")
        elif name not in declared:
            out.append(f"{name}=={checked[name]} is checked but has no '>=' bound in pyproject")
        elif declared[name] != checked[name]:
            out.append(f"{name}: pyproject says >={declared[name]}, checked is =={checked[name]}")
    return out


def test_declared_lower_bounds_are_the_checked_ones():
    problems = mismatches((ROOT / "pyproject.toml").read_text(), BOUNDS.read_text())
    assert not problems, "\n".join(problems)


def test_torch_is_pinned_and_every_other_core_dependency_is_checked():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pinned = {
        canonicalize_name(Requirement(d).name) for d in data["project"]["dependencies"] if "==" in d
    }
    assert pinned == {"torch", "torchvision"}
    assert {"numpy", "mujoco", "onnxruntime", "protobuf"} <= checked_lower_bounds(
        BOUNDS.read_text()
    ).keys()


def test_the_checked_mujoco_bound_is_min_mujoco():
    from sim.mujoco_suite.base import MIN_MUJOCO

    assert checked_lower_bounds(BOUNDS.read_text())["mujoco"] == Version(
        ".".join(map(str, MIN_MUJOCO))
    )


def test_the_script_checks_this_file():
    script = (ROOT / "scripts" / "check_lower_bounds.sh").read_text()
    assert 'BOUNDS="$ROOT/scripts/lower-bounds.txt"' in script


@pytest.mark.parametrize(
    "edit, where",
    [
        (lambda p, b: (p.replace('"numpy>=1.26"', '"numpy>=2.0"'), b), "numpy"),
        (lambda p, b: (p, re.sub(r"(?m)^pyarrow==.*$", "pyarrow==16.0.0", b)), "pyarrow"),
        (lambda p, b: (p, re.sub(r"(?m)^rich==.*\n", "", b)), "rich"),
        (lambda p, b: (p, b + "\nextra-package==1.0\n"), "extra-package"),
    ],
)
def test_editing_one_file_and_not_the_other_is_caught(edit, where):
    pyproject, bounds = edit((ROOT / "pyproject.toml").read_text(), BOUNDS.read_text())
    problems = mismatches(pyproject, bounds)
    assert len(problems) == 1 and problems[0].startswith(where), problems
