"""Checker for lesson 10's exercise: the Dr. GRPO loss ``my_dr_grpo_loss``.

Taught in notebooks/10_after_ppo.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_callable
from rlhf_edu.advantages import masked_aggregate
from rlhf_edu.beyond import group_advantages
from rlhf_edu.exercises import ExerciseError, compare, passed
from rlhf_edu.ppo import clipped_surrogate, probability_ratio

FORMULA = (
    "loss = -sum_{i,t} mask_it * min(r_it A_i, clip(r_it, 1-eps, 1+eps) A_i) / (B * max_len), "
    "A_i = R_i - mean of its group, r_it = exp(logprobs - old_logprobs)"
)


def dr_grpo_loss(logprobs, old_logprobs, rewards, mask, group_size, max_len, clip_eps=0.2):
    """The reference: Dr. GRPO's loss (Liu et al. 2025) for ``(B, T)`` inputs and ``(B,)`` rewards."""
    advantages = group_advantages(rewards, group_size, "grpo", scale_rewards=False)
    ratio = probability_ratio(logprobs, old_logprobs)
    objective = clipped_surrogate(ratio, advantages[:, None].expand_as(ratio), clip_eps)
    return -masked_aggregate(objective, mask, "constant", max_len)


def _variant(case, how=None, scale=False, clip=True):
    """The loss of ``case`` with one thing changed (a usual slip), for the hints."""
    logprobs, old, rewards, mask, G, max_len, eps = case
    advantages = group_advantages(rewards, G, "grpo", scale_rewards=scale)
    ratio = probability_ratio(logprobs, old)
    adv = advantages[:, None].expand_as(ratio)
    objective = clipped_surrogate(ratio, adv, eps) if clip else ratio * adv
    return -masked_aggregate(objective, mask, how or "constant", max_len)


def _cases():
    """Named cases (name, (logprobs, old_logprobs, rewards, mask, group_size, max_len, clip_eps))."""
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 5, generator=g) * 2
    moved = old + 0.4 * torch.randn(4, 5, generator=g)  # ratios from about 0.5 to 2
    full = torch.ones(4, 5)
    ragged = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    two = torch.tensor([1.0, 3.0, 0.0, 0.0])
    return [
        ("ratio 1, one group of 4, no padding", (old, old, rewards, full, 4, 5, 0.2)),
        (
            "ratio 1, two groups of 2 (consecutive rows share a prompt)",
            (old, old, two, full, 2, 5, 0.2),
        ),
        (
            "moved ratios, responses of different lengths (mask)",
            (moved, old, rewards, ragged, 4, 5, 0.2),
        ),
        (
            "ratio 1, max_len 8 longer than the batch's 5 tokens",
            (old, old, rewards, ragged, 4, 8, 0.2),
        ),
        ("moved ratios: the clip matters", (moved, old, two, ragged, 2, 5, 0.2)),
        ("moved ratios, clip_eps 0.1", (moved, old, rewards, full, 4, 6, 0.1)),
    ]


def check_dr_grpo_loss(fn) -> None:
    """Check ``fn(logprobs, old_logprobs, rewards, mask, group_size, max_len, clip_eps)``.

    Inputs: ``(B, T)`` log-probs, old log-probs and 0/1 mask, ``(B,)`` rewards in consecutive
    groups of ``group_size``; expected: the 0-dim Dr. GRPO loss (:data:`FORMULA`). Raises
    :class:`ExerciseError` naming the first case that differs, with a hint for the usual slips
    (dividing by the group's std, GRPO's per-sequence mean or the token mean instead of the
    constant, padding counted, no clip); prints a success line otherwise.

    Taught in notebooks/10_after_ppo.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    cases = _cases()
    for name, case in cases:
        logprobs, old, rewards, mask, G, max_len, eps = case
        expected = dr_grpo_loss(*case)
        got = fn(logprobs.clone(), old.clone(), rewards.clone(), mask.clone(), G, max_len, eps)
        _hint(name, got, case, expected)
        compare(f"{name}: {FORMULA}", got, expected, atol=1e-5)
    passed("my_dr_grpo_loss", len(cases))


def _hint(name, got, case, expected) -> None:
    """Raise a named error when ``got`` matches a known slip that is wrong on this case."""
    if not isinstance(got, torch.Tensor) or got.shape != ():
        return
    logprobs, old, rewards, mask, G, max_len, eps = case
    slips = [
        (_variant(case, scale=True), "you divided by the group's std; Dr. GRPO only subtracts the mean"),
        (_variant(case, "sequence_mean"), ("you took each response's mean (GRPO); Dr. GRPO divides "
         "the sum over all valid tokens by the constant B * max_len")),
        (_variant(case, "token_mean"), ("you divided by the number of valid tokens (the token "
         "mean); Dr. GRPO divides by the constant B * max_len")),
        (_variant(case, clip=False), "you left out the clip: take min(r A, clip(r, 1-eps, 1+eps) A)"),
        (dr_grpo_loss(logprobs, old, rewards, torch.ones_like(mask), G, max_len, eps),
         "padding counted: multiply by the mask before summing"),
    ]  # fmt: skip
    for wrong, why in slips:
        close = torch.allclose(got.detach().float(), wrong.float(), atol=1e-5)
        if close and not torch.allclose(wrong, expected, atol=1e-5):
            raise ExerciseError(f"{name}: {why}")
