"""The sampling explorer's functions: filtering agrees with transformers, plots show the numbers."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from rlhf_edu.widgets.sampling import (
    _explorer,
    filter_logits,
    next_token_logits,
    next_token_probs,
    plot_next_token,
    sample_continuations,
)

PROMPT = "the acting was"


class TestFilterLogits:
    @pytest.mark.parametrize("seed", range(20))
    def test_matches_transformers_warpers(self, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(3, 40, generator=g) * 3
        T = 0.1 + 1.9 * torch.rand(1, generator=g).item()
        k = int(torch.randint(0, 15, (1,), generator=g))
        p = 0.05 + 0.9 * torch.rand(1, generator=g).item()
        ref = TemperatureLogitsWarper(T)(None, x.clone())
        if k:
            ref = TopKLogitsWarper(k)(None, ref)
        ref = TopPLogitsWarper(p)(None, ref)
        got = filter_logits(x, T, k, p)
        assert torch.equal(torch.isinf(got), torch.isinf(ref))
        keep = ~torch.isinf(ref)
        assert torch.allclose(got[keep], ref[keep])

    def test_defaults_change_nothing(self):
        x = torch.randn(2, 10)
        assert torch.equal(filter_logits(x), x)

    def test_top_k_keeps_k(self):
        x = torch.tensor([0.0, 3.0, 1.0, 2.0, -1.0])
        probs = filter_logits(x, top_k=2).softmax(-1)
        assert (probs > 0).tolist() == [False, True, False, True, False]
        assert torch.isclose(probs.sum(), torch.tensor(1.0))

    def test_top_p_keeps_the_smallest_nucleus(self):
        x = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
        kept = lambda p: int((filter_logits(x, top_p=p).softmax(-1) > 0).sum())
        assert kept(0.4) == 1  # 0.5 alone already holds 0.4
        assert kept(0.6) == 2  # 0.5 + 0.3
        assert kept(0.9) == 3
        assert kept(0.99) == 4

    def test_temperature_sharpens_and_flattens(self):
        x = torch.tensor([2.0, 1.0, 0.0])
        top = lambda t: filter_logits(x, temperature=t).softmax(-1)[0].item()
        assert top(0.5) > top(1.0) > top(2.0) > 1 / 3

    @pytest.mark.parametrize(
        "kw, name",
        [
            ({"temperature": 0.0}, "temperature"),
            ({"top_k": -1}, "top_k"),
            ({"top_k": 2.5}, "top_k"),
            ({"top_p": 0.0}, "top_p"),
            ({"top_p": 1.2}, "top_p"),
        ],
    )
    def test_bad_settings_name_the_argument(self, kw, name):
        with pytest.raises(ValueError, match=name):
            filter_logits(torch.randn(5), **kw)


class TestNextToken:
    def test_probs_are_the_softmax_of_the_model_logits(self, tiny):
        logits = next_token_logits(tiny.policy, tiny.tokenizer, PROMPT)
        ids = tiny.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            direct = tiny.policy(input_ids=ids).logits[0, -1]
        assert torch.allclose(logits, direct, atol=1e-5)
        probs = next_token_probs(tiny.policy, tiny.tokenizer, PROMPT)
        assert torch.allclose(probs, direct.softmax(-1), atol=1e-6)

    def test_filtered_probs_sum_to_one(self, tiny):
        probs = next_token_probs(tiny.policy, tiny.tokenizer, PROMPT, 0.7, 10, 0.9)
        assert torch.isclose(probs.sum(), torch.tensor(1.0), atol=1e-5)
        assert 1 <= int((probs > 0).sum()) <= 10

    def test_empty_prompt_rejected(self, tiny):
        with pytest.raises(ValueError, match="prompt"):
            next_token_probs(tiny.policy, tiny.tokenizer, "")


class TestPlotNextToken:
    def test_bars_show_the_numbers(self, tiny):
        fig = plot_next_token(tiny.policy, tiny.tokenizer, PROMPT, top_k=3, n_top=8)
        ax = fig.axes[0]
        assert PROMPT in ax.get_title() and "3 of" in ax.get_title()
        filled, outline = ax.containers
        assert len(filled) == len(outline) == 8
        probs = next_token_probs(tiny.policy, tiny.tokenizer, PROMPT, top_k=3)
        base = next_token_probs(tiny.policy, tiny.tokenizer, PROMPT)
        top = torch.topk(base, 8).indices
        widths = torch.tensor([b.get_width() for b in filled], dtype=torch.float32)
        assert torch.allclose(widths, probs[top], atol=1e-6)
        assert torch.allclose(
            torch.tensor([b.get_width() for b in outline], dtype=torch.float32), base[top]
        )
        assert int((widths > 0).sum()) == 3
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert len(labels) == 8 and all(labels)
        plt.close(fig)

    def test_draws_into_a_given_axis(self, tiny):
        fig, axes = plt.subplots(1, 2)
        out = plot_next_token(tiny.policy, tiny.tokenizer, PROMPT, temperature=2.0, ax=axes[1])
        assert out is fig and "T=2" in axes[1].get_title() and not axes[0].get_title()
        plt.close(fig)

    def test_bad_n_top(self, tiny):
        with pytest.raises(ValueError, match="n_top"):
            plot_next_token(tiny.policy, tiny.tokenizer, PROMPT, n_top=0)


def test_sample_continuations(tiny):
    texts = sample_continuations(tiny.policy, tiny.tokenizer, PROMPT, n=3, max_new_tokens=6, seed=1)
    assert len(texts) == 3 and all(t.startswith(PROMPT) for t in texts)
    again = sample_continuations(tiny.policy, tiny.tokenizer, PROMPT, n=3, max_new_tokens=6, seed=1)
    assert texts == again
    greedy_like = sample_continuations(
        tiny.policy, tiny.tokenizer, PROMPT, n=3, max_new_tokens=6, top_k=1, seed=2
    )
    assert len(set(greedy_like)) == 1  # top-k = 1 leaves one choice at every step


def test_explorer_builds_and_redraws(tiny):
    box, redraw = _explorer(tiny, prompts=[PROMPT, "this movie"], n_samples=2)
    controls, out = box.children
    assert type(out).__name__ == "Output"
    descriptions = [c.description for c in controls.children]
    assert descriptions[:4] == ["prompt", "temperature T", "top-k (0 = off)", "top-p (1 = off)"]
    assert all(getattr(c, "continuous_update", False) is False for c in controls.children[1:4])
    before = len(plt.get_fignums())
    controls.children[1].value = 0.5  # triggers a redraw
    controls.children[0].value = "this movie"
    redraw()
    assert len(plt.get_fignums()) == before  # each figure is closed after display
