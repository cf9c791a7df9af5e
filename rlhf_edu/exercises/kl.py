"""Checker for lesson 05's exercise: the k3 estimator of KL(pi || pi_ref).

``my_k3(logprobs, ref_logprobs)`` should return, token by token, with
``logr = ref_logprobs - logprobs``: ``k3 = exp(logr) - 1 - logr`` (the reference is
``kl.kl_estimate(..., kind="k3")``).

Taught in notebooks/05_kl_penalty.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_callable
from rlhf_edu.exercises import ExerciseError, compare, learner_gradient, passed
from rlhf_edu.kl import kl_estimate

# One token where pi_ref < pi, one where pi_ref > pi: swapping the two inputs swaps the values.
SIGN_PI = [0.5, 0.4]
SIGN_PI_REF = [0.4, 0.5]


def _reference(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    return kl_estimate(logprobs, ref_logprobs, kind="k3")


def _random_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A (4, 6) batch of log-probs with log-ratios of both signs, some large."""
    gen = torch.Generator().manual_seed(seed)
    logprobs = -3 * torch.rand(4, 6, generator=gen)
    ref_logprobs = logprobs + 1.5 * torch.randn(4, 6, generator=gen)
    return logprobs, ref_logprobs


def check_k3(fn) -> None:
    """Check ``fn(logprobs, ref_logprobs)`` against ``kl.kl_estimate(..., kind="k3")``.

    Cases, each isolating one thing: equal distributions (k3 is 0), non-negativity (k3 >= 0
    on every token, whatever the sign of the log-ratio), the sign convention
    (``logr = ref_logprobs - logprobs``, not the reverse), a random ``(4, 6)`` batch, and the
    gradient (k3 is also used as a loss term, so it must stay differentiable). Raises
    ``ExerciseError`` naming the first case that differs.

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    n_cases = 0

    logprobs = torch.log(torch.tensor([[0.5, 0.2, 0.05], [0.9, 0.01, 0.3]]))
    compare(
        "equal distributions (logprobs == ref_logprobs): k3 is 0 on every token",
        fn(logprobs.clone(), logprobs.clone()),
        torch.zeros_like(logprobs),
    )
    n_cases += 1

    logprobs, ref_logprobs = _random_batch(1)
    got = fn(logprobs.clone(), ref_logprobs.clone())
    got_t = torch.as_tensor(got, dtype=torch.float32)
    if got_t.shape == logprobs.shape and bool((got_t < -1e-6).any()):
        first = tuple((got_t < -1e-6).nonzero()[0].tolist())
        logr = (ref_logprobs - logprobs)[first].item()
        raise ExerciseError(
            "non-negativity: k3 = exp(logr) - 1 - logr is >= 0 for every token, but got "
            f"{got_t[first].item():.4f} at index {first} (logr = {logr:.3f}); "
            f"expected {_reference(logprobs, ref_logprobs)[first].item():.4f}"
        )
    n_cases += 1

    logprobs = torch.log(torch.tensor(SIGN_PI))
    ref_logprobs = torch.log(torch.tensor(SIGN_PI_REF))
    got = fn(logprobs.clone(), ref_logprobs.clone())
    expected = _reference(logprobs, ref_logprobs)
    swapped = _reference(ref_logprobs, logprobs)
    case = (
        f"sign convention (pi = {SIGN_PI}, pi_ref = {SIGN_PI_REF}; logr = ref_logprobs - logprobs)"
    )
    got_t = torch.as_tensor(got, dtype=torch.float32)
    if got_t.shape == swapped.shape and torch.allclose(got_t, swapped, atol=1e-6):
        raise ExerciseError(
            f"{case}: expected {[round(v, 5) for v in expected.tolist()]}, got "
            f"{[round(v, 5) for v in got_t.tolist()]}: that is k3 with logr = logprobs - "
            "ref_logprobs, the estimate of KL(pi_ref || pi) (the reverse direction)"
        )
    compare(case, got, expected)
    n_cases += 1

    logprobs, ref_logprobs = _random_batch(0)
    compare(
        "a random (4, 6) batch (log-ratios of both signs, up to "
        f"|logr| = {(ref_logprobs - logprobs).abs().max().item():.1f})",
        fn(logprobs.clone(), ref_logprobs.clone()),
        _reference(logprobs, ref_logprobs),
    )
    n_cases += 1

    logprobs = logprobs.clone().requires_grad_(True)
    got_grad = learner_gradient(
        "gradient",
        fn(logprobs, ref_logprobs.clone()),
        logprobs,
        "the result carries no gradient back to logprobs; compute it with torch "
        "operations (no .item(), .detach(), numpy or torch.no_grad())",
    )
    leaf = logprobs.detach().clone().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(_reference(leaf, ref_logprobs).sum(), leaf)
    compare(
        "gradient d k3 / d logprobs on the (4, 6) batch (= 1 - exp(logr))",
        got_grad,
        expected_grad,
    )
    n_cases += 1
    passed("my_k3", n_cases)
