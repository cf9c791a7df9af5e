"""The sampling explorer: what temperature, top-k and top-p do to the next-token distribution.

Sampling draws the next token from ``softmax(filter(logits / T))``. The filters run in the
order ``generate`` applies them (temperature, then top-k, then top-p):

- **temperature** T divides the logits: T < 1 sharpens the distribution, T > 1 flattens it;
- **top-k** keeps the k most likely tokens (0 turns it off);
- **top-p** (nucleus) keeps the smallest set of most likely tokens whose probability adds
  up to at least p (1.0 turns it off).

Removed tokens get logit ``-inf`` (probability 0) and the rest are renormalised.

Taught in notebooks/01_generating_text.ipynb.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .._checks import require_int, require_number
from ..generation import require_fits_context, sample


def _check_settings(temperature, top_k, top_p) -> None:
    require_number("temperature", temperature, low=0, low_open=True)
    require_int("top_k", top_k, low=0)
    require_number("top_p", top_p, low=0, high=1, low_open=True)


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """Scale by the temperature, then apply top-k and top-p; removed tokens get ``-inf``.

    ``logits``: ``(..., V)``. Returns ``(..., V)`` float logits whose softmax is the
    distribution that sampling draws from. Agrees with transformers' ``TemperatureLogitsWarper``,
    ``TopKLogitsWarper`` and ``TopPLogitsWarper`` applied in that order. The most likely
    token is always kept.

    Taught in notebooks/01_generating_text.ipynb.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError("logits: expected a floating-point tensor (..., V)")
    if bool(torch.isnan(logits).any()):
        raise ValueError("logits: expected no NaN (-inf marks a removed token)")
    _check_settings(temperature, top_k, top_p)
    out = logits.float() / temperature
    if 0 < top_k < out.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]  # the k-th largest logit
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above
        remove_sorted = mass_before >= top_p  # the nucleus already holds p without this token
        remove_sorted[..., 0] = False
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        out = out.masked_fill(remove, float("-inf"))
    return out


@torch.no_grad()
def next_token_logits(model, tokenizer, prompt: str) -> torch.Tensor:
    """The raw logits ``(V,)`` of the token that would follow ``prompt``.

    ``prompt`` and its next token must fit the model's context (else ``ValueError``).
    Taught in notebooks/01_generating_text.ipynb.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt: expected a non-empty string, got {prompt!r}")
    device = next(model.parameters()).device
    enc = tokenizer(prompt, return_tensors="pt")
    require_fits_context(model, enc["input_ids"].shape[1], 1, name="prompt")
    ids, attention = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    return model(input_ids=ids, attention_mask=attention).logits[0, -1].float().cpu()


def next_token_probs(
    model, tokenizer, prompt: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """The distribution ``(V,)`` that sampling draws the next token from.

    ``softmax(filter_logits(logits, temperature, top_k, top_p))`` at the last position.

    Taught in notebooks/01_generating_text.ipynb.
    """
    logits = next_token_logits(model, tokenizer, prompt)
    return filter_logits(logits, temperature, top_k, top_p).softmax(dim=-1)


def token_label(tokenizer, token_id: int) -> str:
    """A readable label for one token: its text, with a leading space shown as ``␣``."""
    text = tokenizer.decode([int(token_id)])
    return text.replace(" ", "␣") if text.strip() else repr(text)


def plot_next_token(
    model,
    tokenizer,
    prompt: str,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    n_top: int = 15,
    ax=None,
):
    """Bar chart of the next-token distribution after ``prompt``, before and after filtering.

    The ``n_top`` most likely tokens (under the plain ``softmax(logits)``) are drawn twice:
    grey outlines for the unfiltered distribution (T = 1, no top-k or top-p), filled bars
    for the distribution sampling draws from at these settings (0 for removed tokens). The
    title says how many tokens survive and the entropy ``H = -sum p log p`` in nats.

    Returns the matplotlib Figure (drawn into ``ax`` when given).

    Taught in notebooks/01_generating_text.ipynb.
    """
    _check_settings(temperature, top_k, top_p)
    require_int("n_top", n_top, low=1)
    logits = next_token_logits(model, tokenizer, prompt)
    base = logits.softmax(dim=-1)
    probs = filter_logits(logits, temperature, top_k, top_p).softmax(dim=-1)
    n_top = min(n_top, base.numel())
    top = torch.topk(base, n_top).indices
    labels = [token_label(tokenizer, i) for i in top.tolist()]
    kept = int((probs > 0).sum())
    entropy = float(-(probs[probs > 0] * probs[probs > 0].log()).sum())

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.28 * n_top + 1.4))
    else:
        fig = ax.figure
    y = torch.arange(n_top).numpy()
    ax.barh(y, probs[top].numpy(), height=0.7, color="tab:blue", label="sampling draws from")
    ax.barh(
        y,
        base[top].numpy(),
        height=0.7,
        fill=False,
        edgecolor="grey",
        linewidth=1.0,
        label="softmax(logits): T=1, no filter",
    )
    ax.set_yticks(y, labels)
    ax.invert_yaxis()  # most likely token on top
    ax.set_xlabel("probability of the next token")
    ax.set_xlim(0, max(float(probs.max()), float(base.max())) * 1.08)
    k_text = top_k if top_k else "off"
    ax.set_title(
        f"next token after {prompt!r}\nT={temperature:g}, top-k={k_text}, top-p={top_p:g}: "
        f"{kept} of {base.numel()} tokens kept, entropy {entropy:.2f} nats",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def sample_continuations(
    model,
    tokenizer,
    prompt: str,
    n: int = 4,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    max_new_tokens: int = 24,
    seed: int | None = None,
) -> list[str]:
    """Sample ``n`` continuations of ``prompt`` at these settings; return prompt + response.

    Taught in notebooks/01_generating_text.ipynb.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt: expected a non-empty string, got {prompt!r}")
    require_int("n", n, low=1)
    rollout = sample(
        model,
        tokenizer,
        [prompt] * n,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
    )
    return rollout.texts


