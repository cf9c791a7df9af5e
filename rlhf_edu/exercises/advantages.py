"""Checker for lesson 06's exercise: Generalized Advantage Estimation over a padded batch.

``my_gae(rewards, values, mask, gamma, lam)`` should return the ``(B, T)`` advantages
``A_t = delta_t + gamma * lam * A_{t+1}`` with ``delta_t = r_t + gamma * V_{t+1} - V_t``,
where the value after the last valid token is 0 (the episode ends there) and padded
positions get 0 (the reference is ``advantages.gae``, whose first output this is).

Taught in notebooks/06_advantages.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_callable
from rlhf_edu.advantages import gae
from rlhf_edu.exercises import compare, passed

GARBAGE = 100.0  # what padded positions hold in the padding cases: it must not leak in


def _random(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(batch, length, generator=gen)
    values = torch.randn(batch, length, generator=gen)
    return rewards, values


def _prefix_mask(lengths: list[int], length: int) -> torch.Tensor:
    return (torch.arange(length) < torch.tensor(lengths)[:, None]).float()


def _run(fn, rewards, values, mask, gamma, lam) -> torch.Tensor:
    return fn(rewards.clone(), values.clone(), mask.clone(), gamma, lam)


def check_gae(fn) -> None:
    """Check ``fn(rewards, values, mask, gamma, lam) -> advantages`` against ``advantages.gae``.

    Cases, each isolating one thing: a single full-length sequence; padding after the end
    (the last valid token bootstraps with 0, not with the padded value, and padded positions
    get 0); the edge values ``gamma = 0``, ``lam = 0``, ``lam = 1`` and ``gamma = lam = 1``; a
    general ``gamma, lam < 1``; a batch of mixed lengths. Raises ``ExerciseError`` naming the
    first case that differs, with expected and obtained values.

    Taught in notebooks/06_advantages.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    n_cases = 0

    def case(name, rewards, values, mask, gamma, lam, where=None):
        nonlocal n_cases
        got = _run(fn, rewards, values, mask, gamma, lam)
        expected, _ = gae(rewards, values, mask, gamma, lam)
        if where is not None and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            got, expected = got[where], expected[where]
        compare(f"{name} (gamma = {gamma}, lam = {lam})", got, expected)
        n_cases += 1

    rewards, values = _random(1, 5, seed=0)
    full = torch.ones(1, 5)
    case("a single full-length sequence", rewards, values, full, 1.0, 0.95)

    rewards, values = _random(2, 6, seed=1)
    mask = _prefix_mask([3, 6], 6)
    values = torch.where(mask.bool(), values, torch.full_like(values, GARBAGE))
    rewards = torch.where(mask.bool(), rewards, torch.full_like(rewards, GARBAGE))
    case(
        "padding after the end: the last valid token bootstraps with 0, not with the value "
        f"stored on the padding ({GARBAGE:g}); valid positions",
        rewards,
        values,
        mask,
        1.0,
        0.95,
        where=mask.bool(),
    )
    case(
        "padding after the end: padded positions must be 0",
        rewards,
        values,
        mask,
        1.0,
        0.95,
        where=~mask.bool(),
    )

    rewards, values = _random(1, 5, seed=2)
    case("gamma = 0: A_t = r_t - V_t", rewards, values, full, 0.0, 0.95)
    case("lam = 0: A_t = delta_t = r_t + gamma V_{t+1} - V_t", rewards, values, full, 0.9, 0.0)
    case("lam = 1: A_t = sum_k gamma^k delta_{t+k}", rewards, values, full, 0.9, 1.0)
    case("gamma = lam = 1: A_t = (sum of rewards from t) - V_t", rewards, values, full, 1.0, 1.0)
    case("gamma < 1 and lam < 1", rewards, values, full, 0.9, 0.8)

    rewards, values = _random(4, 7, seed=3)
    mask = _prefix_mask([7, 1, 4, 2], 7)
    case("a (4, 7) batch of mixed lengths", rewards, values, mask, 0.99, 0.95)
    passed("my_gae", n_cases)
