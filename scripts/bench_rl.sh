#!/usr/bin/env bash
# The RL benchmarks, end to end (numbers in BENCHMARKS.md). Hours of CPU: run one part at a time.
#   scripts/bench_rl.sh residual [OUT]   BC base on $NDEMOS $TASK demos -> residual (200k steps) -> bundle -> 100-episode eval
#   scripts/bench_rl.sh rlpd [OUT]       rlpd from scratch on the same demonstrations (same loop settings)
#   scripts/bench_rl.sh hopper [OUT]     sac and dsac_t on Hopper-v5, 300k steps, seeds $SEEDS (default "0")
# TASK=lift (default) or peg_insert; NDEMOS: demonstrations (default 10); BASE_STEPS: the base policy's training steps (default 4000);
# SEEDS: the finetune seeds of residual/rlpd/hopper; MINUTES: a wall-clock cap per finetune run;
# ALGO_ARGS: extra finetune settings (e.g. "algo.scale=0.02"), TAG: a suffix for the run folders.
set -euo pipefail
PART=${1:?usage: scripts/bench_rl.sh residual|rlpd|hopper [OUT]}
OUT=${2:-runs/bench_rl}
RL=${RL:-.venv/bin/robot-learning}
SEEDS=${SEEDS:-0}
TASK=${TASK:-lift}
NDEMOS=${NDEMOS:-10}
BASE_STEPS=${BASE_STEPS:-4000}
MINUTES=${MINUTES:-null}   # wall-clock cap per finetune run (null: none)
ALGO_ARGS=${ALGO_ARGS:-}
TAG=${TAG:-}
mkdir -p "$OUT"
LOOP="n_step=3 env_steps=200000 warmup_steps=2000 eval_every=5000 eval_episodes=50 save_every=10000 threads=1"
DEMOS="$OUT/data/${TASK}_state_$NDEMOS"
BASE="$OUT/base_flow_${TASK}$NDEMOS"

demos() {
  [ -d "$DEMOS" ] || $RL collect task=$TASK episodes=$NDEMOS out="$DEMOS"
  # the same episodes (same seeds) with the sparse reward the RL runs use
  [ -d "${DEMOS}_sparse" ] || $RL collect task=$TASK task.reward=sparse episodes=$NDEMOS out="${DEMOS}_sparse"
}

case "$PART" in
  residual)
    demos
    [ -d "$BASE/final" ] || $RL train policy=flow dataset="$DEMOS" out="$BASE" \
      task=$TASK steps=$BASE_STEPS lr=3e-4 'policy.down_dims=[64,128]' threads=1 save_every=500 keep_checkpoints=null \
      eval_every=500 eval_episodes=20
    [ -f "$OUT/eval_base_${TASK}$NDEMOS/eval.json" ] || $RL eval checkpoint="$BASE/final" task=$TASK episodes=100 out="$OUT/eval_base_${TASK}$NDEMOS" threads=1
    for seed in $SEEDS; do
      run="$OUT/residual_${TASK}${NDEMOS}${TAG}_s$seed"
      $RL finetune algo=residual algo.base="$BASE/final" task=$TASK task.reward=sparse \
        demos="${DEMOS}_sparse" $LOOP seed=$seed max_minutes=$MINUTES $ALGO_ARGS out="$run"
      $RL export checkpoint="$run" out="${run}_bundle" overwrite=true
      $RL eval bundle="${run}_bundle" episodes=100 out="$OUT/eval_residual_${TASK}${NDEMOS}${TAG}_s$seed" threads=1
    done
    ;;
  rlpd)
    demos
    for seed in $SEEDS; do
      run="$OUT/rlpd_${TASK}${NDEMOS}${TAG}_s$seed"
      $RL finetune algo=rlpd algo.backup_entropy=false task=$TASK task.reward=sparse \
        demos="${DEMOS}_sparse" $LOOP seed=$seed max_minutes=$MINUTES $ALGO_ARGS out="$run"
      # any checkpoint exports the same way: checkpoint="$run/checkpoints/step_040000"
      $RL export checkpoint="$run" out="${run}_bundle" overwrite=true
      $RL eval bundle="${run}_bundle" task=$TASK task.reward=sparse episodes=100 out="$OUT/eval_rlpd_${TASK}${NDEMOS}${TAG}_s$seed" threads=1
    done
    ;;
  hopper)
    for seed in $SEEDS; do
      for algo in sac dsac_t; do
        $RL finetune algo=$algo task=hopper env_steps=300000 eval_every=10000 eval_episodes=5 threads=1 seed=$seed \
          max_minutes=$MINUTES out="$OUT/hopper_${algo}_s$seed"
        $RL export checkpoint="$OUT/hopper_${algo}_s$seed" out="$OUT/hopper_${algo}_s${seed}_bundle" overwrite=true
        $RL eval bundle="$OUT/hopper_${algo}_s${seed}_bundle" episodes=10 out="$OUT/eval_hopper_${algo}_s$seed" threads=1
      done
    done
    ;;
  *) echo "unknown part $PART (residual, rlpd or hopper)" >&2; exit 2 ;;
esac
