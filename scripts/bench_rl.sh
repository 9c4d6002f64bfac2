#!/usr/bin/env bash
# The issue-6 RL benchmarks, end to end (numbers in BENCHMARKS.md). Hours of CPU: run one part at a time.
#   scripts/bench_rl.sh residual [OUT]   BC base on 10 lift demos -> residual (200k steps) -> bundle -> 100-episode eval
#   scripts/bench_rl.sh rlpd [OUT]       rlpd from scratch on the same demonstrations (same loop settings)
#   scripts/bench_rl.sh hopper [OUT]     sac and dsac_t on Hopper-v5, 300k steps, seeds $SEEDS (default "0")
set -euo pipefail
PART=${1:?usage: scripts/bench_rl.sh residual|rlpd|hopper [OUT]}
OUT=${2:-runs/bench_rl}
RL=${RL:-.venv/bin/robot-learning}
SEEDS=${SEEDS:-0}
MINUTES=${MINUTES:-null}   # wall-clock cap per finetune run (null: none)
mkdir -p "$OUT"
LOOP="n_step=3 env_steps=200000 warmup_steps=2000 eval_every=5000 eval_episodes=50 save_every=10000 threads=1 seed=0"

demos() {
  [ -d "$OUT/data/lift_state_10" ] || $RL collect task=lift episodes=10 out="$OUT/data/lift_state_10"
  # the same 10 episodes (same seeds) with the sparse reward the RL runs use
  [ -d "$OUT/data/lift_state_10_sparse" ] || $RL collect task=lift task.reward=sparse episodes=10 out="$OUT/data/lift_state_10_sparse"
}

case "$PART" in
  residual)
    demos
    [ -d "$OUT/base_flow_lift10/final" ] || $RL train policy=flow dataset="$OUT/data/lift_state_10" out="$OUT/base_flow_lift10" \
      task=lift steps=4000 lr=3e-4 'policy.down_dims=[64,128]' threads=1 save_every=500 keep_checkpoints=null \
      eval_every=500 eval_episodes=20
    $RL eval checkpoint="$OUT/base_flow_lift10/final" task=lift episodes=100 out="$OUT/eval_base" threads=1
    $RL finetune algo=residual algo.base="$OUT/base_flow_lift10/final" task=lift task.reward=sparse \
      demos="$OUT/data/lift_state_10_sparse" $LOOP max_minutes=$MINUTES out="$OUT/residual_lift"
    $RL export checkpoint="$OUT/residual_lift" out="$OUT/residual_lift_bundle" overwrite=true
    $RL eval bundle="$OUT/residual_lift_bundle" episodes=100 out="$OUT/eval_residual" threads=1
    ;;
  rlpd)
    demos
    $RL finetune algo=rlpd algo.backup_entropy=false task=lift task.reward=sparse \
      demos="$OUT/data/lift_state_10_sparse" $LOOP max_minutes=$MINUTES out="$OUT/rlpd_lift"
    # any checkpoint exports the same way: checkpoint="$OUT/rlpd_lift/checkpoints/step_040000"
    $RL export checkpoint="$OUT/rlpd_lift" out="$OUT/rlpd_lift_bundle" overwrite=true
    $RL eval bundle="$OUT/rlpd_lift_bundle" task=lift task.reward=sparse episodes=100 out="$OUT/eval_rlpd" threads=1
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
