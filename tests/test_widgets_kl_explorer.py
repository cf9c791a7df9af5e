"""Tests for rlhf_edu.widgets.kl_explorer: exact KL, the reward/KL trade-off and its plot."""

import matplotlib

matplotlib.use("Agg")

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from rlhf_edu.kl import kl_optimal_policy
from rlhf_edu.widgets.kl_explorer import (
    categorical_kl,
    kl_tradeoff,
    plot_kl_optimum,
    show_kl_explorer,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def candidates(n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ref_probs = torch.softmax(torch.randn(n, generator=gen, dtype=torch.float64), 0)
    rewards = 2 * torch.randn(n, generator=gen, dtype=torch.float64)
    return ref_probs, rewards


class TestCategoricalKL:
    def test_matches_a_plain_loop(self):
        p, _ = candidates(seed=1)
        q, _ = candidates(seed=2)
        expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p.tolist(), q.tolist()))
        assert categorical_kl(p, q).item() == pytest.approx(expected)

    def test_zero_mass_counts_zero_and_batches(self):
        p = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
        q = torch.tensor([[0.25, 0.25, 0.5], [0.2, 0.3, 0.5]], dtype=torch.float64)
        torch.testing.assert_close(
            categorical_kl(p, q), torch.tensor([math.log(2), 0.0], dtype=torch.float64)
        )
        assert categorical_kl(q[0], p[0]).item() == math.inf

    def test_matches_torch_distributions(self):
        p, _ = candidates(seed=3)
        q, _ = candidates(seed=4)
        expected = torch.distributions.kl_divergence(
            torch.distributions.Categorical(probs=p), torch.distributions.Categorical(probs=q)
        )
        torch.testing.assert_close(categorical_kl(p, q), expected)

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="probs"):
            categorical_kl(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]))
        with pytest.raises(ValueError, match="ref_probs"):
            categorical_kl(torch.tensor([0.5, 0.5]), torch.tensor([1.5, -0.5]))
        with pytest.raises(ValueError, match="ref_probs"):
            categorical_kl(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]))


class TestTradeoff:
    def test_each_point_is_the_optimum(self):
        ref_probs, rewards = candidates()
        betas = [0.1, 1.0, 10.0]
        expected_reward, kls = kl_tradeoff(ref_probs, rewards, betas)
        for b, er, d in zip(betas, expected_reward, kls):
            pi = kl_optimal_policy(ref_probs, rewards, b)
            assert er.item() == pytest.approx((pi * rewards).sum().item())
            assert d.item() == pytest.approx(categorical_kl(pi, ref_probs).item())

    def test_monotone_and_limits(self):
        ref_probs, rewards = candidates()
        betas = torch.logspace(-3, 3, 61)
        expected_reward, kls = kl_tradeoff(ref_probs, rewards, betas)
        # larger beta: less reward, less KL
        assert (expected_reward.diff() <= 1e-12).all() and (kls.diff() <= 1e-12).all()
        best = rewards.argmax()
        assert expected_reward[0].item() == pytest.approx(rewards.max().item(), abs=1e-6)
        assert kls[0].item() == pytest.approx(-math.log(ref_probs[best].item()), abs=1e-4)
        assert expected_reward[-1].item() == pytest.approx(
            (ref_probs * rewards).sum().item(), abs=1e-2
        )
        assert kls[-1].item() == pytest.approx(0.0, abs=1e-5)

    def test_slope_of_the_curve_is_beta(self):
        ref_probs, rewards = candidates()
        beta, h = 0.7, 1e-4
        r, d = kl_tradeoff(ref_probs, rewards, [beta * (1 - h), beta * (1 + h)])
        slope = (r[1] - r[0]) / (d[1] - d[0])
        assert slope.item() == pytest.approx(beta, rel=1e-3)

    def test_rejects_bad_betas(self):
        ref_probs, rewards = candidates()
        with pytest.raises(ValueError, match="betas"):
            kl_tradeoff(ref_probs, rewards, [1.0, 0.0])
        with pytest.raises(ValueError, match="rewards"):
            kl_tradeoff(ref_probs, rewards[:3], [1.0])


class TestPlot:
    def test_bars_curve_and_marker(self):
        ref_probs, rewards = candidates()
        labels = [f"response {i}" for i in range(6)]
        fig = plot_kl_optimum(ref_probs, rewards, 0.5, labels)
        ax_bars, ax_curve = fig.axes
        assert "β = 0.5" in ax_bars.get_title()
        order = torch.argsort(rewards)
        heights = [bar.get_height() for bar in ax_bars.patches]
        pi = kl_optimal_policy(ref_probs, rewards, 0.5)
        np.testing.assert_allclose(heights[:6], ref_probs[order].numpy())
        np.testing.assert_allclose(heights[6:], pi[order].numpy())
        ticks = [t.get_text() for t in ax_bars.get_xticklabels()]
        assert ticks[-1].startswith(labels[int(rewards.argmax())])
        assert f"R={rewards.max().item():+.1f}" in ticks[-1]

        lines = {line.get_label(): line for line in ax_curve.get_lines()}
        kl_here = categorical_kl(pi, ref_probs).item()
        er_here = (pi * rewards).sum().item()
        x, y = lines["β = 0.5"].get_data()
        assert x[0] == pytest.approx(kl_here) and y[0] == pytest.approx(er_here)
        x, y = lines["π_ref"].get_data()
        assert x[0] == 0 and y[0] == pytest.approx((ref_probs * rewards).sum().item())
        x, y = lines["slope β: E[R] − β·KL = const"].get_data()
        assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(0.5)
        assert f"KL = {kl_here:.3f}" in ax_curve.get_title()
        curve_x, curve_y = lines["π*_β over a β sweep"].get_data()
        assert len(curve_x) == 121 and curve_y.max() == pytest.approx(
            rewards.max().item(), abs=1e-3
        )

    def test_default_labels_and_bad_inputs(self):
        ref_probs, rewards = candidates()
        fig = plot_kl_optimum(ref_probs.float(), rewards.float(), 2.0)
        assert fig.axes[0].get_xticklabels()[0].get_text().startswith(str(int(rewards.argmin())))
        with pytest.raises(ValueError, match="beta"):
            plot_kl_optimum(ref_probs, rewards, 0.0)
        with pytest.raises(ValueError, match="labels"):
            plot_kl_optimum(ref_probs, rewards, 1.0, labels=["a", "b"])
        with pytest.raises(ValueError, match="ref_probs"):
            plot_kl_optimum(ref_probs * 2, rewards, 1.0)
        with pytest.raises(ValueError, match="rewards"):
            plot_kl_optimum(ref_probs, rewards[:-1], 1.0)


def test_show_kl_explorer_draws_at_defaults(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs: shown.extend(objs))
    ref_probs, rewards = candidates()
    show_kl_explorer(ref_probs, rewards, beta=0.3)
    kinds = [type(x).__name__ for x in shown]
    assert "VBox" in kinds and "Figure" in kinds
    fig = next(x for x in shown if type(x).__name__ == "Figure")
    assert "β = 0.3" in fig.axes[0].get_title()
    slider = next(x for x in shown if type(x).__name__ == "VBox").children[0]
    assert type(slider).__name__ == "FloatLogSlider" and slider.value == pytest.approx(0.3)
    with pytest.raises(ValueError, match="beta"):
        show_kl_explorer(ref_probs, rewards, beta=1e6)
