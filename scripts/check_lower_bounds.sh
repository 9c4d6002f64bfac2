#!/usr/bin/env bash
# Check that the declared lower bounds of the core dependencies are true: install EVERY version in
# scripts/lower-bounds.txt (the single source of the checked bounds; pyproject's ">=" bounds must
# match it, tests/test_dependency_bounds.py checks that) at once, then run a representative subset
# of the tests with them: datasets, a short flow training + eval, ONNX export with parity, hydra
# configs, the gRPC HIL transport, the task registry, PyBullet/MuJoCo/PushT tasks, RL curves.
# The pinned versions are installed --no-deps into a temp dir and a throwaway venv symlinks every
# other entry of .venv's site-packages. The entries of the replaced distributions are found from
# their RECORD files (so onnx vs onnxruntime/onnxscript/onnxslim, pillow -> PIL, hydra-core ->
# hydra, grpcio -> grpc, protobuf -> google/protobuf + google/_upb are matched exactly); a directory
# shared with another distribution (a namespace such as google/) is rebuilt as a real directory
# holding links to the other distribution's part plus the new version's part. A plain PYTHONPATH
# override is not enough: namespace packages (google, mujoco) would still pick up .venv's files.
# The project itself is imported from this checkout (ROOT), not from .venv's editable finder.
#
# Usage: scripts/check_lower_bounds.sh [name==version ...] [-- pytest args]
#   name==version   overrides one line of lower-bounds.txt (e.g. numpy==2.4.6 to swap one package
#                   back to a newer release while bisecting); "-- ARGS" runs pytest ARGS instead of
#                   the default subset. KEEP_ENV=1 keeps the throwaway venv (path printed) for
#                   poking at it. Needs PyPI (or a pip cache); ~4-5 min on 2 CPU cores (3 min of tests).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
SP="$VENV/lib/python3.11/site-packages"
BOUNDS="$ROOT/scripts/lower-bounds.txt"
TMP="$(mktemp -d)"
if [[ -n "${KEEP_ENV:-}" ]]; then echo "env kept in $TMP"; else trap 'rm -rf "$TMP"' EXIT; fi

