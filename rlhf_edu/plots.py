"""Training curves of PPO runs: a static figure, and a live one that redraws during training.

``history`` is the trainer's list of metric dicts (one per step); several runs are passed
as ``{name: history}`` and overlaid. Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

# (metric key, panel title) for the six panels of a PPO run.
PANELS = [
    ("objective/scores", "reward-model score"),
    ("objective/gold", "gold score"),
    ("objective/kl", "KL(policy || reference), nats/sequence"),
    ("policy/clipfrac_avg", "clip fraction"),
    ("policy/entropy_avg", "entropy per token"),
    ("loss/value_avg", "value loss"),
]


def plot_runs(runs: dict[str, list[dict]], panels=PANELS, fig=None):
    """Overlay the curves of several runs, one panel per metric; return the Figure.

    Panels whose metric no run has (e.g. gold on the gpt2-imdb preset) are left out.
    """
    if not isinstance(runs, dict):
        raise ValueError("runs: expected a dict {run name: history (list of metric dicts)}")
    present = [(k, t) for k, t in panels if any(h and k in h[0] for h in runs.values())]
    if not present:
        present = panels[:1]
    n = len(present)
    cols = 3 if n > 2 else n
    rows = -(-n // cols)
    if fig is None:
        fig = plt.figure(figsize=(4.2 * cols, 2.8 * rows))
    fig.clear()
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, (key, title) in zip(axes, present):
        for name, history in runs.items():
            steps = [m["step"] for m in history if key in m]
            values = [m[key] for m in history if key in m]
            ax.plot(steps, values, label=name, lw=1.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PPO step")
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    if len(runs) > 1 or any(runs):
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


class LivePlot:
    """A trainer callback that redraws the curves every ``every`` steps in a notebook.

    ``trainer.callbacks.append(LivePlot())``: the figure is shown once and updated in place
    (an IPython display handle), so the output does not grow with the run. Outside a notebook
    it does nothing until :meth:`final`.
    """

    def __init__(self, every: int = 5, name: str = "this run", others: dict | None = None):
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every: expected an int >= 1, got {every!r}")
        self.every = every
        self.name = name
        self.others = dict(others or {})
        self.handle = None
        self.fig = None

    def _draw(self, history):
        self.fig = plot_runs({**self.others, self.name: history}, fig=self.fig)
        return self.fig

    def __call__(self, trainer, metrics) -> None:
        if trainer.step % self.every and trainer.step != trainer.config.steps:
            return
        try:
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython ships with the course
            return
        fig = self._draw(trainer.history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        elif self.handle is not None:
            self.handle.update(fig)
        plt.close(fig)

    def final(self, history):
        """Return the figure of the whole run (for a script or a test)."""
        return self._draw(history)
