#!/usr/bin/env bash
# Check this project's MuJoCo tasks against one mujoco release from PyPI (default: 3.3.6, the lowest
# that works; 3.3.5 and older fail with "body mass is too small ... Element name 'link0'").
# It installs mujoco==VERSION (--no-deps) into a temp dir and builds a throwaway venv whose
# site-packages symlinks every package of .venv except mujoco, then runs the MuJoCo tests with it.
# A plain PYTHONPATH override is not enough: mujoco's __init__ calls pkgutil.extend_path, so .venv's
# own mujoco/rendering package leaks in (mujoco 3.8.0 then fails with a bogus renderer error).
# Usage: scripts/check_min_mujoco.sh [VERSION]     (needs PyPI; the tests take ~15-30 s)
set -euo pipefail
V="${1:-3.3.6}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
SP="$VENV/lib/python3.11/site-packages"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
PKGS=("mujoco==$V")  # mujoco 4.x is split into mujoco + mujoco-core + mujoco-studio
if [[ ${V%%.*} -ge 4 ]]; then PKGS+=("mujoco-core==$V" "mujoco-studio==$V"); fi
"$VENV/bin/pip" install -q --no-deps --target "$TMP/mj" "${PKGS[@]}"
"$(readlink -f "$VENV/bin/python")" -m venv --without-pip "$TMP/env"
ESP="$("$TMP/env/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
for f in "$SP"/* "$TMP/mj"/*; do
  case "$f" in "$SP"/mujoco | "$SP"/mujoco[-_]*) ;; *) ln -s "$f" "$ESP/" ;; esac
done
cd "$ROOT"
PY="$TMP/env/bin/python"
"$PY" -c 'import mujoco; print("mujoco", mujoco.__version__, "from", mujoco.__file__)'
export MUJOCO_GL=osmesa
"$PY" -m pytest -q -p no:cacheprovider tests/test_mujoco_arm.py tests/test_pusht.py -x
"$PY" -m pytest -q -p no:cacheprovider tests/test_task_registry.py
"$PY" -m pytest -q -p no:cacheprovider tests/test_ros2_control.py -k urdf
