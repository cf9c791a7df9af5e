import json
import re
import shutil
import time

import pytest
import torch

from rlhf_edu import presets
from rlhf_edu.generation import sample
from rlhf_edu.presets import HUB, TINY_DIR, ClassifierGold, hub_reachable, load_preset
from rlhf_edu.trainer import PPOConfig, PPOTrainer


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

    def test_gpt2_imdb_offline_gives_a_clear_error(self, monkeypatch, tmp_path):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="gpt2-imdb") as err:
            load_preset("gpt2-imdb", device="cpu")
        assert time.perf_counter() - t0 < 10
        msg = str(err.value)
        assert "lvwerra/gpt2-imdb" in msg and "not in the local cache" in msg
        assert "cannot be reached" in msg


def test_every_hub_artifact_is_pinned_to_a_commit():
    assert set(HUB) == {"policy", "reward", "dataset", "gold"}
    for repo_id, revision in HUB.values():
        assert re.fullmatch(r"[0-9a-f]{40}", revision), (repo_id, revision)
    assert HUB["policy"][0] == "lvwerra/gpt2-imdb" and HUB["reward"][0] == "lvwerra/distilbert-imdb"
    assert HUB["dataset"][0] == "stanfordnlp/imdb"


def _copy(mirror, dst, without=()):
    shutil.copytree(mirror, dst)
    for rel in without:
        target = dst / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return dst


@pytest.fixture(scope="module")
def standin(standin_mirror):
    """The GPU preset loaded from the stand-in mirror (.bin weights only, as on the hub)."""
    return load_preset("gpt2-imdb", device="cpu", n_prompts=64, source=standin_mirror)


