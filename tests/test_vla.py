"""The VLA policy beyond the registry-generated zoo tests (tests/test_policies.py): building with
no network, the Hugging Face text-model path (a tiny BERT folder made here), tokenizers and bad
instructions, freezing and gradient checkpointing, and the training windows' instructions."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from policies.vla import VLAConfig, VLAPolicy
from robot_learning.features import Feature, FeatureSpec
from robot_learning.instruction_tokens import (
    ByteTokenizer,
    HFTokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_dict,
)
from robot_learning.language import InstructionError
from robot_learning.policy import Policy

TINY = dict(d_model=32, n_heads=2, backbone_layers=1, expert_layers=1, text_layers=1, horizon=8)
WORDS = ["lift", "the", "red", "blue", "cube", "pick", "up", "raise", "block", "grasp", "it"]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a connection is recorded and fails."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"network access in a test: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return attempts


def spec(camera: bool = True) -> FeatureSpec:
    features = {"observation.state": Feature("float32", (4,))}
    if camera:
        features["observation.images.front"] = Feature("video", (24, 24, 3))
    features["action"] = Feature("float32", (2,), low=(-1.0, -1.0), high=(1.0, 1.0))
    return FeatureSpec(features)


STATS = {
    "observation.state": {"min": [-1.0] * 4, "max": [1.0] * 4},
    "action": {"min": [-1.0] * 2, "max": [1.0] * 2},
}


def batch(n: int, texts: list[str], camera: bool = True, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {"observation.state": torch.rand(n, 1, 4, generator=g) * 2 - 1, "task": texts}
    if camera:
        out["observation.images.front"] = torch.randint(
            0, 256, (n, 1, 24, 24, 3), dtype=torch.uint8, generator=g
        )
    out["action"] = torch.rand(n, 8, 2, generator=g) * 2 - 1
    return out


def tiny_bert_folder(folder):
    """A Hugging Face BERT folder (random weights, WordPiece vocabulary) like MiniLM's layout."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(1)
    BertModel(config).save_pretrained(folder)
    return folder


def hf_policy(folder, **overrides) -> VLAPolicy:
    cfg = VLAConfig(
        **{**TINY, **overrides},
        text_encoder="huggingface",
        text_model_path=str(folder),
        max_tokens=16,
    )
    return VLAPolicy(cfg, spec(), STATS)


def test_scratch_vla_builds_trains_and_predicts_without_network(no_network):
    torch.manual_seed(0)
    policy = VLAPolicy(VLAConfig(**TINY), spec(), STATS)
    loss, _ = policy.compute_loss(batch(4, ["lift the red cube"] * 4))
    loss.backward()
    with torch.no_grad():
        chunk = policy.eval().predict_chunk(
            batch(2, ["lift the red cube"] * 2), torch.zeros(2, 8, 2)
        )
    assert chunk.shape == (2, 8, 2) and torch.isfinite(chunk).all()
    assert not no_network


def test_huggingface_text_model_loads_from_a_local_folder_and_checkpoints_stand_alone(
    tmp_path, no_network
):
    folder = tiny_bert_folder(tmp_path / "bert")
    policy = hf_policy(folder).eval()
    # the pretrained weights were loaded (not a fresh random init)
    from safetensors.torch import load_file

    saved = load_file(str(folder / "model.safetensors"))
    key = next(k for k in saved if k.endswith("word_embeddings.weight"))
    mine = dict(policy.text.model.named_parameters())[key.removeprefix("bert.")]
    assert torch.equal(mine, saved[key])
    assert policy.config.text_model_config["model_type"] == "bert"
    b = batch(2, ["lift the red cube", "pick up the blue block"])
    with torch.no_grad():
        before = policy.predict_chunk(b, torch.zeros(2, 8, 2))
    policy.save(tmp_path / "ckpt")
    for f in folder.iterdir():  # the checkpoint needs the model folder no more
        f.unlink()
    folder.rmdir()
    loaded = Policy.load(tmp_path / "ckpt")
    with torch.no_grad():
        after = loaded.predict_chunk(b, torch.zeros(2, 8, 2))
    assert torch.equal(before, after)
    assert not no_network


