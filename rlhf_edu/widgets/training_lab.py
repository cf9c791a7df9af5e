"""The training lab of lesson 07: pick clip range, beta and steps, press Train, compare runs.

``run_experiment`` is a plain function (a fresh policy from the preset's reference, a PPO
run, its history); ``plot_runs`` overlays the histories; ``show_training_lab`` puts sliders
and a Train button on top. Each new run is added to ``runs`` and drawn over the earlier
ones. Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..plots import plot_runs
from ..trainer import PPOConfig, PPOTrainer


def run_name(clip_eps: float, beta: float, steps: int) -> str:
    """The label of a run in the legend."""
    return f"eps={clip_eps:g}, beta={beta:g}, {steps} steps"


def run_experiment(
    preset,
    clip_eps: float = 0.2,
    beta: float = 0.05,
    steps: int = 20,
    progress: bool = True,
    **config,
) -> list[dict]:
    """Train a fresh copy of the preset's reference policy with PPO; return its history.

    ``config`` passes any other :class:`PPOConfig` field (batch_size, lr, seed, ...).
    Taught in notebooks/07_ppo.ipynb.
    """
    cfg = PPOConfig(
        clip_eps=clip_eps,
        beta=beta,
        steps=steps,
        max_new_tokens=config.pop("max_new_tokens", preset.max_new_tokens),
        **config,
    )
    trainer = PPOTrainer(
        cfg,
        preset.fresh_policy(),
        preset.ref_policy,
        preset.tokenizer,
        preset.reward,
        preset.prompts,
        gold_fn=preset.gold,
    )
    return trainer.train(progress=progress)


def show_training_lab(preset, runs: dict | None = None, **config):
    """Display the lab: sliders for clip range, beta and steps, a Train button, the curves.

    ``runs`` seeds the comparison (e.g. ``{"main run": history}``); with no widget front end
    the cell still shows those curves. Returns ``runs`` (it grows as you train).
    """
    import ipywidgets as w
    from IPython.display import display

    runs = runs if runs is not None else {}
    eps = w.FloatSlider(
        value=0.2, min=0.05, max=0.5, step=0.05, description="clip eps", continuous_update=False
    )
    beta = w.FloatLogSlider(
        value=0.05, base=10, min=-3, max=0, step=0.25, description="beta", continuous_update=False
    )
    steps = w.IntSlider(
        value=15, min=5, max=60, step=5, description="steps", continuous_update=False
    )
    button = w.Button(description="Train", button_style="primary", icon="play")
    clear = w.Button(description="Clear runs")
    status = w.HTML()
    out = w.Output()

    def redraw():
        with out:
            out.clear_output(wait=True)
            if runs:
                fig = plot_runs(runs)
                display(fig)
                plt.close(fig)
            else:
                print("No runs yet: pick settings and press Train.")

    def on_train(_):
        button.disabled = True
        status.value = f"training {run_name(eps.value, beta.value, steps.value)} ..."
        try:
            with out:
                history = run_experiment(preset, eps.value, beta.value, steps.value, **config)
            runs[run_name(eps.value, beta.value, steps.value)] = history
            last = history[-1]
            gold = f", gold {last['objective/gold']:.2f}" if "objective/gold" in last else ""
            status.value = (
                f"done: score {last['objective/scores']:.2f}{gold}, KL {last['objective/kl']:.1f}"
            )
        except (FloatingPointError, ValueError) as err:
            status.value = f"<b>stopped:</b> {err}"
        finally:
            button.disabled = False
        redraw()

    def on_clear(_):
        runs.clear()
        redraw()

    button.on_click(on_train)
    clear.on_click(on_clear)
    redraw()
    display(w.VBox([w.HBox([eps, beta, steps]), w.HBox([button, clear, status]), out]))
    return runs
