"""HIL-SERL: the buffers' data flow, and learner + actors over loopback (local run, kills, restarts)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robot_learning.features import Feature, FeatureSpec
from robot_learning.hil.messages import Transition
from robot_learning.hil.storage import INTERVENTION_STREAM, HilStorage

TOKEN = "test-token-0123456789"
TINY = ["algo.hidden=[32,32]", "algo.num_q=2", "batch_size=64", "threads=1"]


def _spec() -> FeatureSpec:
    return FeatureSpec(
        {
            "observation.state": Feature("float32", (2,)),
            "action": Feature(
                "float32", (1,), low=(-1.0,), high=(1.0,), control_mode="ee_delta_pos"
            ),
        }
    )


def _t(
    step: int, episode: int = 0, intervening: bool = False, start: bool = False, **kw
) -> Transition:
    return Transition(
        observation={"observation.state": np.array([episode, step], np.float32)},
        next_observation={"observation.state": np.array([episode, step + 1], np.float32)},
        action=np.array([0.5 if intervening else -0.5], np.float32),
        policy_action=np.array([-0.5], np.float32),
        is_intervention=intervening,
        intervention_start=start,
        source="human" if intervening else "policy",
        env_reward=float(step),
        episode=episode,
        step=step,
        **kw,
    )


def _episode(storage: HilStorage, actor: str = "a") -> None:
    """10 steps: policy 0-4, operator 5-7 (starting at 5), policy 8-9 (terminated)."""
    for s in range(10):
        storage.add(actor, _t(s, intervening=5 <= s <= 7, start=s == 5, terminated=s == 9))


def test_interventions_land_in_both_buffers_and_the_mix_holds():
    storage = HilStorage(_spec(), ["observation.state"], online_rows=100, max_actors=2)
    _episode(storage)
    assert len(storage.online) == 10 and len(storage.offline) == 3
    assert storage.interventions == 1 and storage.intervention_steps == 3
    seg = storage.offline
    rows = np.flatnonzero(seg.has_action[:, INTERVENTION_STREAM])
    np.testing.assert_array_equal(
        seg.obs["observation.state"][rows, INTERVENTION_STREAM][:, 1], [5, 6, 7]
    )
    assert (seg.action[rows, INTERVENTION_STREAM] == 0.5).all()
    # the segment ends where the operator handed back: a truncation bootstrapping from step 8's observation
    gathered = seg.gather(rows[-1:], np.array([INTERVENTION_STREAM]), n_step=3, gamma=0.9)
    assert gathered["steps"][0] == 1 and gathered["next_obs"]["observation.state"][0, 1] == 8
    batch = storage.sample(64, np.random.default_rng(0), n_step=1, gamma=0.99)
    assert batch["is_demo"].sum() == 32
    assert (batch["action"][batch["is_demo"]] == 0.5).all()  # offline half: operator actions only
    assert set(np.unique(batch["action"][~batch["is_demo"]])) <= {0.5, -0.5}


def test_online_only_until_there_is_offline_data():
    storage = HilStorage(_spec(), ["observation.state"], online_rows=100, max_actors=2)
    for s in range(4):
        storage.add("a", _t(s))
    assert len(storage.offline) == 0
    assert not storage.sample(16, np.random.default_rng(0), 1, 0.99)["is_demo"].any()


def test_rlif_penalises_the_step_into_each_intervention_and_drops_task_reward():
    storage = HilStorage(
        _spec(), ["observation.state"], online_rows=100, max_actors=2, reward="rlif"
    )
    _episode(storage)
    rows = np.flatnonzero(storage.online.has_action[:, 0])
    rewards = storage.online.reward[rows, 0]
    np.testing.assert_array_equal(rewards, [0, 0, 0, 0, -1, 0, 0, 0, 0, 0])
    env = HilStorage(_spec(), ["observation.state"], online_rows=100, max_actors=2)
    _episode(env)
    np.testing.assert_array_equal(env.online.reward[rows, 0], np.arange(10))


def test_a_gap_in_an_actors_steps_ends_its_episode():
    storage = HilStorage(_spec(), ["observation.state"], online_rows=100, max_actors=2)
    storage.add("a", _t(0))
    storage.add("a", _t(1))
    storage.add("a", _t(5))  # steps 2-4 never arrived (a lost batch)
    storage.add("b", _t(0, episode=3))
    assert len(storage.online) == 4
    first = storage.online.gather(np.array([1]), np.array([0]), n_step=3, gamma=0.9)
    assert first["steps"][0] == 1 and first["next_obs"]["observation.state"][0, 1] == 2
    assert storage.actors["b"].stream == 1


def test_storage_state_round_trips_for_resume():
    storage = HilStorage(_spec(), ["observation.state"], online_rows=50, max_actors=2)
    _episode(storage)
    storage.add("b", _t(0, episode=1))
    meta, arrays = storage.state_dict()
    restored = HilStorage(_spec(), ["observation.state"], online_rows=50, max_actors=2)
    restored.load_state_dict(json.loads(json.dumps(meta)), arrays)
    assert (restored.env_steps, restored.interventions, restored.intervention_steps) == (11, 1, 3)
    assert {k: v.stream for k, v in restored.actors.items()} == {"a": 0, "b": 1}
    a = storage.sample(32, np.random.default_rng(1), 3, 0.9)
    b = restored.sample(32, np.random.default_rng(1), 3, 0.9)
    for key in ("action", "reward", "discount", "is_demo"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not restored.online.open.any()  # running episodes end at the restart


# ----------------------------------------------------------------------------- processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args: list[str], log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ROBOT_LEARNING_HIL_TOKEN": TOKEN,
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "osmesa"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "robot_learning.cli", "-v", *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_for_text(path: Path, text: str, count: int, timeout_s: float, procs) -> None:
    """Wait until ``text`` appears ``count`` times in ``path`` (a process log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if " ".join(path.read_text(errors="replace").split()).count(text) >= count:
            return
        if any(p.poll() is not None for p in procs):
            raise AssertionError(f"a process exited while waiting for {text!r} in {path}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear {count} times in {path} within {timeout_s} s")


class Observer:
    """Reads the learner's received step count like an actor would (Hello + empty pushes)."""

    def __init__(self, address: str) -> None:
        from robot_learning.hil.transport import LearnerClient, Security

        self.client = LearnerClient(address, Security(token=TOKEN), timeout_s=2)
        self.sequence = 0

    def env_steps(self) -> int | None:
        import grpc

        from robot_learning.envs import make_env
        from robot_learning.hil.contract import HilContract
        from robot_learning.hil.proto import hil_pb2 as pb
        from robot_learning.hil.transport import PROTOCOL_VERSION

        c = HilContract.from_spec(make_env("reach").features, (32, 32))
        try:
            self.client.call(
                "Hello",
                pb.HelloRequest(
                    protocol_version=PROTOCOL_VERSION,
                    actor_id="observer",
                    spec_sha256=c.spec_hash,
                    arch_sha256=c.arch_hash,
                ),
            )
            self.sequence += 1
            return self.client.call(
                "PushTransitions", pb.TransitionBatch(actor_id="observer", sequence=self.sequence)
            ).env_steps
        except grpc.RpcError:
            return None

    def wait_for(self, steps: int, timeout_s: float, procs=()) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in procs:
                assert p.poll() is None, f"process {p.args} exited with {p.returncode}"
            got = self.env_steps()
            if got is not None and got >= steps:
                return got
            time.sleep(0.5)
        raise AssertionError(
            f"the learner did not reach {steps} env steps in {timeout_s} s (last {got})"
        )


def test_local_learner_and_two_actors_complete(tmp_path):
    """``finetune algo=hil_serl``: learner + 2 actor processes over loopback, with the simulated operator."""
    from robot_learning.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "finetune",
            "algo=hil_serl",
            "task=reach",
            "task.reward=sparse",
            f"out={out}",
            "env_steps=600",
            "warmup_steps=100",
            "eval_every=0",
            "eval_episodes=3",
            "save_every=0",
            "algo.publish_every=5",
            *TINY,
        ]
    )
    assert code == 0
    hil = json.loads((out / "hil.json").read_text())
    assert hil["env_steps"] == 600 and hil["actors"] == 2
    assert hil["actor_exit_codes"] == {"actor-0": 0, "actor-1": 0}
    assert hil["interventions"] > 0 and 0 < hil["intervention_rate"] <= 1
    assert hil["offline_transitions"] == hil["intervention_steps"] > 0
    assert hil["policy_versions"] > 2 and hil["updates"] > 0
    assert {"success_rate", "return", "env_steps"} <= set(hil["final_eval"])
    for i in range(2):
        actor = json.loads((out / "actors" / f"actor_actor-{i}.json").read_text())
        assert actor["stopped"] == "learner" and actor["episodes"] > 0
        assert len(actor["versions"]) > 1 and actor["versions"] == sorted(actor["versions"])
    assert (out / "hil_curve.png").is_file() and (out / "learning_curve.png").is_file()
    assert (
        TOKEN
        not in (out / "hil_transport.json").read_text() + (out / "finetune_config.json").read_text()
    )
    from robot_learning.cli import main as cli

    assert cli(["export", f"checkpoint={out}", f"out={tmp_path / 'bundle'}"]) == 0
    assert cli(["eval", f"bundle={tmp_path / 'bundle'}", "episodes=2", "threads=1"]) == 0


