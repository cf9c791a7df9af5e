"""Lesson 02's exercise: the Bradley-Terry pairwise loss of a reward model.

``loss = -mean(log sigmoid(r_chosen - r_rejected))`` over the pairs of a batch; ``chosen``
and ``rejected`` are ``(B,)`` rewards; the answer is a 0-dim tensor.

Taught in notebooks/02_reward_model.ipynb.
"""

from __future__ import annotations

import torch

from .._checks import require_callable
from ..rewards import pairwise_loss
from . import compare, passed


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        ("one pair, chosen ahead by 1", torch.tensor([1.5]), torch.tensor([0.5])),
        ("one pair, the model prefers the rejected one", torch.tensor([-1.0]), torch.tensor([1.0])),
        ("a tie: P = 1/2, loss = log 2", torch.tensor([0.3]), torch.tensor([0.3])),
        (
            "a batch: the mean over pairs, not the sum",
            torch.tensor([2.0, 0.0, -1.0, 0.5]),
            torch.tensor([1.0, 0.0, 1.0, -0.5]),
        ),
        (
            "only the difference matters (both rewards shifted by +100)",
            torch.tensor([101.0, 100.0]),
            torch.tensor([100.0, 102.0]),
        ),
        (
            "a huge wrong margin: use logsigmoid, not log(sigmoid)",
            torch.tensor([-100.0]),
            torch.tensor([100.0]),
        ),
        ("a random batch", torch.randn(16, generator=g) * 2, torch.randn(16, generator=g) * 2),
    ]


def check_pairwise_loss(fn) -> None:
    """Check ``fn(chosen, rejected) -> 0-dim loss`` against ``rewards.pairwise_loss``.

    Raises ``ExerciseError`` naming the first case that differs, with expected vs got.

    Taught in notebooks/02_reward_model.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    cases = _cases()
    for name, chosen, rejected in cases:
        expected = pairwise_loss(chosen, rejected)
        got = fn(chosen.clone(), rejected.clone())
        compare(name, got, expected, atol=1e-4)
    passed("pairwise loss", len(cases))
