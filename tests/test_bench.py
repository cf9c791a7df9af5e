"""The benchmark runs end to end and writes the fields the README quotes (no timing asserts)."""

import json

import pytest

from rlhf_edu import bench


def test_tiny_vs_trl_writes_json(tmp_path):
    pytest.importorskip("trl.experimental.ppo")
    out = tmp_path / "bench.json"
    result = bench.main(
        [
            "--preset",
            "tiny",
            "--batch",
            "8",
            "--response-length",
            "6",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--vs-trl",
            "--json",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved.keys() == result.keys()
    for key in (
        "step_seconds",
        "trl_step_seconds",
        "ratio",
        "generate_seconds",
        "reference_seconds",
        "reward_seconds",
        "optimize_seconds",
    ):
        assert saved[key] > 0, key
    assert saved["ratio"] == pytest.approx(saved["step_seconds"] / saved["trl_step_seconds"])
    assert saved["batch"] == 8 and saved["response_length"] == 6


def test_rejects_two_worlds():
    with pytest.raises(SystemExit):
        bench.main(["--preset", "tiny", "--shape", "gpt2"])


def test_grpo_vs_trl_writes_json(tmp_path):
    pytest.importorskip("trl", reason="TRL's GRPOTrainer needed")
    out = tmp_path / "bench.json"
    result = bench.main(
        [
            "--preset",
            "tiny",
            "--method",
            "grpo",
            "--batch",
            "8",
            "--group-size",
            "4",
            "--epochs",
            "1",
            "--response-length",
            "6",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--vs-trl",
            "--json",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved.keys() == result.keys()
    assert saved["method"] == "grpo" and saved["batch"] == 8 and saved["epochs"] == 1
    assert saved["step_seconds"] > 0 and saved["trl_step_seconds"] > 0
    assert saved["ratio"] == pytest.approx(saved["step_seconds"] / saved["trl_step_seconds"])


def test_grpo_batch_must_hold_whole_groups():
    with pytest.raises(SystemExit):
        bench.main(["--preset", "tiny", "--method", "grpo", "--batch", "6", "--group-size", "4"])
