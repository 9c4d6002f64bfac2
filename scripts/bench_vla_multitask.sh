#!/usr/bin/env bash
# Multi-task language benchmark (numbers in BENCHMARKS.md): one VLA trained on the demonstrations
# of several arm tasks together (environment state in shared xyz slots, task.env_state_slots=2)
# against one flow policy per task trained on the same demonstrations (each task's own layout;
# same seeds, so the same episodes) for the same number of steps.
#   scripts/bench_vla_multitask.sh [OUT] [vla|flow|all]
#   env: TASKS ("lift reach lift_color"), EPISODES (100: eval), DEMOS (200), STEPS (6000), VLA_ARGS, FLOW_ARGS
set -euo pipefail
OUT=${1:-runs/bench_vla_multitask}
WHICH=${2:-all}
RL=${RL:-.venv/bin/robot-learning}
TASKS=${TASKS:-lift reach lift_color}
EPISODES=${EPISODES:-100}
DEMOS=${DEMOS:-200}
STEPS=${STEPS:-6000}
SLOTS=2
VLA_ARGS=${VLA_ARGS:-policy.d_model=64 policy.backbone_layers=2 policy.expert_layers=2 policy.text_layers=1}
FLOW_ARGS=${FLOW_ARGS:-policy.down_dims=[64,128]}
COMMON="steps=$STEPS lr=1e-3 warmup_steps=200 threads=1 save_every=2000 eval_every=0"
mkdir -p "$OUT"
ev() { $RL eval threads=1 episodes=$EPISODES "$@"; }

if [ "$WHICH" != flow ]; then
  dirs=()
  for t in $TASKS; do
    d="$OUT/data_slots/$t"
    [ -f "$d/meta/info.json" ] || $RL collect task=$t task.env_state_slots=$SLOTS episodes=$DEMOS out="$d"
    dirs+=("$d")
  done
  list=$(IFS=,; echo "${dirs[*]}")
  # shellcheck disable=SC2086
  [ -d "$OUT/vla/final" ] || $RL train policy=vla "dataset=[$list]" out="$OUT/vla" $COMMON $VLA_ARGS
  for t in $TASKS; do
    ck=(checkpoint="$OUT/vla/final" task=$t task.env_state_slots=$SLOTS)
    [ -f "$OUT/vla/eval_$t/eval.json" ] || ev "${ck[@]}" out="$OUT/vla/eval_$t"
    [ -f "$OUT/vla/eval_${t}_heldout/eval.json" ] || ev "${ck[@]}" task.paraphrases=heldout out="$OUT/vla/eval_${t}_heldout"
  done
fi
if [ "$WHICH" != vla ]; then
  for t in $TASKS; do
    d="$OUT/data/$t"
    [ -f "$d/meta/info.json" ] || $RL collect task=$t episodes=$DEMOS out="$d"
    # shellcheck disable=SC2086
    [ -d "$OUT/flow_$t/final" ] || $RL train policy=flow dataset="$d" out="$OUT/flow_$t" $COMMON $FLOW_ARGS
    [ -f "$OUT/flow_$t/eval/eval.json" ] || ev checkpoint="$OUT/flow_$t/final" task=$t out="$OUT/flow_$t/eval"
  done
fi
