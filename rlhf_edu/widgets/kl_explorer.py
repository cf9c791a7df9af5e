"""The KL explorer: the KL-regularised optimum over a small set of responses (lesson 05).

Over a finite set of candidate responses ``y`` with reference probabilities ``pi_ref(y)``
and rewards ``R(y)``, the policy that maximises ``E_pi[R] - beta * KL(pi || pi_ref)`` is

    pi*(y) = pi_ref(y) * exp(R(y) / beta) / Z,     Z = sum_y pi_ref(y) * exp(R(y) / beta)

(``kl.kl_optimal_policy``). Small ``beta`` piles the mass on the highest reward; large
``beta`` leaves ``pi_ref`` as it is. Sweeping ``beta`` traces the best reward reachable at
each KL budget: a concave curve whose slope at ``pi*_beta`` is ``beta``.

``categorical_kl`` and ``kl_tradeoff`` compute it; ``plot_kl_optimum`` draws it;
``show_kl_explorer`` adds a beta slider.

Taught in notebooks/05_kl_penalty.ipynb.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from rlhf_edu._checks import require_float_tensor, require_number, require_same_shape
from rlhf_edu.kl import kl_optimal_policy

BETA_RANGE = (1e-3, 1e3)  # the beta sweep of the trade-off curve (and the slider's range)


def categorical_kl(probs: torch.Tensor, ref_probs: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(p || q) = sum_y p(y) * (log p(y) - log q(y))`` over the last dim.

    ``probs`` (p) and ``ref_probs`` (q): probabilities of the same shape ``(..., V)``, each
    summing to 1 over the last dim; terms with ``p(y) = 0`` count 0. Returns ``(...)`` in
    nats (``inf`` where ``q(y) = 0 < p(y)``).

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    probs = _require_probs("probs", probs)
    ref_probs = _require_probs("ref_probs", ref_probs)
    require_same_shape("ref_probs", ref_probs, "probs", probs)
    terms = probs * (torch.log(probs) - torch.log(ref_probs))
    return torch.where(probs > 0, terms, torch.zeros_like(terms)).sum(-1)


def kl_tradeoff(
    ref_probs: torch.Tensor, rewards: torch.Tensor, betas
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected reward and KL of the optimum ``pi*_beta`` for each beta of ``betas``.

    ``ref_probs``, ``rewards``: ``(V,)``; ``betas``: a sequence or 1-dim tensor of numbers
    > 0. Returns ``(expected_reward, kl)``, each ``(len(betas),)``:
    ``E_{pi*}[R] = sum_y pi*(y) R(y)`` and ``KL(pi* || pi_ref)`` in nats.

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    ref_probs, rewards = _require_candidates(ref_probs, rewards)
    betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
    if betas.numel() == 0 or not bool((betas > 0).all()) or not bool(betas.isfinite().all()):
        raise ValueError("betas: expected a non-empty sequence of finite numbers > 0")
    pis = torch.stack([kl_optimal_policy(ref_probs, rewards, float(b)) for b in betas])
    return pis @ rewards, categorical_kl(pis, ref_probs.expand_as(pis))


def plot_kl_optimum(ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float, labels=None):
    """Draw ``pi* ∝ pi_ref * exp(R / beta)`` against ``pi_ref``, and the reward/KL trade-off.

    Left panel: bars of ``pi_ref`` and ``pi*`` per candidate, sorted by reward (tick labels
    give ``labels`` and ``R``). Right panel: ``E_{pi*}[R]`` against ``KL(pi* || pi_ref)`` over
    a sweep of beta in ``BETA_RANGE``, the current beta marked, with the line of slope beta
    that touches the curve there (on it, ``E[R] - beta * KL`` is the optimum's value).
    ``ref_probs``, ``rewards``: ``(V,)``, ``ref_probs`` summing to 1; ``beta`` > 0;
    ``labels``: ``V`` strings (default: the candidate numbers). Returns the Figure.

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    ref_probs, rewards = _require_candidates(ref_probs, rewards)
    beta = require_number("beta", beta, 0.0, low_open=True)
    n = len(rewards)
    if labels is None:
        labels = [str(i) for i in range(n)]
    if isinstance(labels, str) or len(labels) != n:
        raise ValueError(f"labels: expected {n} labels (one per candidate), got {labels!r}")

    pi = kl_optimal_policy(ref_probs, rewards, beta)
    expected, divergence = float(pi @ rewards), float(categorical_kl(pi, ref_probs))
    order = torch.argsort(rewards).tolist()
    fig, (ax_bars, ax_curve) = plt.subplots(
        1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]}
    )

    x = torch.arange(n, dtype=torch.float64)
    ax_bars.bar(x - 0.2, ref_probs[order], width=0.4, color="0.6", label="π_ref")
    ax_bars.bar(x + 0.2, pi[order], width=0.4, color="C0", label="π*")
    ticks = [f"{_short(labels[i])}  R={float(rewards[i]):+.1f}" for i in order]
    ax_bars.set_xticks(x.tolist(), ticks, rotation=90, fontsize=7)
    ax_bars.set_ylabel("probability")
    ax_bars.set_title(f"π* ∝ π_ref·exp(R/β), β = {beta:.3g} (sorted by reward)")
    ax_bars.legend(loc="upper left")

    log_low, log_high = (math.log10(b) for b in BETA_RANGE)
    betas = torch.logspace(log_low, log_high, 121, dtype=torch.float64)
    curve_reward, curve_kl = kl_tradeoff(ref_probs, rewards, betas)
    ax_curve.plot(curve_kl, curve_reward, color="C0", lw=2, label="π*_β over a β sweep")
    span = torch.linspace(0, float(curve_kl.max()), 2, dtype=torch.float64)
    ax_curve.plot(
        span,
        expected + beta * (span - divergence),
        "--",
        color="C3",
        lw=1,
        label="slope β: E[R] − β·KL = const",
    )
    ax_curve.plot([divergence], [expected], "o", color="C3", ms=8, label=f"β = {beta:.3g}")
    ax_curve.plot([0.0], [float(ref_probs @ rewards)], "s", color="0.4", label="π_ref")
    low, high = float(curve_reward.min()), float(curve_reward.max())
    pad = 0.1 * (high - low) + 1e-3
    ax_curve.set_ylim(low - pad, high + pad)
    ax_curve.set_xlabel("KL(π* || π_ref)  [nats]")
    ax_curve.set_ylabel("E_π*[R]")
    ax_curve.set_title(f"E[R] = {expected:.3f}, KL = {divergence:.3f} nats")
    ax_curve.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def show_kl_explorer(
    ref_probs: torch.Tensor, rewards: torch.Tensor, labels=None, beta: float = 1.0
) -> None:
    """Show the KL explorer: a log-scale beta slider over :func:`plot_kl_optimum`.

    Arguments as in :func:`plot_kl_optimum`; ``beta`` is the starting value. Draws the plot
    once at that value (so a static render shows it), then redraws on every slider change.

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    import ipywidgets as widgets
    from IPython.display import display

    ref_probs, rewards = _require_candidates(ref_probs, rewards)
    low, high = BETA_RANGE
    beta = require_number("beta", beta, low, high)
    slider = widgets.FloatLogSlider(
        value=beta,
        base=10,
        min=math.log10(low),
        max=math.log10(high),
        step=0.05,
        description="β",
        readout_format=".3g",
        continuous_update=False,
    )
    out = widgets.Output()

    def draw(_change=None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = plot_kl_optimum(ref_probs, rewards, slider.value, labels)
            display(fig)
            plt.close(fig)

    slider.observe(draw, names="value")
    draw()  # at the default, before the slider, so a static render shows the plot too
    display(widgets.VBox([slider, out]))


def _require_probs(name: str, probs: object) -> torch.Tensor:
    probs = require_float_tensor(name, probs)
    if not bool((probs >= 0).all()):
        raise ValueError(f"{name}: expected non-negative probabilities")
    total = probs.sum(-1)
    if not torch.allclose(total, torch.ones_like(total), atol=1e-4):
        raise ValueError(f"{name}: expected probabilities that sum to 1 over the last dim")
    return probs


def _require_candidates(ref_probs, rewards) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``(V,)`` reference probabilities and rewards; return both as float64."""
    ref_probs = _require_probs("ref_probs", require_float_tensor("ref_probs", ref_probs, ndim=1))
    rewards = require_float_tensor("rewards", rewards, ndim=1)
    require_same_shape("rewards", rewards, "ref_probs", ref_probs)
    if not bool(rewards.isfinite().all()):
        raise ValueError("rewards: expected finite numbers")
    return ref_probs.detach().double().cpu(), rewards.detach().double().cpu()


def _short(label: str, width: int = 22) -> str:
    label = str(label).strip()
    return label if len(label) <= width else label[: width - 1] + "…"