def test_huggingface_vla_loss_falls_on_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    policy = hf_policy(tiny_bert_folder(tmp_path / "bert")).train()
    b = batch(16, ["lift the red cube", "lift the blue cube"] * 8, camera=True, seed=3)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss, _ = policy.compute_loss(b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), (losses[:5], losses[-10:])


def test_changing_the_instruction_changes_the_actions(tmp_path):
    policy = hf_policy(tiny_bert_folder(tmp_path / "bert")).eval()
    obs = batch(1, ["lift the red cube"], seed=5)
    with torch.no_grad():
        red = policy.predict_chunk(obs, torch.zeros(1, 8, 2))
        blue = policy.predict_chunk({**obs, "task": ["lift the blue cube"]}, torch.zeros(1, 8, 2))
        again = policy.predict_chunk(obs, torch.zeros(1, 8, 2))
    assert torch.equal(red, again) and not torch.allclose(red, blue)


def test_tokenizers_round_trip_and_refuse_bad_instructions(tmp_path):
    byte = ByteTokenizer(max_tokens=12)
    ids, mask = byte.encode(["lift it", "up"])
    assert ids.shape == mask.shape == (2, 12) and mask.sum(1).tolist() == [8, 3]
    assert bytes(int(i) - 2 for i in ids[0, 1:8]).decode() == "lift it"
    with pytest.raises(InstructionError, match=r"is 19 tokens long; this policy reads at most 12"):
        byte.encode(["lift the red cube!"])
    with pytest.raises(InstructionError, match="empty"):
        byte.encode([""])
    hf = HFTokenizer.from_folder(tiny_bert_folder(tmp_path / "bert"), max_tokens=8)
    ids, mask = hf.encode(["Lift the RED cube"])
    assert mask.sum() == 6 and ids[0, 0] == 2 and ids[0, 5] == 3  # [CLS] 4 words [SEP]
    save_tokenizer(hf, tmp_path / "tok.json")
    np.testing.assert_array_equal(
        load_tokenizer(tmp_path / "tok.json").encode(["lift it"])[0], hf.encode(["lift it"])[0]
    )
    with pytest.raises(InstructionError, match="unknown tokenizer kind 'sentencepiece'"):
        tokenizer_from_dict({"kind": "sentencepiece"})
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        HFTokenizer.from_folder(tmp_path, max_tokens=8)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        hf_policy(tmp_path)
    with pytest.raises(ValueError, match="needs text_model_path"):
        VLAConfig(text_encoder="huggingface")


def test_a_vla_without_an_instruction_is_told_how_to_give_one():
    policy = VLAPolicy(VLAConfig(**TINY), spec(camera=False), STATS).eval()
    b = batch(1, ["x"], camera=False)
    del b["task"]
    with pytest.raises(InstructionError, match=r"needs an instruction.*instruction="):
        policy.predict_chunk(b)
    with pytest.raises(Exception, match=r"obs\['task'\]"):
        policy.select_action({"observation.state": np.zeros(4, np.float32)})
    with pytest.raises(InstructionError, match="tokens long"):
        policy.predict_chunk({**b, "task": ["lift " * 20]})


