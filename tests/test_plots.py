import matplotlib

matplotlib.use("Agg")

import pytest

from rlhf_edu.plots import PANELS, LivePlot, plot_runs


def fake_history(n=5, gold=True, offset=0.0):
    out = []
    for s in range(1, n + 1):
        m = {"step": s, **{k: s * 0.1 + offset for k, _ in PANELS}}
        if not gold:
            m.pop("objective/gold")
        out.append(m)
    return out


class TestPlotRuns:
    def test_one_panel_per_metric_one_line_per_run(self):
        fig = plot_runs({"a": fake_history(), "b": fake_history(offset=1)})
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert [ax.get_title() for ax in axes] == [t for _, t in PANELS]
        for ax in axes:
            assert len(ax.lines) == 2
        ys = axes[0].lines[1].get_ydata()
        assert list(ys) == pytest.approx([s * 0.1 + 1 for s in range(1, 6)])

    def test_missing_metric_panel_is_dropped(self):
        fig = plot_runs({"imdb": fake_history(gold=False)})
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
        assert "gold score" not in titles and len(titles) == len(PANELS) - 1

    def test_rejects_a_bare_history(self):
        with pytest.raises(ValueError, match="runs"):
            plot_runs(fake_history())


class TestLivePlot:
    def test_final_figure_and_bad_every(self):
        lp = LivePlot(every=2, name="x", others={"earlier": fake_history()})
        fig = lp.final(fake_history(3))
        assert len(fig.axes[0].lines) == 2
        with pytest.raises(ValueError, match="every"):
            LivePlot(every=0)
