"""Tests for rlhf_edu.widgets.clip: the clip explorer's plot, table and batch statistics."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from rlhf_edu.ppo import policy_loss
from rlhf_edu.widgets.clip import (
    batch_clip_fraction,
    clip_breakdown,
    clip_cases,
    format_cases,
    objective_and_slope,
    plot_clip,
    show_clip_explorer,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def batch(seed=0, batch=5, length=7):
    gen = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(batch, length, generator=gen, dtype=torch.float64) * 3
    old_logprobs = logprobs + 0.4 * torch.randn(batch, length, generator=gen, dtype=torch.float64)
    advantages = torch.randn(batch, length, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    mask = torch.arange(length) < lengths[:, None]
    return logprobs, old_logprobs, advantages, mask


class TestObjectiveAndSlope:
    @pytest.mark.parametrize("a", [1.5, -0.7])
    @pytest.mark.parametrize("eps", [0.1, 0.3])
    def test_case_form(self, a, eps):
        r = torch.tensor([0.2, 0.5, 0.95, 1.05, 1.5, 1.9], dtype=torch.float64)
        objective, slope = objective_and_slope(r, a, eps)
        if a > 0:  # A > 0: A * min(r, 1 + eps); slope 0 above the band
            expected = a * torch.clamp(r, max=1 + eps)
            expected_slope = torch.where(r > 1 + eps, 0.0, a)
        else:  # A < 0: A * max(r, 1 - eps); slope 0 below the band
            expected = a * torch.clamp(r, min=1 - eps)
            expected_slope = torch.where(r < 1 - eps, 0.0, a)
        torch.testing.assert_close(objective, expected)
        torch.testing.assert_close(slope, expected_slope.to(torch.float64))

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="ratios"):
            objective_and_slope([1.0], 1.0, 0.2)
        with pytest.raises(ValueError, match="clip_eps"):
            objective_and_slope(torch.ones(2), 1.0, 1.5)


class TestPlotClip:
    def test_two_panels_with_the_curves(self):
        fig = plot_clip(0.2, 1.0)
        ax_obj, ax_grad = fig.axes
        assert "clip_eps = 0.2" in ax_obj.get_title() and "A = 1" in ax_obj.get_title()
        labels = [line.get_label() for line in ax_obj.get_lines()]
        assert "min(r·A, clip(r)·A)" in labels and "r·A (unclipped)" in labels
        line = next(x for x in ax_obj.get_lines() if x.get_label().startswith("min"))
        r, y = line.get_data()
        np.testing.assert_allclose(y, np.minimum(r, 1.2), atol=1e-12)
        slope_line = next(x for x in ax_grad.get_lines() if x.get_label() == "dL/dr")
        r, s = slope_line.get_data()
        np.testing.assert_allclose(s, np.where(r > 1.2 + 1e-9, 0.0, 1.0))

    @pytest.mark.parametrize(("a", "lo", "hi"), [(1.0, 1.2, 2.0), (-1.0, 0.0, 0.8)])
    def test_shades_where_the_gradient_is_zero(self, a, lo, hi):
        fig = plot_clip(0.2, a)
        (span,) = fig.axes[0].patches  # one grey band (a Rectangle in data x-coordinates)
        start, end = span.get_x(), span.get_x() + span.get_width()
        assert start == pytest.approx(lo, abs=0.01) and end == pytest.approx(hi, abs=0.01)

    def test_batch_panel(self):
        ratios = torch.tensor([0.5, 1.0, 1.1, 1.5, 3.0])
        fig = plot_clip(0.2, -1.0, ratios, batch_clipfrac=0.25)
        assert len(fig.axes) == 3
        title = fig.axes[2].get_title()
        assert "5 tokens" in title and "25.0%" in title
        heights = [p.get_height() for p in fig.axes[2].patches]
        assert sum(heights) == 5  # the ratio 3.0 is counted at the edge

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="clip_eps"):
            plot_clip(0.0)
        with pytest.raises(ValueError, match="advantage"):
            plot_clip(0.2, "big")


class TestBatchStatistics:
    @pytest.mark.parametrize("seed", range(5))
    @pytest.mark.parametrize("eps", [0.1, 0.2, 0.4])
    def test_clip_fraction_matches_policy_loss(self, seed, eps):
        logprobs, old_logprobs, advantages, mask = batch(seed)
        ratios = torch.exp(logprobs - old_logprobs)
        _, stats = policy_loss(logprobs, old_logprobs, advantages, mask, eps)
        assert batch_clip_fraction(ratios, advantages, mask, eps) == pytest.approx(
            stats["clipfrac"]
        )

    def test_breakdown_counts(self):
        ratios = torch.tensor([[0.5, 0.5, 1.5, 1.5, 1.0, 0.5]])
        advantages = torch.tensor([[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]])
        mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
        counts = clip_breakdown(ratios, advantages, mask, 0.2)
        assert counts == {"valid": 5, "above": 2, "below": 2, "upper_binds": 1, "lower_binds": 1}
        assert batch_clip_fraction(ratios, advantages, mask, 0.2) == pytest.approx(2 / 5)

    def test_lower_bound_never_binds_with_positive_advantages(self):
        logprobs, old_logprobs, advantages, mask = batch(1)
        ratios = torch.exp(logprobs - old_logprobs)
        counts = clip_breakdown(ratios, advantages.abs() + 0.1, mask, 0.2)
        assert counts["below"] > 0 and counts["lower_binds"] == 0

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="advantages"):
            clip_breakdown(torch.ones(2, 3), torch.ones(2, 4), torch.ones(2, 3), 0.2)
        with pytest.raises(ValueError, match="mask"):
            batch_clip_fraction(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 2), 0.2)


class TestClipCases:
    def test_four_cases(self):
        rows = {row["case"]: row for row in clip_cases(0.2)}
        assert list(rows) == [
            "A > 0, r > 1+eps",
            "A > 0, r < 1-eps",
            "A < 0, r > 1+eps",
            "A < 0, r < 1-eps",
        ]
        zero = {name for name, row in rows.items() if row["gradient_zero"]}
        assert zero == {"A > 0, r > 1+eps", "A < 0, r < 1-eps"}
        for name, row in rows.items():
            assert row["objective"] == pytest.approx(min(row["rA"], row["clipped"]))
            assert row["taken"] == ("clip(r)·A" if name in zero else "r·A")
            assert row["slope"] == (0.0 if name in zero else row["A"])
        assert rows["A > 0, r > 1+eps"]["clipped"] == pytest.approx(1.2)
        assert rows["A < 0, r < 1-eps"]["clipped"] == pytest.approx(-0.8)

    def test_format(self):
        text = format_cases(clip_cases(0.3))
        assert text.count("\n") == 5 and "A < 0, r < 1-eps" in text and "zero" in text


def test_show_clip_explorer_draws_at_defaults(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    logprobs, old_logprobs, advantages, mask = batch(2)
    show_clip_explorer(torch.exp(logprobs - old_logprobs), advantages, mask)
    kinds = [type(x).__name__ for x in shown]
    assert "VBox" in kinds and "Figure" in kinds
    fig = next(x for x in shown if type(x).__name__ == "Figure")
    assert len(fig.axes) == 3 and "clip fraction" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="advantages"):
        show_clip_explorer(torch.ones(2, 3))


class TestClipHigher:
    """An upper range of its own (DAPO's clip-higher): clip(r, 1 - eps, 1 + eps_high)."""

    def test_slope_stops_at_the_upper_range_for_positive_advantages(self):
        r = torch.tensor([0.5, 1.1, 1.25, 1.35, 1.6], dtype=torch.float64)
        objective, slope = objective_and_slope(r, 1.0, 0.2, clip_eps_high=0.3)
        torch.testing.assert_close(objective, torch.clamp(r, max=1.3))
        torch.testing.assert_close(
            slope, torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
        )
        # negative advantages still stop at the lower range 1 - eps, whatever eps_high is
        _, slope_neg = objective_and_slope(r, -1.0, 0.2, clip_eps_high=0.3)
        torch.testing.assert_close(
            slope_neg, torch.tensor([0.0, -1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
        )

    def test_a_wider_upper_range_clips_fewer_positive_tokens_only(self):
        logprobs, old_logprobs, advantages, mask = batch(3, batch=8, length=9)
        old_logprobs[0, 0], advantages[0, 0] = logprobs[0, 0] - np.log(1.25), 1.0  # in (1.2, 1.28]
        ratios = torch.exp(logprobs - old_logprobs)
        sym = clip_breakdown(ratios, advantages, mask, 0.2)
        high = clip_breakdown(ratios, advantages, mask, 0.2, clip_eps_high=0.28)
        assert high["lower_binds"] == sym["lower_binds"]
        expected_upper = int(((ratios > 1.28) & (advantages > 0) & mask).sum())
        assert high["upper_binds"] == expected_upper < sym["upper_binds"]
        _, stats = policy_loss(logprobs, old_logprobs, advantages, mask.double(), 0.2, 0.28)
        frac = batch_clip_fraction(ratios, advantages, mask, 0.2, 0.28)
        assert frac == pytest.approx(stats["clipfrac"])

    def test_none_is_the_symmetric_clip(self):
        logprobs, old_logprobs, advantages, mask = batch(4)
        ratios = torch.exp(logprobs - old_logprobs)
        assert clip_breakdown(ratios, advantages, mask, 0.2) == clip_breakdown(
            ratios, advantages, mask, 0.2, clip_eps_high=0.2
        )

    def test_plot_marks_both_bounds_and_names_them(self):
        fig = plot_clip(0.2, 1.0, clip_eps_high=0.28)
        assert "eps_high = 0.28" in fig.axes[0].get_title()
        xs = sorted({round(line.get_xdata()[0], 6) for line in fig.axes[0].lines
                     if line.get_linestyle() == ":"})  # fmt: skip
        assert xs == [0.8, 1.28]

    def test_bad_upper_range_is_named(self):
        with pytest.raises(ValueError, match="clip_eps_high"):
            plot_clip(0.2, 1.0, clip_eps_high=-0.1)
        with pytest.raises(ValueError, match="clip_eps_high"):
            clip_breakdown(torch.ones(1, 2), torch.ones(1, 2), torch.ones(1, 2), 0.2, "wide")

    def test_explorer_has_an_eps_high_slider(self, monkeypatch):
        shown = []
        monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
        show_clip_explorer(clip_eps_high=0.28)
        box = next(x for x in shown if type(x).__name__ == "VBox")
        sliders = [w for w in box.children[0].children if hasattr(w, "description")]
        assert [s.description for s in sliders] == ["clip_eps", "eps_high"]
        assert sliders[1].value == pytest.approx(0.28)


def test_eps_high_follows_eps_until_moved(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    show_clip_explorer()
    box = next(x for x in shown if type(x).__name__ == "VBox")
    eps, high = box.children[0].children
    eps.value = 0.3
    assert high.value == pytest.approx(0.3)  # symmetric: follows
    high.value = 0.4
    eps.value = 0.1
    assert high.value == pytest.approx(0.4)  # decoupled once moved
