#!/usr/bin/env bash
# HIL-SERL benchmarks (numbers in BENCHMARKS.md). Hours of CPU: run one part at a time.
#   scripts/bench_hil.sh hil [OUT]     hil_serl with the simulated operator (device=expert), env reward
#   scripts/bench_hil.sh rlif [OUT]    the same with algo.reward=rlif (-1 on each intervention, no task reward)
#   scripts/bench_hil.sh noop [OUT]    the same learner/actors with nobody intervening (algo.device=null): RLPD
# TASK (peg_insert), NDEMOS (80, the residual benchmark's), STEPS (30000), MINUTES (null), SEED (0),
# SMOOTHING (0.25): the simulated operator's drift_smoothing (1: judge every exploring action alone),
# ARGS: extra finetune settings; TASK_ARGS: task settings for every command (e.g. task.hold_action.gripper=1
# keeps the peg_insert gripper closed, as HIL-SERL's insertion setups do). Demonstrations are collected with the sparse reward the runs use.
set -euo pipefail
PART=${1:?usage: scripts/bench_hil.sh hil|rlif|noop [OUT]}
OUT=${2:-runs/bench_hil}
RL=${RL:-.venv/bin/robot-learning}
TASK=${TASK:-peg_insert}
NDEMOS=${NDEMOS:-80}
STEPS=${STEPS:-30000}
MINUTES=${MINUTES:-null}
SEED=${SEED:-0}
ARGS=${ARGS:-}
TASK_ARGS=${TASK_ARGS:-}
SMOOTHING=${SMOOTHING:-0.25}
DEMOS="$OUT/data/${TASK}_sparse_$NDEMOS"
mkdir -p "$OUT"
[ -d "$DEMOS" ] || $RL collect task=$TASK task.reward=sparse $TASK_ARGS episodes=$NDEMOS out="$DEMOS"
case "$PART" in
  hil) EXTRA="algo.device=expert +algo.device_options.drift_smoothing=$SMOOTHING" ;;
  rlif) EXTRA="algo.device=expert +algo.device_options.drift_smoothing=$SMOOTHING algo.reward=rlif" ;;
  noop) EXTRA="algo.device=null" ;;
  *) echo "unknown part $PART (hil, rlif or noop)" >&2; exit 2 ;;
esac
run="$OUT/${PART}_${TASK}${NDEMOS}${TAG:-}_s$SEED"
$RL finetune algo=hil_serl task=$TASK task.reward=sparse $TASK_ARGS demos="$DEMOS" n_step=3 env_steps=$STEPS \
  warmup_steps=2000 eval_every=5000 eval_episodes=50 save_every=5000 threads=1 seed=$SEED \
  max_minutes=$MINUTES $EXTRA $ARGS out="$run"
$RL export checkpoint="$run" out="${run}_bundle" overwrite=true
$RL eval bundle="${run}_bundle" task=$TASK task.reward=sparse $TASK_ARGS episodes=100 out="$OUT/eval_${PART}_${TASK}${NDEMOS}${TAG:-}_s$SEED" threads=1