def _explorer(p, prompts=None, n_samples: int = 4):
    """Build the explorer: return ``(box, redraw)``; ``redraw()`` draws at the current values."""
    import ipywidgets as w
    from IPython.display import display

    if prompts is None:
        prompts = list(dict.fromkeys(p.prompts))[:8]  # unique, in order
    if not prompts:
        raise ValueError("prompts: expected at least one prompt")
    style = {"description_width": "110px"}
    layout = w.Layout(width="420px")
    prompt = w.Dropdown(options=prompts, value=prompts[0], description="prompt", style=style)
    temperature = w.FloatSlider(
        value=1.0, min=0.1, max=2.0, step=0.05, description="temperature T", style=style,
        layout=layout, continuous_update=False,
    )  # fmt: skip
    top_k = w.IntSlider(
        value=0, min=0, max=50, step=1, description="top-k (0 = off)", style=style,
        layout=layout, continuous_update=False,
    )  # fmt: skip
    top_p = w.FloatSlider(
        value=1.0, min=0.05, max=1.0, step=0.05, description="top-p (1 = off)", style=style,
        layout=layout, continuous_update=False,
    )  # fmt: skip
    resample = w.Button(description="new samples")
    out = w.Output()
    draws = [0]

    def redraw(*_):
        settings = {"temperature": temperature.value, "top_k": top_k.value, "top_p": top_p.value}
        with out:
            out.clear_output(wait=True)
            fig = plot_next_token(p.policy, p.tokenizer, prompt.value, **settings)
            display(fig)
            plt.close(fig)
            texts = sample_continuations(
                p.policy, p.tokenizer, prompt.value, n=n_samples,
                max_new_tokens=p.max_new_tokens, seed=draws[0], **settings,
            )  # fmt: skip
            draws[0] += 1
            print("fresh samples at these settings:")
            for t in texts:
                print("  •", t)

    for control in (prompt, temperature, top_k, top_p):
        control.observe(redraw, names="value")
    resample.on_click(redraw)
    controls = w.VBox([prompt, temperature, top_k, top_p, resample])
    return w.VBox([controls, out]), redraw


def show_sampling_explorer(p, prompts=None, n_samples: int = 4) -> None:
    """Sliders for temperature, top-k and top-p and a prompt menu over :func:`plot_next_token`.

    Each change redraws the next-token distribution and prints ``n_samples`` fresh samples
    at those settings. ``p`` is a preset (``p.policy``, ``p.tokenizer``); ``prompts``
    defaults to the first eight distinct ``p.prompts``.

    Taught in notebooks/01_generating_text.ipynb.
    """
    from IPython.display import display

    box, redraw = _explorer(p, prompts, n_samples)
    redraw()  # draw at the defaults, so a static render shows the plot too
    display(box)
