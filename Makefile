# Two entry points on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYS_STAMP := $(VENV)/.system-deps
export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa
DEMO_DIR ?= runs/demo

.PHONY: demo test bench bench-inference bench-rl lint system-deps install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Debian packages: OSMesa for CPU offscreen MuJoCo rendering; chromium + chromium-driver for the
# browser teleop tests (device=browser). Re-checked when this Makefile changes; installed ones skip.
$(SYS_STAMP): Makefile | $(BIN)/python
	@if ! dpkg -s libosmesa6 chromium chromium-driver >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libosmesa6 chromium chromium-driver; \
	fi
	touch $@

system-deps: $(SYS_STAMP)

$(STAMP): pyproject.toml examples/point_suite/pyproject.toml | $(SYS_STAMP)
	$(BIN)/pip install -q -e ".[dev,distributed,external,ros,teleop-browser,vla]"
	# the example plugin (an external suite + an expert by entry point): tests/test_plugins.py
	$(BIN)/pip install -q -e examples/point_suite
	touch $@

install: $(STAMP)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/robot-learning collect task=lift expert=scripted episodes=40 out=$(DEMO_DIR)/lift_state
	$(BIN)/robot-learning dataset validate $(DEMO_DIR)/lift_state
	$(BIN)/robot-learning collect task=lift obs=pixels expert=scripted episodes=2 out=$(DEMO_DIR)/lift_pixels
	$(BIN)/robot-learning dataset validate $(DEMO_DIR)/lift_pixels
	$(BIN)/robot-learning dataset info $(DEMO_DIR)/lift_pixels
	$(BIN)/robot-learning dataset visualize $(DEMO_DIR)/lift_pixels out=$(DEMO_DIR)/lift_pixels_sheet.png
	# a small flow policy trained for a few minutes on 2 CPU cores, then 20 evaluation episodes
	$(BIN)/robot-learning train policy=flow dataset=$(DEMO_DIR)/lift_state out=$(DEMO_DIR)/flow_lift \
		steps=2000 lr=1e-3 warmup_steps=100 threads=1 policy.down_dims=[64,128] save_every=1000 eval_every=0
	$(BIN)/robot-learning eval checkpoint=$(DEMO_DIR)/flow_lift/final task=lift episodes=20
	# export to a bundle (ONNX graph + policy.json) and evaluate it with onnxruntime on the same seeds
	$(BIN)/robot-learning export checkpoint=$(DEMO_DIR)/flow_lift/final out=$(DEMO_DIR)/flow_lift_bundle
	$(BIN)/robot-learning eval bundle=$(DEMO_DIR)/flow_lift_bundle runtime=onnxruntime task=lift episodes=20
	@$(BIN)/python -c "import json; \
		c = json.load(open('$(DEMO_DIR)/flow_lift/final/eval.json')); b = json.load(open('$(DEMO_DIR)/flow_lift_bundle/eval.json')); \
		print(f\"demo: flow policy on lift, success rate {c['success_rate']:.0%} over {c['episodes']} episodes (95% CI {c['success_ci95'][0]:.0%}-{c['success_ci95'][1]:.0%}) with torch; \
		exported bundle {b['success_rate']:.0%} with {b['runtime']} at {b['inference_ms_per_call']:.1f} ms per chunk (torch {c['inference_ms_per_call']:.1f} ms)\")"
	# deploy the bundle over ROS 2: sim_robot_node + policy_node as separate processes, episodes over DDS
	$(BIN)/robot-learning deploy bundle=$(DEMO_DIR)/flow_lift_bundle robot=sim task=lift episodes=5 out=$(DEMO_DIR)/deploy
	@$(BIN)/python -c "import json; d = json.load(open('$(DEMO_DIR)/deploy/deploy.json')); \
		print('$(DEMO_DIR)/deploy/deploy.json:'); \
		[print(f'  {k}: {json.dumps(v)}') for k, v in d.items() if k not in ('per_episode', 'config', 'policy_node')]"
	# the same bundle on robot=ros2_control against the fake arm (the MuJoCo Panda behind the standard
	# controllers' topics): IK from the robot description, joint trajectories over DDS
	$(BIN)/robot-learning deploy bundle=$(DEMO_DIR)/flow_lift_bundle robot=ros2_control robot.fake=true task=lift \
		episodes=3 realtime=false out=$(DEMO_DIR)/deploy_ros2_control

bench: install
	$(BIN)/robot-learning bench sim out=runs/bench_sim

# exported-bundle latency (torch vs onnxruntime, batch 1) of the imitation benchmark's model sizes
bench-inference: install
	$(BIN)/robot-learning bench inference out=runs/bench_inference

# issue-6 RL benchmarks: residual on lift, rlpd from scratch, sac/dsac_t on Hopper (CPU-hours; scripts/bench_rl.sh)
bench-rl: install
	RL=$(BIN)/robot-learning scripts/bench_rl.sh residual runs/bench_rl
	RL=$(BIN)/robot-learning scripts/bench_rl.sh rlpd runs/bench_rl
	RL=$(BIN)/robot-learning scripts/bench_rl.sh hopper runs/bench_rl

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs
