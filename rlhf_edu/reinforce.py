"""REINFORCE: the score-function policy gradient that PPO builds on (lesson 03)."""

from __future__ import annotations

import torch

from rlhf_edu._checks import (
    require_finite,
    require_float_tensor,
    require_mask,
    require_number,
    require_shape,
)
from rlhf_edu.advantages import _masked_sum


def reinforce_loss(
    logprobs: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    baseline: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Compute the REINFORCE (score-function) loss for whole sequences (Williams 1992).

    ``loss = -mean_b((R_b - baseline) * sum_t mask_bt * logprobs_bt)``. Its gradient is a Monte
    Carlo estimate of ``-grad E[R]`` by the score-function identity
    ``grad E_{y~p}[R(y)] = E_{y~p}[R(y) grad log p(y)]`` (from ``grad p = p grad log p``), with
    ``log p(y) = sum_t log p(y_t | y_<t)``. A baseline ``b`` that does not depend on ``y`` keeps
    it unbiased (``E[grad log p] = 0``) and lowers its variance. ``R - b`` is a constant weight
    (detached): gradients flow through ``logprobs`` only.
    ``logprobs``, ``mask``: ``(B, T)``; ``rewards``: ``(B,)`` sequence rewards; ``baseline``:
    ``None`` (0), a number, a 0-dim tensor or a ``(B,)`` tensor. Returns a 0-dim tensor.
    NaN or infinite rewards raise ``ValueError`` (never a NaN loss).

    Taught in notebooks/03_why_rl.ipynb.
    """
    logprobs = require_float_tensor("logprobs", logprobs, ndim=2)
    rewards = require_finite("rewards", require_float_tensor("rewards", rewards, ndim=1))
    require_shape("rewards", rewards, logprobs.shape[:1], " (one reward per sequence)")
    valid = require_mask("mask", mask, logprobs.shape)
    if baseline is None:
        baseline = 0.0
    if isinstance(baseline, torch.Tensor) and baseline.dim() > 0:
        baseline = require_float_tensor("baseline", baseline)
        require_shape("baseline", baseline, rewards.shape, " (one per sequence) or a scalar")
    else:
        baseline = require_number("baseline", baseline)
    weight = (rewards - baseline).detach()  # R - b, a constant
    seq_logprobs = _masked_sum(logprobs, valid, dim=1)  # log p(y) = sum_t log p(y_t | y_<t)
    return -(weight * seq_logprobs).mean()
