import time

import pytest
import torch

from rlhf_edu import presets
from rlhf_edu.generation import sample
from rlhf_edu.presets import TINY_DIR, hub_reachable, load_preset


class TestTinyPreset:
    def test_sample_score_and_judge_offline(self, tiny):
        """The foundation's promise: load offline, sample a batch, score it both ways."""
        roll = sample(tiny.policy, tiny.tokenizer, tiny.prompts[:16], max_new_tokens=16, seed=0)
        rewards = tiny.reward(roll.texts)
        gold = tiny.gold(roll.texts)
        assert rewards.shape == gold.shape == (16,)
        assert torch.isfinite(rewards).all() and (gold.abs() <= 1).all()
        assert rewards.std() > 0 and gold.std() > 0

    def test_tokenizer_pads_left_with_a_pad_distinct_from_eos(self, tiny):
        tok = tiny.tokenizer
        assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
        assert tok.padding_side == "left"

    def test_reference_is_a_frozen_copy(self, tiny):
        assert tiny.ref_policy is not tiny.policy
        assert not any(p.requires_grad for p in tiny.ref_policy.parameters())
        for p, q in zip(tiny.policy.parameters(), tiny.ref_policy.parameters()):
            assert torch.equal(p, q)

    def test_fresh_policy_is_trainable_copy(self, tiny):
        fresh = tiny.fresh_policy()
        assert all(p.requires_grad for p in fresh.parameters())
        assert fresh is not tiny.policy

    def test_sizes(self, tiny):
        n = sum(p.numel() for p in tiny.policy.parameters())
        assert 0.5e6 <= n <= 3e6
        assert tiny.gold is not None and len(tiny.prompts) == 256


class TestShippedFiles:
    def test_only_safetensors_and_small(self):
        files = [p for p in TINY_DIR.rglob("*") if p.is_file()]
        assert any(p.suffix == ".safetensors" for p in files)
        assert not any(p.suffix in (".bin", ".pt", ".pth", ".pkl") for p in files)
        assert sum(p.stat().st_size for p in files) < 20 * 2**20


class TestAuto:
    def test_auto_on_cpu_is_tiny(self, monkeypatch):
        called = {}
        monkeypatch.setattr(presets, "_load_tiny", lambda d, n, s: called.setdefault("tiny", d))
        load_preset("auto", device="cpu")
        assert called["tiny"].type == "cpu"

    def test_auto_on_gpu_without_hub_falls_back_fast(self, monkeypatch, capsys):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        called = {}
        monkeypatch.setattr(presets, "_load_tiny", lambda d, n, s: called.setdefault("tiny", d))
        monkeypatch.setattr(presets, "_load_gpt2_imdb", lambda d, n, s: pytest.fail("hub used"))
        t0 = time.perf_counter()
        load_preset("auto", device="cuda")
        assert time.perf_counter() - t0 < 5
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and "tiny" in out[0]
        assert "tiny" in called

    def test_unreachable_host_answers_within_timeout(self, monkeypatch):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(presets, "HUB_HOST", "hub.invalid")
        t0 = time.perf_counter()
        assert hub_reachable(timeout=1.0) is False
        assert time.perf_counter() - t0 < 3

    def test_gpt2_imdb_offline_gives_a_clear_error(self, monkeypatch):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="gpt2-imdb"):
            load_preset("gpt2-imdb", device="cpu")
        assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("kw, arg", [({"name": "gpt3"}, "name"), ({"n_prompts": 0}, "n_prompts")])
def test_bad_arguments(kw, arg):
    with pytest.raises(ValueError, match=arg):
        load_preset(**kw)
