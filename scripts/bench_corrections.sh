#!/usr/bin/env bash
# Issue 14 benchmark (a): HG-DAgger-style corrections with the simulated operator vs the same
# number of operator frames added as full demonstrations, on lift (numbers in BENCHMARKS.md).
#   scripts/bench_corrections.sh [OUT]      ROUNDS (3), EPISODES per correction round (10), EVAL episodes (100)
# Base: flow, small U-Net, 10 demos (the residual benchmark's base, 30-70 % on lift).
set -euo pipefail
OUT=${1:-runs/bench_corrections}
RL=${RL:-.venv/bin/robot-learning}
PY=${PY:-.venv/bin/python}
ROUNDS=${ROUNDS:-3}
EPISODES=${EPISODES:-10}
EVAL=${EVAL:-100}
WEIGHT=${WEIGHT:-3}
STEPS=${STEPS:-4000}
TRAIN="policy=flow lr=3e-4 policy.down_dims=[64,128] threads=1 steps=$STEPS save_every=$STEPS eval_every=0"
mkdir -p "$OUT"
frames() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
rate() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['success_rate'])" "$1/eval.json"; }

[ -d "$OUT/demos" ] || $RL collect task=lift episodes=10 out="$OUT/demos"
[ -f "$OUT/base/final/config.json" ] || $RL train $TRAIN dataset="$OUT/demos" out="$OUT/base"
[ -f "$OUT/eval_base/eval.json" ] || $RL eval checkpoint="$OUT/base/final" task=lift episodes=$EVAL out="$OUT/eval_base" threads=1
echo "round 0: base $(rate "$OUT/eval_base")" | tee "$OUT/summary.txt"

corr_policy="$OUT/base/final"
corr_sets="$OUT/demos"
operator_frames=0
base_demo_frames=$(frames "$OUT/demos/collect.json" frames)
for r in $(seq 1 "$ROUNDS"); do
  # corrections: the current corrected policy drives, the expert operator takes over when it drifts
  [ -f "$OUT/corr_$r/teleop.json" ] || $RL teleop task=lift device=expert policy="$corr_policy" \
    episodes=$EPISODES seed=$((1000 * r)) out="$OUT/corr_$r"
  operator_frames=$((operator_frames + $(frames "$OUT/corr_$r/teleop.json" intervention_frames)))
  corr_sets="$corr_sets,$OUT/corr_$r"
  [ -f "$OUT/train_corr_$r/final/config.json" ] || $RL train $TRAIN "dataset=[$corr_sets]" \
    intervention_weight=$WEIGHT out="$OUT/train_corr_$r"
  [ -f "$OUT/eval_corr_$r/eval.json" ] || $RL eval checkpoint="$OUT/train_corr_$r/final" task=lift \
    episodes=$EVAL out="$OUT/eval_corr_$r" threads=1
  corr_policy="$OUT/train_corr_$r/final"
  # the same operator frames as whole demonstrations: extra expert episodes until they hold as many frames
  $PY - "$OUT" "$operator_frames" "$base_demo_frames" <<'PYEOF'
import json, subprocess, sys
out, wanted, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import pathlib
demos = pathlib.Path(out) / "demos_plus"
have = json.load(open(demos / "collect.json"))["frames"] - base if (demos / "collect.json").exists() else 0
episodes = json.load(open(demos / "collect.json"))["episodes"] if (demos / "collect.json").exists() else 10
while have < wanted:
    episodes += 1
    subprocess.run([".venv/bin/robot-learning", "collect", "task=lift", f"episodes={episodes}", f"out={demos}",
                    "resume=true"], check=True, capture_output=True)
    have = json.load(open(demos / "collect.json"))["frames"] - base
print(f"demos_plus: {episodes} episodes, {have} frames beyond the base demos (operator frames {wanted})")
PYEOF
  [ -f "$OUT/train_demos_$r/final/config.json" ] || $RL train $TRAIN dataset="$OUT/demos_plus" out="$OUT/train_demos_$r"
  [ -f "$OUT/eval_demos_$r/eval.json" ] || $RL eval checkpoint="$OUT/train_demos_$r/final" task=lift \
    episodes=$EVAL out="$OUT/eval_demos_$r" threads=1
  echo "round $r: operator frames $operator_frames; corrections $(rate "$OUT/eval_corr_$r"); same frames as demos $(rate "$OUT/eval_demos_$r")" | tee -a "$OUT/summary.txt"
done
