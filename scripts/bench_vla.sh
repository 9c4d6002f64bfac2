#!/usr/bin/env bash
# The lift_color language benchmark (numbers in BENCHMARKS.md): one VLA and one flow policy (which
# cannot read the instruction) trained on the same scripted demonstrations, evaluated on the
# training paraphrases, on held-out paraphrases, and with each colour's instruction fixed.
#   scripts/bench_vla.sh [OUT]   EPISODES (100: eval), DEMOS (200), STEPS (6000), VLA_ARGS, FLOW_ARGS
set -euo pipefail
OUT=${1:-runs/bench_vla}
RL=${RL:-.venv/bin/robot-learning}
EPISODES=${EPISODES:-100}
DEMOS=${DEMOS:-200}
STEPS=${STEPS:-6000}
VLA_ARGS=${VLA_ARGS:-policy.d_model=64 policy.backbone_layers=2 policy.expert_layers=2 policy.text_layers=1}
FLOW_ARGS=${FLOW_ARGS:-policy.down_dims=[64,128]}
mkdir -p "$OUT"
[ -f "$OUT/data/meta/info.json" ] || $RL collect task=lift_color episodes=$DEMOS out="$OUT/data"
for policy in vla flow; do
  args=$VLA_ARGS; [ $policy = flow ] && args=$FLOW_ARGS
  # shellcheck disable=SC2086
  [ -d "$OUT/$policy/final" ] || $RL train policy=$policy dataset="$OUT/data" out="$OUT/$policy" \
    task=lift_color steps=$STEPS lr=1e-3 warmup_steps=200 threads=1 save_every=2000 eval_every=0 $args
  ev() { $RL eval checkpoint="$OUT/$policy/final" task=lift_color episodes=$EPISODES threads=1 "$@"; }
  ev out="$OUT/$policy/eval_train"
  ev task.paraphrases=heldout out="$OUT/$policy/eval_heldout"
  ev instruction="lift the red cube" out="$OUT/$policy/eval_red"
  ev instruction="lift the blue cube" out="$OUT/$policy/eval_blue"
done
