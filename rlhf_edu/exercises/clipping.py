"""Checker for lesson 04's exercise: PPO's clipped surrogate objective.

``my_clipped_surrogate(ratio, advantages, clip_eps)`` should return, element by element,
``min(r * A, clip(r, 1 - eps, 1 + eps) * A)`` (the reference is ``ppo.clipped_surrogate``).

Taught in notebooks/04_ratios_and_clipping.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_callable
from rlhf_edu.exercises import compare, learner_gradient, passed
from rlhf_edu.ppo import clipped_surrogate

CLIP_EPS = 0.2

# name -> (ratios, advantage): each case holds ratios in one region, with one sign of A.
CASES = {
    "A > 0, r > 1+eps": ([1.3, 1.6, 2.5], 1.5),
    "A > 0, r < 1-eps": ([0.1, 0.5, 0.7], 1.5),
    "A < 0, r > 1+eps": ([1.3, 1.6, 2.5], -1.5),
    "A < 0, r < 1-eps": ([0.1, 0.5, 0.7], -1.5),
    "A > 0, r inside [1-eps, 1+eps]": ([0.85, 1.0, 1.15], 1.5),
    "A < 0, r inside [1-eps, 1+eps]": ([0.85, 1.0, 1.15], -1.5),
}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A (4, 6) batch with ratios on both sides of the band and advantages of both signs."""
    gen = torch.Generator().manual_seed(0)
    ratio = torch.exp(0.5 * torch.randn(4, 6, generator=gen))
    advantages = torch.randn(4, 6, generator=gen)
    return ratio, advantages


def check_clipped_surrogate(fn) -> None:
    """Check ``fn(ratio, advantages, clip_eps)`` against ``ppo.clipped_surrogate``.

    Cases, each isolating one thing: the four regions outside the band (A > 0 or A < 0, r
    above 1+eps or below 1-eps), the two inside it, another eps, a ``(B, T)`` batch, and the
    gradient with respect to the ratio (it must be A where ``r A`` is taken and 0 where the
    clipped term is). Raises ``ExerciseError`` naming the first case that differs.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    n_cases = 0
    for name, (ratios, a) in CASES.items():
        ratio = torch.tensor(ratios)
        advantages = torch.full_like(ratio, a)
        expected = clipped_surrogate(ratio, advantages, CLIP_EPS)
        got = fn(ratio.clone(), advantages.clone(), CLIP_EPS)
        compare(f"{name} (eps = {CLIP_EPS}, A = {a}, r = {ratios})", got, expected)
        n_cases += 1

    ratio = torch.tensor([0.6, 0.75, 1.4, 1.6])
    advantages = torch.tensor([-1.0, -1.0, 1.0, 1.0])
    compare(
        f"another clip_eps (eps = 0.5, r = {ratio.tolist()}, A = {advantages.tolist()}): "
        "use the clip_eps argument",
        fn(ratio.clone(), advantages.clone(), 0.5),
        clipped_surrogate(ratio, advantages, 0.5),
    )
    n_cases += 1

    ratio, advantages = _batch()
    compare(
        "a (4, 6) batch of mixed ratios and advantages",
        fn(ratio.clone(), advantages.clone(), CLIP_EPS),
        clipped_surrogate(ratio, advantages, CLIP_EPS),
    )
    n_cases += 1

    r = ratio.clone().requires_grad_(True)
    got_grad = learner_gradient(
        "gradient",
        fn(r, advantages.clone(), CLIP_EPS),
        r,
        "the result carries no gradient back to the ratio; compute it with torch "
        "operations on `ratio` (no .item(), .detach() or torch.no_grad())",
    )
    r_ref = ratio.clone().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(
        clipped_surrogate(r_ref, advantages, CLIP_EPS).sum(), r_ref
    )
    compare(
        "gradient d objective / d ratio on the (4, 6) batch (A where r·A is taken, 0 where "
        "the clipped term is)",
        got_grad,
        expected_grad,
    )
    n_cases += 1
    passed("my_clipped_surrogate", n_cases)
