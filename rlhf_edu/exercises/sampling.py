"""Lesson 01's exercise: the log-probability of a whole response.

``log p(y | x) = sum_t mask_t * log_softmax(logits_t)[y_t]`` where ``logits[:, t]`` is the
distribution the model gave for ``tokens[:, t]``. Shapes: ``logits (B, T, V)``, ``tokens``
and ``mask`` ``(B, T)``; the answer is ``(B,)``.

Taught in notebooks/01_generating_text.ipynb.
"""

from __future__ import annotations

import torch

from .._checks import require_callable
from ..generation import token_logprobs
from . import compare, passed


def reference_sequence_logprob(
    logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``(B,)``: ``sum_t mask_t * log_softmax(logits)[b, t, tokens[b, t]]`` (the reference)."""
    return (token_logprobs(logits, tokens) * mask).sum(dim=-1)


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    one = torch.tensor([[[2.0, 1.0, 0.0, -1.0, -3.0]]])  # (1, 1, 5)
    full_logits = torch.randn(2, 3, 7, generator=g)
    full_tokens = torch.randint(0, 7, (2, 3), generator=g)
    pad_logits = torch.randn(2, 4, 7, generator=g)
    pad_tokens = torch.tensor([[3, 1, 4, 1], [5, 0, 6, 6]])
    pad_logits[1, 2:, 6] = 8.0  # padding positions the model finds very likely: must not count
    confident = torch.tensor([[[150.0, 0.0, 0.0], [0.0, 150.0, 0.0]]])  # (1, 2, 3)
    rand_logits = torch.randn(3, 5, 11, generator=g) * 2
    rand_tokens = torch.randint(0, 11, (3, 5), generator=g)
    return [
        ("one token of one sequence", one, torch.tensor([[1]]), torch.tensor([[1]])),
        (
            "sum over the tokens of each sequence (all tokens real)",
            full_logits,
            full_tokens,
            torch.ones(2, 3, dtype=torch.long),
        ),
        (
            "padding after the end (mask = 0) is left out",
            pad_logits,
            pad_tokens,
            torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
        ),
        (
            "very confident logits: an unlikely token (use log_softmax, not log(softmax))",
            confident,
            torch.tensor([[1, 2]]),
            torch.tensor([[1, 1]]),
        ),
        (
            "a random batch with different lengths",
            rand_logits,
            rand_tokens,
            torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]),
        ),
    ]


def check_sequence_logprob(fn) -> None:
    """Check ``fn(logits, tokens, mask) -> (B,)`` against the reference on named cases.

    Raises ``ExerciseError`` naming the first case that differs, with expected vs got.

    Taught in notebooks/01_generating_text.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    cases = _cases()
    for name, logits, tokens, mask in cases:
        expected = reference_sequence_logprob(logits, tokens, mask)
        got = fn(logits.clone(), tokens.clone(), mask.clone())
        compare(name, got, expected, atol=1e-4)
    passed("sequence log-prob", len(cases))