def test_actors_survive_kills_and_find_a_restarted_learner(tmp_path):
    port = _free_port()
    address = f"127.0.0.1:{port}"
    run = tmp_path / "learner"
    learner_args = [
        "hil",
        "learner",
        "task=reach",
        "task.reward=sparse",
        f"out={run}",
        f"transport.port={port}",
        "env_steps=100000",
        "warmup_steps=50",
        "eval_every=0",
        "eval_episodes=2",
        "save_every=100",
        "algo.max_actors=3",
        *TINY,
    ]
    actor_args = [
        "hil",
        "actor",
        "task=reach",
        "task.reward=sparse",
        f"out={tmp_path / 'actor'}",
        f"transport.learner={address}",
        "actor_id=arm-1",
        "transport.retry_s=0.2",
        "transport.give_up_s=60",
        "transport.timeout_s=2",
        *TINY,
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    learner = _cli(learner_args, logs / "learner.log")
    actor = _cli(actor_args, logs / "actor.log")
    observer = Observer(address)
    procs = [learner, actor]
    try:
        observer.wait_for(150, 120, procs)
        actor.send_signal(signal.SIGKILL)  # a killed actor ...
        actor.wait()
        seen = observer.env_steps()
        for _ in range(20):  # what the killed actor sent is stored (a checkpoint may delay it) ...
            time.sleep(1.0)
            now = observer.env_steps()
            if now == seen:
                break
            seen = now
        else:
            raise AssertionError("the learner's step count kept growing with no actor connected")
        actor = _cli(
            actor_args, logs / "actor.log"
        )  # ... comes back to a learner that kept serving
        procs = [learner, actor]
        # on a busy machine the learner may still be storing what the killed actor sent: the
        # restarted actor must have said Hello to *this* learner before it is killed below
        _wait_for_text(logs / "learner.log", "actor arm-1 connected", 2, 120, procs)
        seen = observer.wait_for(seen + 100, 120, procs)
        assert (run / "checkpoints" / "last").exists()
        learner.send_signal(signal.SIGKILL)  # the learner dies without a word
        learner.wait()
        time.sleep(1.0)
        final_steps = seen + 400
        learner = _cli(
            [*learner_args, "resume=true", f"env_steps={final_steps}"], logs / "learner.log"
        )
        procs = [learner, actor]
        observer = Observer(address)
        observer.wait_for(seen + 50, 120, procs)  # the same actor found the new learner
        assert learner.wait(timeout=120) == 0
        assert actor.wait(timeout=60) == 0  # the learner ended the run and told the actor
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    stats = json.loads((tmp_path / "actor" / "actor_arm-1.json").read_text())
    assert stats["reconnects"] >= 1 and stats["stopped"] == "learner"
    assert stats["versions"] == sorted(stats["versions"]) and len(stats["versions"]) > 1
    hil = json.loads((run / "hil.json").read_text())
    assert hil["env_steps"] == final_steps
    log = (logs / "actor.log").read_text()
    assert "restarted" in log or "lost the learner" in log, log[-2000:]


def test_a_learned_reward_classifier_is_the_reward_and_ends_episodes(tmp_path):
    """``algo.reward=classifier``: the classifier decides success (here forced to always say yes by
    ``algo.reward_threshold=0``), so every actor episode ends after one step with reward 1. The
    policy reads the cameras too (pixel RL over the transport, the default on camera tasks)."""
    from robot_learning.cli import main

    pixels = ["task=reach", "task.obs=pixels", "task.image_size=32", "task.reward=sparse"]
    assert main(["collect", *pixels, "episodes=6", f"out={tmp_path / 'demos'}"]) == 0
    assert (
        main(
            [
                "train",
                "policy=reward_classifier",
                f"dataset={tmp_path / 'demos'}",
                f"out={tmp_path / 'rc'}",
                "steps=30",
                "batch_size=16",
                "threads=1",
                "save_every=30",
            ]
        )
        == 0
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "finetune",
                "algo=hil_serl",
                *pixels,
                f"out={out}",
                "env_steps=40",
                "warmup_steps=20",
                "eval_every=0",
                "eval_episodes=1",
                "save_every=0",
                "algo.num_actors=1",
                "algo.device=null",
                "algo.reward=classifier",
                f"algo.reward_model={tmp_path / 'rc'}",
                "algo.reward_threshold=0.0",
                *TINY,
            ]
        )
        == 0
    )
    hil = json.loads((out / "hil.json").read_text())
    assert hil["reward"] == "classifier" and hil["env_steps"] == 40
    assert "observation.images.front" in hil["policy_inputs"]  # pixel RL: frames went over the wire
    actor = json.loads((out / "actors" / "actor_actor-0.json").read_text())
    assert actor["episodes"] == actor["env_steps"] == actor["successes"] > 0
