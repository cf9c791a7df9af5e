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