def test_freezing_and_gradient_checkpointing():
    torch.manual_seed(0)
    policy = VLAPolicy(VLAConfig(**TINY, freeze=("text", "vision")), spec(), STATS)
    frozen = {n for n, p in policy.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("text.", "cameras.")) for n in frozen)
    assert all(p.requires_grad for n, p in policy.named_parameters() if n.startswith("expert."))
    with pytest.raises(ValueError, match=r"\['decoder'\] not among"):
        VLAConfig(freeze=("decoder",))
    # checkpointing recomputes activations: same loss and gradients, less memory
    grads = []
    for enabled in (False, True):
        torch.manual_seed(0)
        p = VLAPolicy(VLAConfig(**TINY, gradient_checkpointing=enabled), spec(), STATS).train()
        torch.manual_seed(1)
        loss, _ = p.compute_loss(batch(4, ["lift the red cube"] * 4))
        loss.backward()
        grads.append(torch.cat([q.grad.flatten() for q in p.parameters() if q.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_training_windows_carry_each_frames_instruction(tmp_path):
    from robot_learning.collect import CollectConfig, collect
    from robot_learning.datasets import LeRobotDataset
    from robot_learning.envs import TaskConfig
    from robot_learning.training.windows import WindowDataset

    collect(CollectConfig(task=TaskConfig(name="lift_color"), episodes=3, out=str(tmp_path / "d")))
    ds = LeRobotDataset(tmp_path / "d")
    policy = VLAPolicy(VLAConfig(**TINY, max_tokens=48), ds.features, ds.stats)
    windows = policy.prepare_training(WindowDataset(ds, policy.input_keys, 1, 8))
    tasks = windows.frame_tasks()
    idx = np.array([0, len(windows) // 2, len(windows) - 1])
    b = windows.get_batch(idx)
    for row, i in zip(b["observation.language.tokens"], idx, strict=True):
        text = bytes(int(t) - 2 for t in row[1:] if t > 0).decode()
        assert text == tasks[i] and "cube" in text
    loss, _ = policy.compute_loss(b)
    assert torch.isfinite(loss)


def test_lora_trains_only_the_adapters_and_merging_keeps_the_outputs():
    torch.manual_seed(0)
    policy = VLAPolicy(
        VLAConfig(**TINY, lora_rank=4, lora_targets=("text", "backbone", "expert")), spec(), STATS
    )
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(n.startswith("text.") for n in trainable) and any(
        n.startswith("expert.") for n in trainable
    )
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss, _ = policy.compute_loss(batch(4, ["lift the red cube"] * 4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all("lora_B" in k or "lora_A" in k for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at 0: the adapters now change outputs
    policy.eval()
    merged = policy.merge_lora()
    assert merged.config.lora_rank == 0 and not any("lora_" in k for k in merged.state_dict())
    b = batch(3, ["lift the red cube", "lift the blue cube", "pick up the blue block"])
    with torch.no_grad():
        expected = policy.predict_chunk(b, torch.zeros(3, 8, 2))
        actual = merged.eval().predict_chunk(b, torch.zeros(3, 8, 2))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="lora_targets"):
        VLAConfig(lora_rank=4, lora_targets=("vision",))


def test_train_init_fine_tunes_a_checkpoint_with_lora_and_writes_the_merged_weights(tmp_path):
    from safetensors.torch import load_file

    from robot_learning.collect import CollectConfig, collect
    from robot_learning.envs import TaskConfig
    from robot_learning.training import TrainConfig, train

    collect(CollectConfig(task=TaskConfig(name="lift_color"), episodes=2, out=str(tmp_path / "d")))
    small = {k: v for k, v in TINY.items()}
    base = train(TrainConfig(
        policy="vla", dataset=str(tmp_path / "d"), out=str(tmp_path / "base"), steps=4,
        batch_size=8, warmup_steps=1, use_ema=False, policy_overrides=small,
    ))  # fmt: skip
    tuned = train(TrainConfig(
        policy="vla", dataset=str(tmp_path / "d"), out=str(tmp_path / "tuned"), steps=4,
        batch_size=8, warmup_steps=1, lr=1e-2, use_ema=False, init=base.final_dir,
        policy_overrides={**small, "lora_rank": 4},
    ))  # fmt: skip
    old = load_file(str(tmp_path / "base/final/model.safetensors"))
    new = load_file(str(tmp_path / "tuned/final/model.safetensors"))
    key = "backbone.blocks.0.self_attn.q_proj.weight"
    assert torch.equal(new[key.replace(".weight", ".base_layer.weight")], old[key])  # frozen base
    assert torch.equal(new["action_out.weight"], old["action_out.weight"])
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in new.items())  # adapters trained
    merged = Policy.load(tmp_path / "tuned/merged")
    assert merged.config.lora_rank == 0
    assert not torch.equal(merged.state_dict()[key], old[key])  # the update is folded in
    assert tuned.post_training["summary"].startswith("LoRA adapters merged")
    with pytest.raises(ValueError, match="is a 'vla' checkpoint, not 'flow'"):
        from robot_learning.training.init_weights import init_policy_fields

        init_policy_fields(base.final_dir, "flow", {}, set())
    with pytest.raises(ValueError, match="does not fit.*different shapes"):
        train(TrainConfig(
            policy="vla", dataset=str(tmp_path / "d"), out=str(tmp_path / "bad"), steps=1,
            batch_size=8, warmup_steps=0, init=base.final_dir, policy_overrides={**small, "d_model": 64},
        ))  # fmt: skip


def _first_steps(color: str, seeds, horizon: int) -> list[tuple]:
    """(first observation, instruction, the expert's first ``horizon`` actions, task state) of
    ``lift_color`` scenes with the ``color`` cube named."""
    from robot_learning.envs import TaskConfig, make_env, make_expert

    env = make_env(TaskConfig(name="lift_color", instruction=f"lift the {color} cube"))
    expert, out = make_expert(env), []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert.reset(seed)
        state, first, actions = env.task_state(), obs, []
        for _ in range(horizon):
            actions.append(expert.act(obs))
            obs, *_ = env.step(actions[-1])
        out.append((first, env.instruction, np.stack(actions), state))
    return out


def _as_batch(items, keys):
    out = {k: torch.as_tensor(np.stack([o[k] for o, *_ in items]))[:, None] for k in keys}
    out["task"] = [text for _, text, _, _ in items]
    out["action"] = torch.as_tensor(np.stack([a for _, _, a, _ in items]))
    return out


@pytest.fixture(scope="module")
def lift_color_vla():
    """A tiny VLA trained (300 steps, ~10 s) on the expert's first moves in 24 lift_color scenes,
    each scene with both instructions."""
    from robot_learning.envs import TaskConfig, make_env

    features = make_env(TaskConfig(name="lift_color")).features
    keys = features.observation_keys
    stats = {k: {"min": list(features[k].low), "max": list(features[k].high)} for k in keys}
    stats["action"] = {"min": [-1.0] * 4, "max": [1.0] * 4}
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    policy = VLAPolicy(
        VLAConfig(**{**TINY, "max_tokens": 24, "n_action_steps": 4}), features, stats
    )
    train = _as_batch([x for c in ("red", "blue") for x in _first_steps(c, range(24), 8)], keys)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(300):
        loss, _ = policy.compute_loss(train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(before)
    return policy.eval()


def test_the_instruction_decides_which_cube_a_trained_vla_reaches_for(lift_color_vla):
    """In scenes it never saw, the VLA moves towards the named cube, and towards the other one
    when the instruction changes: the language, not the scene, picks the goal."""
    policy = lift_color_vla
    for color, other in (("red", "blue"), ("blue", "red")):
        scenes = _first_steps(color, range(1000, 1006), 8)
        with torch.no_grad():
            batch = _as_batch(scenes, policy.input_keys)
            moves = policy.predict_chunk(batch, torch.zeros(6, 8, 4))[:, :4, :2]
        for move, (_, _, _, state) in zip(moves.mean(1).numpy(), scenes, strict=True):
            cosines = {}
            for cube in (color, other):
                to_cube = (state[f"{cube}_pos"] - state["ee_pos"])[:2]
                cosines[cube] = move @ to_cube / (np.linalg.norm(move) * np.linalg.norm(to_cube))
            assert cosines[color] > 0.7 and cosines[color] > cosines[other] + 0.2, cosines


def test_a_student_distilled_from_the_vla_imitates_it(lift_color_vla, tmp_path):
    """collect policy=<teacher> records the VLA's episodes; a small flow policy trained on them
    predicts the teacher's actions far better than the teacher's mean action does."""
    from robot_learning.collect import CollectConfig, collect
    from robot_learning.datasets import LeRobotDataset
    from robot_learning.envs import TaskConfig
    from robot_learning.training import TrainConfig, train

    lift_color_vla.save(tmp_path / "teacher", extra={"train_config": {"fps": 10}})
    task = TaskConfig(name="lift_color", instruction="lift the red cube", max_episode_steps=12)
    collect(CollectConfig(task=task, episodes=6, policy=str(tmp_path / "teacher"),
                          out=str(tmp_path / "teacher_data")))  # fmt: skip
    data = LeRobotDataset(tmp_path / "teacher_data")
    assert set(data.tasks) == {"lift the red cube"} and data.num_frames == 72
    student = train(TrainConfig(
        policy="flow", dataset=str(tmp_path / "teacher_data"), out=str(tmp_path / "student"),
        steps=300, batch_size=32, lr=3e-3, warmup_steps=10, use_ema=False,
        policy_overrides={"down_dims": (32, 64), "horizon": 8, "n_obs_steps": 1,
                          "n_action_steps": 4, "time_embed_dim": 32},
    ))  # fmt: skip
    policy = Policy.load(student.final_dir)
    # the teacher planned a chunk at every 4th frame (n_action_steps=4): compare plans there
    frames = data.columns(["observation.state", "observation.environment_state", "frame_index"])
    starts = frames["frame_index"] % 4 == 0
    batch = {k: torch.as_tensor(frames[k][starts])[:, None] for k in policy.input_keys}
    n = int(starts.sum())
    g = torch.Generator().manual_seed(0)

    def mean_plan(model, inputs):  # the executed steps' conditional mean over 16 noise draws
        draws = [
            model.predict_chunk(inputs, torch.randn(n, 8, 4, generator=g))[:, :4] for _ in range(16)
        ]
        return torch.stack(draws).mean(0)

    with torch.no_grad():
        student = mean_plan(policy, batch)
        teacher = mean_plan(lift_color_vla, {**batch, "task": ["lift the red cube"] * n})
    student_error = float(((student - teacher) ** 2).mean())
    baseline = float(((teacher.mean(0) - teacher) ** 2).mean())  # predicting one mean action
    assert student_error < 0.3 * baseline, (student_error, baseline)
    from robot_learning.cli import main  # the CLI takes policy= before Hydra sees it

    args = ["collect", "task=lift_color", "instruction=lift the blue cube", "episodes=1",
            "task.max_episode_steps=4", f"policy={tmp_path / 'teacher'}", f"out={tmp_path / 'cli'}"]  # fmt: skip
    assert main(args) == 0 and LeRobotDataset(tmp_path / "cli").tasks == ["lift the blue cube"]
    with pytest.raises(ValueError, match="not both"):
        CollectConfig(task=task, out=str(tmp_path / "x"), expert="lift", policy="y")


def test_a_frozen_text_encoder_gives_the_same_loss_with_each_instruction_encoded_once(tmp_path):
    folder = tiny_bert_folder(tmp_path / "bert")
    policy = hf_policy(folder, freeze=("text",)).train()
    texts = ["lift the red cube", "pick up the blue block"] * 3 + ["lift the blue cube"]
    b = batch(7, texts)
    ids, mask = policy.language_inputs(b)
    assert int(mask.sum(1).max()) < ids.shape[1]  # padding columns exist and are dropped
    calls = []
    policy.text.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    fast = policy._text_tokens(ids, mask)
    assert calls == [(3, int(mask.sum(1).max()))]  # three distinct instructions, no padding
    policy.eval()  # the full path (as exported): every row, every column
    full = policy._text_tokens(ids, mask)
    valid = mask.bool()
    torch.testing.assert_close(fast[valid], full[valid], atol=1e-5, rtol=1e-5)
