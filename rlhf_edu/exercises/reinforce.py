"""Checker for lesson 03's exercise: the REINFORCE loss ``my_reinforce_loss``.

Taught in notebooks/03_why_rl.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_callable
from rlhf_edu.exercises import ExerciseError, compare, learner_gradient, passed
from rlhf_edu.reinforce import reinforce_loss

FORMULA = "loss = -mean_b((R_b - baseline) * sum_t mask_bt * logprobs_bt)"
GARBAGE = -7.0  # what padded positions hold in the masking case: must not count


def _cases() -> list[tuple[str, tuple]]:
    """Named cases, each isolating one thing: (name, (logprobs, rewards, mask, baseline))."""
    gen = torch.Generator().manual_seed(3)
    logprobs = -2 * torch.rand(3, 4, generator=gen)  # (B=3, T=4) log-probs < 0
    full = torch.ones(3, 4)
    rewards = torch.tensor([1.0, 2.0, 0.5])
    padded = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    with_garbage = torch.where(padded.bool(), logprobs, torch.full_like(logprobs, GARBAGE))
    signed = torch.tensor([1.0, -2.0, 0.5])
    return [
        ("sign convention and reductions (no padding, baseline 0)", (logprobs, rewards, full, 0.0)),
        ("baseline subtraction (no padding, baseline 1.5)", (logprobs, rewards, full, 1.5)),
        (
            "baseline as a 0-dim tensor (the batch-mean reward)",
            (logprobs, signed, full, signed.mean()),
        ),
        (
            "masking of padded tokens (padding holds log-prob -7.0)",
            (with_garbage, rewards, padded, 0.0),
        ),
        ("masking and baseline together", (with_garbage, signed, padded, 0.25)),
    ]


def check_reinforce_loss(fn) -> None:
    """Check ``fn(logprobs, rewards, mask, baseline)`` against :func:`reinforce_loss`.

    ``logprobs``, ``mask``: ``(B, T)``; ``rewards``: ``(B,)``; ``baseline``: a number or a 0-dim
    tensor. Expected: ``-mean_b((R_b - baseline) * sum_t mask_bt * logprobs_bt)``, a 0-dim
    tensor, differentiable in ``logprobs``. Cases: sign convention, baseline subtraction,
    masking of padded tokens, and the gradient direction. Raises :class:`ExerciseError` naming
    the first case that differs; prints a success line otherwise.

    Taught in notebooks/03_why_rl.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    cases = _cases()
    for name, (logprobs, rewards, mask, baseline) in cases:
        expected = reinforce_loss(logprobs, rewards, mask, baseline)
        got = fn(logprobs.clone(), rewards.clone(), mask.clone(), baseline)
        if name.startswith("sign") and _close(got, -expected):
            raise ExerciseError(
                f"{name}: expected {expected.item():.5f}, got {float(got):.5f}, its negative. "
                "Return the loss to MINIMISE (gradient descent), "
                "-(R - baseline) * log p(y), not the objective to maximise"
            )
        compare(f"{name}: {FORMULA}", got, expected)
    _check_gradient(fn)
    passed("my_reinforce_loss", len(cases) + 1)


def _check_gradient(fn) -> None:
    name = "gradient direction (a descent step must raise log p(y) when R > baseline)"
    logprobs, rewards, mask, baseline = _cases()[-1][1]
    logprobs = logprobs.clone().requires_grad_(True)
    grad = learner_gradient(
        name,
        fn(logprobs, rewards.clone(), mask.clone(), baseline),
        logprobs,
        "the loss does not depend on logprobs through autograd "
        "(did you detach them, call .item() or build a new tensor?)",
    )
    # d loss / d logprobs_bt = -(R_b - baseline) * mask_bt / B
    expected = -(rewards - baseline)[:, None] * mask / len(rewards)
    compare(f"{name}: d loss / d logprobs = -(R - baseline) * mask / B", grad, expected)


def _close(got, expected: torch.Tensor) -> bool:
    try:
        got = torch.as_tensor(got, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError):
        return False
    return got.shape == expected.shape and bool(torch.allclose(got, expected.float(), atol=1e-5))