class TestGPUPresetOnTheStandInMirror:
    """``gpt2-imdb`` through its own code path, on a mirror with the hub's exact layout."""

    def test_the_mirror_has_the_hubs_layout(self, standin_mirror):
        for role in ("policy", "reward", "gold"):
            names = {p.name for p in (standin_mirror / HUB[role][0]).iterdir()}
            assert "pytorch_model.bin" in names and not any(".safetensors" in n for n in names)
        assert (standin_mirror / HUB["dataset"][0] / presets.IMDB_TRAIN).is_file()

    def test_loads_the_bin_only_mirror(self, standin):
        assert standin.name == "gpt2-imdb" and type(standin.policy).__name__ == "GPT2LMHeadModel"
        assert type(standin.reward.model).__name__ == "DistilBertForSequenceClassification"
        assert isinstance(standin.gold, ClassifierGold) and len(standin.prompts) == 64
        assert standin.max_new_tokens == 16

    def test_pad_token_is_added_and_distinct_from_eos(self, standin_mirror, standin):
        from transformers import AutoTokenizer

        hub_tok = AutoTokenizer.from_pretrained(standin_mirror / HUB["policy"][0])
        assert hub_tok.pad_token is None  # as lvwerra/gpt2-imdb
        tok = standin.tokenizer
        assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
        assert tok.padding_side == "left"
        emb = standin.policy.get_input_embeddings().weight
        assert emb.shape[0] == len(tok)
        # the new pad row is the mean embedding (deterministic), and rarely sampled
        assert torch.allclose(emb[tok.pad_token_id], emb[: tok.pad_token_id].mean(0))
        ids = tok(standin.prompts[:8], return_tensors="pt", padding=True)
        with torch.no_grad():
            probs = standin.policy(**ids).logits[:, -1].softmax(-1)
        assert probs[:, tok.pad_token_id].max() < 0.01

    def test_scores_and_gold_on_the_stand_in(self, standin):
        """The stand-in models are trained, not noise: they order plain praise and pans."""
        good = ["a great film, the acting was wonderful.", "i loved it, a superb story."]
        bad = ["an awful film, the acting was terrible.", "i hated it, a dull story."]
        r, g = standin.reward(good + bad), standin.gold(good + bad)
        assert r.shape == g.shape == (4,) and (g.abs() <= 1).all()
        assert r[:2].min() > r[2:].max() and g[:2].min() > g[2:].max()

    def test_reward_index_comes_from_label2id(self, standin_mirror, tmp_path):
        mirror = _copy(standin_mirror, tmp_path / "m")
        cfg_path = mirror / HUB["reward"][0] / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["id2label"] = {"0": "POSITIVE", "1": "NEGATIVE"}
        cfg["label2id"] = {"POSITIVE": 0, "NEGATIVE": 1}
        cfg_path.write_text(json.dumps(cfg))
        p = load_preset("gpt2-imdb", device="cpu", n_prompts=8, source=mirror)
        assert p.reward.label == 0
        cfg["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}
        cfg["label2id"] = {"LABEL_0": 0, "LABEL_1": 1}
        cfg_path.write_text(json.dumps(cfg))
        with pytest.raises(RuntimeError, match="lvwerra/distilbert-imdb.*no POSITIVE label"):
            load_preset("gpt2-imdb", device="cpu", n_prompts=8, source=mirror)

    def test_a_ppo_step_trains_on_it(self, standin):
        torch.manual_seed(0)
        policy = standin.fresh_policy()
        before = [p.detach().clone() for p in policy.parameters()]
        cfg = PPOConfig(steps=2, batch_size=8, mini_batch_size=4, ppo_epochs=1, max_new_tokens=8)
        trainer = PPOTrainer(
            cfg,
            policy,
            standin.ref_policy,
            standin.tokenizer,
            standin.reward,
            standin.prompts,
            gold_fn=standin.gold,
        )
        history = trainer.train()
        assert len(history) == 2
        assert all(
            torch.isfinite(torch.tensor(float(v)))
            for h in history
            for v in h.values()
            if isinstance(v, (int, float))
        )
        assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))

    def test_a_folder_without_weights_names_the_artifact_and_lists_the_folder(
        self, standin_mirror, tmp_path
    ):
        rel = f"{HUB['reward'][0]}/pytorch_model.bin"
        mirror = _copy(standin_mirror, tmp_path / "m", without=[rel])
        with pytest.raises(RuntimeError) as err:
            load_preset("gpt2-imdb", device="cpu", n_prompts=8, source=mirror)
        msg = str(err.value)
        assert "lvwerra/distilbert-imdb" in msg and "no loadable weights file" in msg
        assert "config.json" in msg and "tokenizer.json" in msg

    def test_bin_weights_with_old_torch_say_so(self, standin_mirror, monkeypatch):
        monkeypatch.setattr(presets, "_torch_release", lambda: (2, 5))
        with pytest.raises(RuntimeError, match=r"lvwerra/gpt2-imdb.*torch >= 2\.6"):
            load_preset("gpt2-imdb", device="cpu", n_prompts=8, source=standin_mirror)

    def test_a_mirror_without_gold_loads_with_gold_none(self, standin_mirror, tmp_path, capsys):
        mirror = _copy(standin_mirror, tmp_path / "m", without=[HUB["gold"][0]])
        p = load_preset("gpt2-imdb", device="cpu", n_prompts=8, source=mirror)
        assert p.gold is None
        lines = [ln for ln in capsys.readouterr().out.splitlines() if "gold" in ln]
        assert len(lines) == 1 and HUB["gold"][0] in lines[0]

    def test_no_hub_call_and_no_auto_conversion(self, standin_mirror, monkeypatch):
        """From a mirror nothing touches the hub, and transformers' safetensors conversion
        (which can open a pull request on the author's repository) is never attempted."""
        import huggingface_hub
        import transformers.modeling_utils as mu

        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        calls = []

        def spy(name):
            return lambda *a, **k: calls.append(name) or pytest.fail(f"{name} was called")

        monkeypatch.setattr(mu, "auto_conversion", spy("auto_conversion"))
        for name in ("snapshot_download", "list_repo_files", "hf_hub_download"):
            monkeypatch.setattr(huggingface_hub, name, spy(name))
        load_preset("gpt2-imdb", device="cpu", n_prompts=8, source=standin_mirror)
        assert calls == []

    def test_the_hub_path_is_the_same_code_on_the_cache_snapshot(self, standin_mirror, monkeypatch):
        """Offline, the hub path opens the cache's snapshot of the pinned commit (here the
        stand-in folders) and loads it with the same code as a mirror."""
        import huggingface_hub

        asked = []

        def snapshot_download(repo_id, repo_type=None, revision=None, local_files_only=False):
            asked.append((repo_id, revision, local_files_only))
            return str(standin_mirror / repo_id)

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
        p = load_preset("gpt2-imdb", device="cpu", n_prompts=8)
        # the gold judge (1.4 GB on the hub) is fetched only when first used
        assert sorted(asked) == sorted(
            (r, rev, True) for role, (r, rev) in HUB.items() if role != "gold"
        )
        assert isinstance(p.gold, ClassifierGold) and p.reward.label == 1
        assert "not loaded yet" in repr(p.gold)
        assert p.gold(["a wonderful film", "a dull film"]).shape == (2,)
        assert sorted(asked) == sorted((r, rev, True) for r, rev in HUB.values())
        assert "not loaded yet" not in repr(p.gold)


@pytest.mark.parametrize("kw, arg", [({"name": "gpt3"}, "name"), ({"n_prompts": 0}, "n_prompts")])
def test_bad_arguments(kw, arg):
    with pytest.raises(ValueError, match=arg):
        load_preset(**kw)


def test_source_must_be_a_folder(tmp_path):
    with pytest.raises(ValueError, match="source"):
        load_preset("gpt2-imdb", device="cpu", source=tmp_path / "missing")
