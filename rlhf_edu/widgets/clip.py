"""The clip explorer: PPO's clipped objective and its gradient against the ratio (lesson 04).

``L(r) = min(r * A, clip(r, 1 - eps, 1 + eps) * A)``. Its slope ``dL/dr`` is ``A`` where the
plain term ``r * A`` is taken and 0 where the clipped term is taken: once the ratio has moved
past ``1 + eps`` (when ``A > 0``) or below ``1 - eps`` (when ``A < 0``), the token stops
pushing. The gradient with respect to the weights is ``dL/dr * r * grad log pi``, so it is 0
exactly where ``dL/dr`` is.

``plot_clip`` draws it; ``batch_clip_fraction`` and ``clip_breakdown`` measure it on a real
batch; ``clip_cases`` tabulates the four cases; ``show_clip_explorer`` adds sliders.

Each takes an optional ``clip_eps_high``: a separate upper range, ``clip(r, 1 - eps,
1 + eps_high)``, DAPO's clip-higher (Yu et al. 2025); None means the symmetric ``eps``.

Taught in notebooks/04_ratios_and_clipping.ipynb.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from rlhf_edu._checks import require_float_tensor, require_mask, require_number, require_same_shape
from rlhf_edu.ppo import clipped_surrogate

RATIO_RANGE = (0.0, 2.0)  # the ratio axis of the plot
# Slider labels get their full width (the default 80 px cut "advantage A" short).
LABEL_STYLE = {"description_width": "100px"}
SLIDER_LAYOUT = {"width": "420px"}


def objective_and_slope(
    ratios: torch.Tensor, advantage: float, clip_eps: float, clip_eps_high: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``L(r) = min(r A, clip(r, 1-eps, 1+eps_high) A)`` and ``dL/dr`` at each ratio.

    ``ratios``: a float tensor of any shape; ``advantage``: a number; ``clip_eps`` in (0, 1).
    The slope comes from autograd through ``ppo.clipped_surrogate`` (``A`` where the plain
    term is taken, 0 where the clipped one is). Returns two tensors shaped like ``ratios``.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    ratios = require_float_tensor("ratios", ratios)
    advantage = require_number("advantage", advantage)
    r = ratios.detach().clone().requires_grad_(True)
    objective = clipped_surrogate(r, torch.full_like(r, advantage), clip_eps, clip_eps_high)
    (slope,) = torch.autograd.grad(objective.sum(), r)
    return objective.detach(), slope


def plot_clip(
    clip_eps: float = 0.2,
    advantage: float = 1.0,
    ratios: torch.Tensor | None = None,
    batch_clipfrac: float | None = None,
    clip_eps_high: float | None = None,
):
    """Draw ``min(r A, clip(r, 1-eps, 1+eps_high) A)`` and its slope ``dL/dr`` for ``r`` in [0, 2].

    Top panel: the objective (solid) and the plain term ``r A`` (dashed); bottom panel: the
    slope. Grey bands mark where the slope, hence the gradient, is 0. With ``ratios`` (a
    tensor of the valid tokens' ratios from a real batch, any shape) a third panel shows their
    histogram (values outside [0, 2] are counted at the edges), and ``batch_clipfrac`` (a
    fraction) goes into its title. Returns the matplotlib Figure.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    clip_eps = require_number("clip_eps", clip_eps, 0.0, 1.0, low_open=True, high_open=True)
    high = _high(clip_eps, clip_eps_high)
    advantage = require_number("advantage", advantage)
    if batch_clipfrac is not None:
        batch_clipfrac = require_number("batch_clipfrac", batch_clipfrac, 0.0, 1.0)
    r = torch.linspace(*RATIO_RANGE, 401, dtype=torch.float64)
    objective, slope = objective_and_slope(r, advantage, clip_eps, high)

    n_panels = 2 if ratios is None else 3
    fig, axes = plt.subplots(n_panels, 1, figsize=(7, 2.4 * n_panels), sharex=True)
    ax_obj, ax_grad = axes[0], axes[1]
    ax_obj.plot(r, r * advantage, "--", color="grey", label="r·A (unclipped)")
    ax_obj.plot(r, objective, color="C0", lw=2, label="min(r·A, clip(r)·A)")
    ax_obj.set_ylabel("objective L(r)")
    band = (
        f"clip_eps = {clip_eps:g}"
        if high == clip_eps
        else f"eps = {clip_eps:g}, eps_high = {high:g}"
    )
    ax_obj.set_title(f"{band}, A = {advantage:g}")
    ax_grad.plot(r, slope, color="C3", lw=2, label="dL/dr")
    ax_grad.set_ylabel("slope dL/dr")
    ax_grad.axhline(0, color="black", lw=0.5)

    for k, (start, end) in enumerate(_runs((slope == 0).tolist())):
        for ax in axes[:2]:
            label = "gradient is 0" if (k == 0 and ax is ax_obj) else None
            ax.axvspan(float(r[start]), float(r[end]), color="0.85", zorder=0, label=label)
    for ax in axes:
        for bound in (1 - clip_eps, 1 + high):
            ax.axvline(bound, color="black", ls=":", lw=1)
    ax_obj.legend(loc="best", fontsize=8)

    if ratios is not None:
        ratios = require_float_tensor("ratios", ratios).detach().flatten().double().cpu()
        shown = ratios.clamp(*RATIO_RANGE)
        ax_hist = axes[2]
        ax_hist.hist(shown.numpy(), bins=80, range=RATIO_RANGE, color="C2")
        ax_hist.set_ylabel("tokens")
        title = f"ratios of {len(ratios)} tokens of the batch (dotted: the clip range)"
        if batch_clipfrac is not None:
            title += f" | clip fraction {batch_clipfrac:.1%}"
        ax_hist.set_title(title, fontsize=9)
    axes[-1].set_xlabel("ratio r = π_θ / π_old")
    axes[-1].set_xlim(*RATIO_RANGE)
    fig.tight_layout()
    return fig


def batch_clip_fraction(
    ratios: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
) -> float:
    """Fraction of valid tokens where the clipped term is the one taken (and differs).

    The ``clipfrac`` that ``ppo.policy_loss`` logs: the mean over valid tokens of
    ``[min(r A, clip(r) A) < r A]``. ``ratios``, ``advantages``, ``mask``: ``(B, T)``.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    counts = clip_breakdown(ratios, advantages, mask, clip_eps, clip_eps_high)
    return (counts["upper_binds"] + counts["lower_binds"]) / counts["valid"]


def clip_breakdown(
    ratios: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
) -> dict[str, int]:
    """Count, over valid tokens, where the ratio sits and which bound of the clip binds.

    Returns a dict of ints: ``valid`` tokens; ``above`` (``r > 1 + eps_high``) and ``below``
    (``r < 1 - eps``); ``upper_binds`` and ``lower_binds``: tokens where the clipped term is
    the one taken (``min(r A, clip(r) A) < r A``) above and below the band. The upper bound
    can only bind when ``A > 0`` and the lower one only when ``A < 0``. Inputs ``(B, T)``.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    ratios = require_float_tensor("ratios", ratios).detach()
    advantages = require_float_tensor("advantages", advantages).detach()
    require_same_shape("advantages", advantages, "ratios", ratios)
    valid = require_mask("mask", mask, ratios.shape, prefix=False)
    clip_eps = require_number("clip_eps", clip_eps, 0.0, 1.0, low_open=True, high_open=True)
    high = _high(clip_eps, clip_eps_high)
    taken = clipped_surrogate(ratios, advantages, clip_eps, high) < ratios * advantages
    above, below = ratios > 1 + high, ratios < 1 - clip_eps
    return {
        "valid": int(valid.sum()),
        "above": int((above & valid).sum()),
        "below": int((below & valid).sum()),
        "upper_binds": int((taken & above & valid).sum()),
        "lower_binds": int((taken & below & valid).sum()),
    }


def clip_cases(clip_eps: float = 0.2) -> list[dict]:
    """Tabulate the four cases of ``min(r A, clip(r, 1-eps, 1+eps) A)`` outside the band.

    One row per case (``A = +1`` or ``-1``; ``r = 1.5 (1 + eps)`` above the band or
    ``r = (1 - eps) / 2`` below it), each a dict with ``case``, ``r``, ``A``, ``rA``,
    ``clipped`` (``clip(r) A``), ``objective``, ``taken`` (which term the min picks),
    ``slope`` (``dL/dr`` by autograd) and ``gradient_zero``. Print it with
    :func:`format_cases`.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    clip_eps = require_number("clip_eps", clip_eps, 0.0, 1.0, low_open=True, high_open=True)
    high, low = 1.5 * (1 + clip_eps), 0.5 * (1 - clip_eps)
    rows = []
    for a, r, name in (
        (1.0, high, "A > 0, r > 1+eps"),
        (1.0, low, "A > 0, r < 1-eps"),
        (-1.0, high, "A < 0, r > 1+eps"),
        (-1.0, low, "A < 0, r < 1-eps"),
    ):
        objective, slope = objective_and_slope(torch.tensor([r], dtype=torch.float64), a, clip_eps)
        clipped = min(max(r, 1 - clip_eps), 1 + clip_eps) * a
        taken = "clip(r)·A" if objective.item() < r * a else "r·A"
        rows.append(
            {
                "case": name,
                "r": r,
                "A": a,
                "rA": r * a,
                "clipped": clipped,
                "objective": objective.item(),
                "taken": taken,
                "slope": slope.item(),
                "gradient_zero": slope.item() == 0,
            }
        )
    return rows


def format_cases(rows: list[dict]) -> str:
    """Format the rows of :func:`clip_cases` as a fixed-width text table.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    head = f"{'case':<18} {'r':>5} {'A':>5} {'r·A':>6} {'clip(r)·A':>9}  {'min takes':<10}"
    head += f" {'dL/dr':>6}  gradient"
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(
            f"{row['case']:<18} {row['r']:>5.2f} {row['A']:>5.1f} {row['rA']:>6.2f} "
            f"{row['clipped']:>9.2f}  {row['taken']:<10} {row['slope']:>6.2f}  "
            + ("zero" if row["gradient_zero"] else "non-zero")
        )
    return "\n".join(lines)


def show_clip_explorer(
    ratios: torch.Tensor | None = None,
    advantages: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    clip_eps: float = 0.2,
    advantage: float = 1.0,
    clip_eps_high: float | None = None,
) -> None:
    """Show the clip explorer: eps, eps_high and advantage sliders over :func:`plot_clip`.

    The ``eps_high`` slider sets the upper range on its own (DAPO's clip-higher); it starts at
    ``clip_eps_high`` (None: at ``clip_eps``, the symmetric clip), and while it equals
    ``clip_eps`` it follows the ``clip_eps`` slider, so the clip stays symmetric until it is moved.

    With a real batch (``ratios``, ``advantages``, ``mask``, all ``(B, T)``; ``mask``
    defaults to all ones) the plot adds the histogram of its ratios and the clip fraction
    for the chosen eps (the advantage slider only moves the curves; the batch keeps its own
    advantages). Draws at the default values first, then redraws on every change.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    import ipywidgets as widgets
    from IPython.display import display

    valid_ratios = None
    if ratios is not None:
        ratios = require_float_tensor("ratios", ratios).detach()
        if advantages is None:
            raise ValueError("advantages: expected a tensor along with ratios, got None")
        if mask is None:
            mask = torch.ones_like(ratios)
        valid = require_mask("mask", mask, ratios.shape, prefix=False)
        valid_ratios = ratios[valid]

    def slider(value: float, low: float, high: float, step: float, description: str):
        return widgets.FloatSlider(
            value=value,
            min=low,
            max=high,
            step=step,
            description=description,
            style=LABEL_STYLE,
            layout=SLIDER_LAYOUT,
            continuous_update=False,
        )

    eps_slider = slider(clip_eps, 0.05, 0.5, 0.05, "clip_eps")
    high_slider = slider(_high(clip_eps, clip_eps_high), 0.05, 0.5, 0.01, "eps_high")
    adv_slider = slider(advantage, -2.0, 2.0, 0.1, "advantage A")
    out = widgets.Output()

    def draw(_change=None) -> None:
        eps, high = eps_slider.value, high_slider.value
        frac = None
        if valid_ratios is not None:
            frac = batch_clip_fraction(ratios, advantages, mask, eps, high)
        with out:
            out.clear_output(wait=True)
            fig = plot_clip(eps, adv_slider.value, valid_ratios, frac, high)
            display(fig)
            plt.close(fig)

    def follow(change) -> None:  # a symmetric clip stays symmetric until eps_high is moved
        if abs(high_slider.value - change["old"]) < 1e-9:
            high_slider.value = change["new"]

    eps_slider.observe(follow, names="value")
    for slider in (eps_slider, high_slider, adv_slider):
        slider.observe(draw, names="value")
    draw()  # at the defaults, before the sliders, so a static render shows the plot too
    display(widgets.VBox([widgets.HBox([eps_slider, high_slider]), adv_slider, out]))


def _high(clip_eps: float, clip_eps_high: float | None) -> float:
    """The upper clip range: ``clip_eps_high`` (checked, > 0) or, when None, ``clip_eps``."""
    if clip_eps_high is None:
        return clip_eps
    return require_number("clip_eps_high", clip_eps_high, 0.0, low_open=True)


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(start, end) index pairs of the maximal runs of True in ``flags``."""
    runs, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs
