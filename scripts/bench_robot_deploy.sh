#!/usr/bin/env bash
# The ros2_control deploy benchmark (numbers in BENCHMARKS.md): a lift flow policy, evaluated in
# process, then deployed over ROS 2 on robot=ros2_control with the fake MuJoCo arm (the driver's IK
# and joint trajectories in the loop) and on robot=sim, same seeds.
#   scripts/bench_robot_deploy.sh [OUT]      EPISODES (100), STEPS (3500: the flow training steps)
set -euo pipefail
OUT=${1:-runs/bench_robot_deploy}
RL=${RL:-.venv/bin/robot-learning}
EPISODES=${EPISODES:-100}
STEPS=${STEPS:-3500}
mkdir -p "$OUT"
[ -d "$OUT/train/train/final" ] || $RL bench train preset=lift_state policy=flow steps=$STEPS threads=1 \
  lr=3e-4 'policy.down_dims=[64,128,256]' eval_episodes=20 data_root="$OUT/data" out="$OUT/train"
[ -d "$OUT/bundle" ] || $RL export checkpoint="$OUT/train/train/final" out="$OUT/bundle"
$RL eval bundle="$OUT/bundle" task=lift episodes=$EPISODES runtime=onnxruntime threads=1 num_envs=1 out="$OUT/eval"
$RL deploy bundle="$OUT/bundle" robot=ros2_control robot.fake=true task=lift episodes=$EPISODES \
  runtime=onnxruntime threads=1 realtime=false episode_timeout_s=60 out="$OUT/deploy_ros2_control"
$RL deploy bundle="$OUT/bundle" robot=sim task=lift episodes=$EPISODES \
  runtime=onnxruntime threads=1 realtime=false episode_timeout_s=60 out="$OUT/deploy_sim"
