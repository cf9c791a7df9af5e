"""Evaluate a policy on fixed prompts: reward-model score, gold score and KL from the reference.

Sampling here runs inside ``torch.random.fork_rng``, so an evaluation in the middle of a run
does not change the run's random numbers. Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import torch

from ._checks import require_int, require_texts
from .generation import response_logprobs, sample
from .kl import kl_estimate


@torch.no_grad()
def evaluate_policy(
    policy, preset, n_prompts: int = 128, seed: int = 1234, max_new_tokens: int | None = None
) -> dict:
    """Sample one response to each of the first ``n_prompts`` prompts; score them.

    Returns a dict: ``score`` (mean reward-model score), ``gold`` (mean gold score, or None),
    ``kl`` (mean per-sequence KL from the reference, ``sum_t k1``), and the ``texts``.
    ``max_new_tokens=None`` takes the preset's; ``seed`` and ``max_new_tokens`` are checked
    as :func:`~rlhf_edu.generation.sample` checks them.
    """
    if require_int("n_prompts", n_prompts, 1) > len(preset.prompts):
        raise ValueError(
            f"n_prompts: expected an int in [1, {len(preset.prompts)}], got {n_prompts!r}"
        )
    if max_new_tokens is None:
        max_new_tokens = preset.max_new_tokens
    was_training = policy.training
    policy.eval()
    devices = [preset.device] if preset.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        roll = sample(
            policy,
            preset.tokenizer,
            preset.prompts[:n_prompts],
            max_new_tokens=max_new_tokens,
            seed=seed,
        )
    policy.train(was_training)
    ref = response_logprobs(preset.ref_policy, roll)
    kl = (kl_estimate(roll.logprobs, ref) * roll.mask).sum(1)
    scores = preset.reward(roll.texts)
    gold = preset.gold(roll.texts) if preset.gold is not None else None
    return {
        "score": scores.mean().item(),
        "gold": gold.mean().item() if gold is not None else None,
        "kl": kl.mean().item(),
        "texts": roll.texts,
        "scores": scores.tolist(),
        "golds": gold.tolist() if gold is not None else None,
    }


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016): different word n-grams / all word n-grams in ``texts``.

    Words are split on whitespace; an n-gram never crosses two texts. 1.0 means no n-gram
    occurs twice in the whole batch; lower means the texts repeat themselves or each other.
    0.0 when no text has ``n`` words. Taught in notebooks/01_generating_text.ipynb (distinct-2
    against the temperature) and used in notebooks/03_why_rl.ipynb.
    """
    texts = require_texts("texts", texts)
    require_int("n", n, 1)
    grams = [tuple(w[i : i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / max(1, len(grams))
