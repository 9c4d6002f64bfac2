"""The VLA with a Hugging Face vision-language model as its backbone (``backbone=huggingface``):
tiny SmolVLM and PaliGemma folders written here (random weights, a word-level tokenizer) stand in
for the real ones, which cannot be downloaded in tests."""

from __future__ import annotations

import re

import pytest
import torch
from test_vla import STATS, WORDS, batch, no_network, spec  # noqa: F401  (fixture)

from policies.vla import VLAConfig, VLAPolicy
from policies.vla.vlm import VLM_FAMILIES
from robot_learning.policy import Policy

pytest.importorskip("transformers")

VISION = dict(
    hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
    image_size=16, patch_size=8,
)  # fmt: skip


def tiny_vlm_folder(folder, family: str = "smolvlm"):
    """A local Hugging Face VLM folder of ``family`` (config.json, weights, tokenizer.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PaliGemmaConfig, PaliGemmaModel, SmolVLMConfig, SmolVLMModel

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", *WORDS, "<image>"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    text = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=len(vocab), max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(1)
    if family == "smolvlm":
        config = SmolVLMConfig(
            vision_config=VISION, text_config={"model_type": "llama", **text},
            scale_factor=2, image_token_id=len(vocab) - 1,
        )  # fmt: skip
        SmolVLMModel(config).save_pretrained(folder)
    else:
        config = PaliGemmaConfig(
            vision_config={"model_type": "siglip_vision_model", **VISION},
            text_config={"model_type": "gemma", **text, "head_dim": 8},
            image_token_index=len(vocab) - 1, projection_dim=32,
        )  # fmt: skip
        PaliGemmaModel(config).save_pretrained(folder)
    return folder


def vlm_policy(folder, **overrides) -> VLAPolicy:
    cfg = dict(d_model=32, n_heads=2, expert_layers=1, horizon=8, max_tokens=12)
    cfg.update(overrides)
    return VLAPolicy(
        VLAConfig(**cfg, backbone="huggingface", vlm_model_path=str(folder)), spec(), STATS
    )


@pytest.fixture(scope="module")
def smolvlm(tmp_path_factory):
    return tiny_vlm_folder(tmp_path_factory.mktemp("vlm") / "smolvlm")


@pytest.mark.parametrize("family", ["smolvlm", "paligemma"])
def test_a_local_vlm_folder_is_the_backbone_and_checkpoints_stand_alone(
    tmp_path,
    family,
    no_network,  # noqa: F811
):
    from safetensors.torch import load_file

    folder = tiny_vlm_folder(tmp_path / family, family)
    policy = vlm_policy(folder).eval()
    saved = load_file(str(folder / "model.safetensors"))
    mine = {f"vlm.model.{k}": v for k, v in saved.items()}
    params = dict(policy.named_parameters())
    loaded = [k for k in mine if k in params]
    assert len(loaded) > 20 and all(torch.equal(params[k], mine[k]) for k in loaded)
    assert policy.config.vlm_model_config["model_type"] == family
    # images go through the VLM's vision tower: another frame, another chunk
    b = batch(2, ["lift the red cube", "pick up the blue block"])
    other = dict(b, **{"observation.images.front": 255 - b["observation.images.front"]})
    with torch.no_grad():
        before = policy.predict_chunk(b, torch.zeros(2, 8, 2))
        assert not torch.allclose(before, policy.predict_chunk(other, torch.zeros(2, 8, 2)))
        swapped = dict(b, task=["pick up the blue block", "lift the red cube"])
        assert not torch.allclose(before, policy.predict_chunk(swapped, torch.zeros(2, 8, 2)))
    policy.save(tmp_path / "ckpt")
    for f in folder.iterdir():  # the checkpoint needs the model folder no more
        f.unlink()
    folder.rmdir()
    with torch.no_grad():
        after = Policy.load(tmp_path / "ckpt").predict_chunk(b, torch.zeros(2, 8, 2))
    assert torch.equal(before, after)
    assert not no_network


def test_vlm_vla_loss_falls_on_a_fixed_batch(smolvlm):
    torch.manual_seed(0)
    policy = vlm_policy(smolvlm).train()
    b = batch(16, ["lift the red cube", "lift the blue cube"] * 8, seed=3)

    def held_out_loss() -> float:  # the same flow times and noise every time
        with torch.no_grad():
            losses = []
            for seed in range(4):
                torch.manual_seed(100 + seed)
                losses.append(policy.compute_loss(b)[0].item())
        return sum(losses) / len(losses)

    before = held_out_loss()
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(80):
        loss, _ = policy.compute_loss(b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert held_out_loss() < 0.5 * before


def test_lora_on_the_vlm_decoder_trains_only_adapters_and_merging_keeps_outputs(smolvlm):
    torch.manual_seed(0)
    policy = vlm_policy(smolvlm, lora_rank=4, lora_targets=("backbone",))
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".text_model.layers." in n for n in trainable)
    assert any("mlp.gate_proj" in n for n in trainable)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss, _ = policy.compute_loss(batch(4, ["lift the red cube"] * 4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    merged = policy.merge_lora().eval()
    assert not any("lora_" in k for k in merged.state_dict())
    b = batch(3, ["lift the red cube", "lift the blue cube", "pick up the blue block"])
    with torch.no_grad():
        expected = policy.predict_chunk(b, torch.zeros(3, 8, 2))
        torch.testing.assert_close(
            merged.predict_chunk(b, torch.zeros(3, 8, 2)), expected, atol=1e-5, rtol=1e-5
        )
        base = vlm_policy(smolvlm).eval()
        base.load_state_dict({k: v for k, v in merged.state_dict().items()}, strict=True)


def test_vlm_layers_freezing_and_checkpointing(smolvlm):
    policy = vlm_policy(
        smolvlm, vlm_layers=1, freeze=("vision", "text"), gradient_checkpointing=True
    )
    assert len(policy.vlm.decoder.layers) == 1
    vision = [
        n for n, p in policy.named_parameters() if ".vision_model." in n or ".connector." in n
    ]
    assert vision and not any(dict(policy.named_parameters())[n].requires_grad for n in vision)
    assert not policy.vlm.model.get_input_embeddings().weight.requires_grad
    loss, _ = policy.train().compute_loss(batch(4, ["lift the red cube"] * 4))
    loss.backward()
    assert policy.vlm.decoder.layers[0].self_attn.q_proj.weight.grad is not None
    with pytest.raises(ValueError, match="vlm_layers=5"):
        vlm_policy(smolvlm, vlm_layers=5)


def test_bad_vlm_settings_are_named(tmp_path, smolvlm):
    with pytest.raises(ValueError, match="vlm_model_path"):
        VLAConfig(backbone="huggingface")
    with pytest.raises(ValueError, match="text_encoder"):
        VLAConfig(backbone="huggingface", vlm_model_path="x", text_encoder="huggingface")
    with pytest.raises(ValueError, match="backbone='gpt'"):
        VLAConfig(backbone="gpt")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    supported = re.escape(f"not supported as a VLA backbone; supported: {sorted(VLM_FAMILIES)}")
    with pytest.raises(ValueError, match=supported):
        vlm_policy(bert)
    with pytest.raises(FileNotFoundError, match="config.json"):
        vlm_policy(tmp_path / "missing")


def test_vlm_vla_exports_to_onnx_with_parity(tmp_path, smolvlm):
    from robot_learning.export.onnx_graph import PARITY_TOL, export_onnx

    policy = vlm_policy(smolvlm)
    facts = export_onnx(policy, tmp_path / "vla.onnx")
    assert facts["parity_max_abs_error"] <= PARITY_TOL
    assert "observation.language.tokens" in facts["graph_inputs"]