# name==version lines of the bounds file, then command-line overrides (same name replaces)
declare -A PIN=()
declare -a ORDER=()
add_pin() {
  local spec="${1// /}" name
  [[ "$spec" =~ ^([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)$ ]] || { echo "bad pin: '$1'" >&2; exit 2; }
  name="$(tr 'A-Z_.' 'a-z--' <<<"${BASH_REMATCH[1]}")"
  [[ -v "PIN[$name]" ]] || ORDER+=("$name")
  PIN[$name]="${BASH_REMATCH[2]}"
}
while IFS= read -r line; do
  line="${line%%#*}"; line="${line//[[:space:]]/}"
  if [[ -n "$line" ]]; then add_pin "$line"; fi
done <"$BOUNDS"
PYTEST_ARGS=()
while (($#)); do
  if [[ "$1" == -- ]]; then shift; PYTEST_ARGS=("$@"); break; fi
  add_pin "$1"; shift
done
REQS=()
for n in "${ORDER[@]}"; do REQS+=("$n==${PIN[$n]}"); done
# mujoco 4.x is split into mujoco + mujoco-core + mujoco-studio (all sharing the mujoco/ dir)
DROP=()
if [[ -v "PIN[mujoco]" ]]; then
  if [[ ${PIN[mujoco]%%.*} -ge 4 ]]; then
    REQS+=("mujoco-core==${PIN[mujoco]}" "mujoco-studio==${PIN[mujoco]}")
  else
    DROP+=(mujoco-core mujoco-studio)
  fi
fi
echo "installing: ${REQS[*]}"
"$VENV/bin/pip" install -q --no-deps --only-binary=:all: --target "$TMP/lb" "${REQS[@]}" 2>&1 |
  { grep -v "is ignored: it is neither a file nor a directory" || true; }
rm -rf "$TMP/lb/bin"  # console scripts of the pinned packages; not needed by the tests

"$(readlink -f "$VENV/bin/python")" -m venv --without-pip "$TMP/env"
ESP="$("$TMP/env/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
# the ROS wheels find their shared libraries under sys.prefix/lib and share/ (ros_wheels_bootstrapper)
for f in "$VENV"/lib/* "$VENV"/share "$VENV"/tools; do
  if [[ -e "$f" && "$f" != "$VENV/lib/python3.11" ]]; then ln -s "$f" "$TMP/env/${f#"$VENV"/}"; fi
done
"$VENV/bin/python" - "$SP" "$TMP/lb" "$ESP" "$ROOT" "${ORDER[@]}" "${DROP[@]}" <<'EOF'
"""Link .venv's site-packages minus the replaced distributions' files, plus the pinned ones."""
import os
import re
import sys
from importlib.metadata import distributions
from pathlib import Path

sp, new, esp, root = (Path(p) for p in sys.argv[1:5])
replaced = {re.sub(r"[-_.]+", "-", n).lower() for n in sys.argv[5:]}
owned: set[Path] = set()  # files (relative to sp) of the replaced distributions
found = set()
for dist in distributions(path=[str(sp)]):
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    if name in replaced:
        found.add(name)
        owned |= {Path(os.path.normpath(f)) for f in dist.files or () if not str(f).startswith("..")}
missing = replaced - found - {"mujoco-core", "mujoco-studio"}
if missing:
    sys.exit(f"not installed in .venv, nothing to replace: {sorted(missing)}")


def is_owned(rel: Path) -> bool:
    """A file of a replaced distribution (a __pycache__ goes with its package)."""
    return rel in owned or "__pycache__" in rel.parts


def all_files(rel: Path):
    p = sp / rel
    if not p.is_dir() or p.is_symlink():
        yield rel
        return
    for dirpath, _, files in os.walk(p):
        for f in files:
            yield Path(dirpath, f).relative_to(sp)


owned_dirs = {q for f in owned for q in f.parents}


def link_venv(rel: Path) -> None:
    if rel not in owned_dirs and rel not in owned:
        (esp / rel).symlink_to(sp / rel)  # nothing of it is replaced
        return
    files = list(all_files(rel))
    if all(is_owned(f) for f in files):
        return  # wholly a replaced distribution's
    (esp / rel).mkdir()  # shared (e.g. the google/ namespace): keep the others' part
    print(f"{rel}/: shared with a kept distribution, rebuilt as a directory of links")
    for child in sorted((sp / rel).iterdir()):
        link_venv(rel / child.name)


def link_new(src: Path, dst: Path) -> None:
    if not os.path.lexists(dst):
        dst.symlink_to(src)
    elif dst.is_dir() and not dst.is_symlink() and src.is_dir():
        for child in sorted(src.iterdir()):
            link_new(child, dst / child.name)
    else:
        sys.exit(f"{src.name}: installed by a pinned package and by a kept .venv distribution")


editable = re.compile(r"__editable__[._]+robot_learning")
for entry in sorted(sp.iterdir()):
    if not editable.match(entry.name):
        link_venv(Path(entry.name))
for entry in sorted(new.iterdir()):
    link_new(entry, esp / entry.name)
(esp / "_robot_learning_checkout.pth").write_text(f"{root}\n")  # this checkout, not the editable
EOF

cd "$ROOT"
PY="$TMP/env/bin/python"
export MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa
# the imported versions and files: each must be the pinned release from the temp dir
"$PY" - "$TMP/lb" "${REQS[@]}" <<'EOF'
import importlib
import importlib.metadata as md
import os
import sys

# .venv's other users of numpy first (torchvision after mujoco+osmesa crashes in triton's import,
# with .venv's own versions too)
for modname in ("torch", "torchvision", "cv2"):
    try:
        mod = importlib.import_module(modname)
        print(f"{modname:12} (.venv)    __version__={mod.__version__}")
    except Exception as exc:  # reported; the tests decide whether it matters
        print(f"{modname:12} (.venv)    import failed: {exc!r}")
MODULES = {"hydra-core": "hydra", "pillow": "PIL", "grpcio": "grpc", "protobuf": "google.protobuf",
           "mujoco-core": None, "mujoco-studio": None}
new = os.path.realpath(sys.argv[1])
bad = []
for req in sys.argv[2:]:
    name, want = req.split("==")
    modname = MODULES.get(name, name.replace("-", "_"))
    if modname is None:
        continue
    mod = importlib.import_module(modname)
    meta = md.version(name)
    where = os.path.realpath(mod.__file__)
    print(f"{name:12} {meta:10} __version__={getattr(mod, '__version__', '-')!s:10} {where}")
    if meta != want or not where.startswith(new + os.sep):
        bad.append(f"{name}: want {want} from {new}, got {meta} from {where}")
sys.exit("\n".join(bad) if bad else None)
EOF

if ((${#PYTEST_ARGS[@]})); then
  "$PY" -m pytest -q -p no:cacheprovider "${PYTEST_ARGS[@]}"
  exit
fi
# ~3 min: dataset write/read/validate (pyarrow, av, pillow); diffusion + flow export with ONNX
# parity (onnx, onnxscript, onnxslim, onnxruntime, diffusers); a short flow training with eval
# through the CLI (hydra, omegaconf, rich, safetensors, tensorboard); HIL gRPC (grpcio, protobuf);
# the task registry, PyBullet, MuJoCo and PushT (shapely) tasks; an RL run's curves (matplotlib).
T=tests/test_training.py
"$PY" -m pytest -q -p no:cacheprovider --durations=5 \
  tests/test_datasets.py tests/test_config.py tests/test_hil_transport.py \
  tests/test_task_registry.py tests/test_pybullet.py tests/test_mujoco_arm.py tests/test_pusht.py \
  tests/test_policies.py tests/test_export.py \
  $T::test_flow_policy_learns_reach $T::test_resume_after_crash_matches_uninterrupted_run \
  $T::test_train_cli_with_task_evaluates_and_rejects_unknown_fields \
  tests/test_rl.py::test_finetune_cli_runs_writes_outputs_and_refuses_to_overwrite \
  -k "not overfits and not meanflow and not torch_runtime_needs"
