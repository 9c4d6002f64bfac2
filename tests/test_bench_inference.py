"""``bench inference`` on one tiny synthetic model: export, time with torch and onnxruntime, reuse."""

from __future__ import annotations

import json

import pytest

from robot_learning.bench.inference import InferenceBenchConfig, run_inference_bench
from robot_learning.cli import main

TINY = {
    "policy": "meanflow", "task": "lift", "obs": "state", "steps": [1], "name": "tiny",
    "overrides": {"down_dims": [32, 64], "horizon": 8, "n_action_steps": 4, "time_embed_dim": 32},
}  # fmt: skip
TINY_CLI = (
    "cases=[{policy:meanflow,task:lift,obs:state,steps:[1],name:tiny,"
    "overrides:{down_dims:[32,64],horizon:8,n_action_steps:4,time_embed_dim:32}}]"
)


def test_bench_inference_times_runtimes_and_reuses_bundle(tmp_path, capsys):
    out = tmp_path / "bench"
    cfg = InferenceBenchConfig(
        cases=[TINY], runtimes=["torch", "onnxruntime", "tensorrt"], calls=5, warmup=1, out=str(out)
    )
    result = run_inference_bench(cfg, progress=False)
    rows = {row["runtime"]: row for row in result["results"]}
    assert set(rows) <= {"torch", "onnxruntime", "tensorrt"} and {"torch", "onnxruntime"} <= set(
        rows
    )
    for row in rows.values():
        assert (
            row["case"] == "tiny"
            and row["steps"] == 1
            and row["batch_size"] == 1
            and row["calls"] == 5
        )
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["calls_per_s"] > 0
    assert rows["onnxruntime"]["speedup_vs_torch"] > 0
    if "tensorrt" not in rows:
        assert result["skipped_runtimes"]["tensorrt"]
    assert result["bundles"][0]["reused"] is False
    assert result["machine"]["threads"] == 1 and result["machine"]["onnxruntime"]

    spec = out / "bundles" / "tiny_s1" / "policy.json"
    assert json.loads(spec.read_text())["sampler"]["steps"] == 1
    mtime = spec.stat().st_mtime_ns
    args = [
        "bench",
        "inference",
        TINY_CLI,
        "runtimes=[onnxruntime]",
        "calls=3",
        "warmup=0",
        f"out={out}",
    ]
    assert main(args) == 0
    assert spec.stat().st_mtime_ns == mtime
    report = json.loads((out / "bench.json").read_text())
    assert report["bundles"][0]["reused"] is True
    assert [r["runtime"] for r in report["results"]] == ["onnxruntime"]
    printed = capsys.readouterr().out
    assert "tiny" in printed and "bench.json" in printed


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"runtimes": ["nope"]}, "unknown ['nope']"),
        ({"cases": [{**TINY, "policy": "nope"}]}, "unknown policy 'nope'"),
        ({"cases": [{**TINY, "colour": "red"}]}, "unknown keys ['colour']"),
        ({"steps": {"nope": [2]}}, "unknown policies ['nope']"),
    ],
)
def test_bench_inference_rejects_unknown_names(settings, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        InferenceBenchConfig(**{"cases": [TINY], **settings})


def test_bench_inference_cli_error_is_one_line(capsys):
    assert main(["bench", "inference", "runtimes=[nope]"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "nope" in err and "onnxruntime" in err


def test_bench_inference_checkpoint_at_extra_steps(tmp_path):
    first = InferenceBenchConfig(
        cases=[TINY], runtimes=["onnxruntime"], calls=1, warmup=0, out=str(tmp_path / "a")
    )
    run_inference_bench(first, progress=False)
    checkpoint = tmp_path / "a" / "checkpoints" / "tiny"
    cfg = InferenceBenchConfig(
        checkpoints=[str(checkpoint)],
        steps={"meanflow": [2]},
        runtimes=["onnxruntime"],
        calls=2,
        warmup=0,
        out=str(tmp_path / "b"),
    )
    result = run_inference_bench(cfg, progress=False)
    assert [(r["source"], r["policy"], r["steps"]) for r in result["results"]] == [
        ("checkpoint", "meanflow", 1),
        ("checkpoint", "meanflow", 2),
    ]
    assert all(b["reused"] is False for b in result["bundles"])
