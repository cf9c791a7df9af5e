"""Masked statistics, whitening and Generalized Advantage Estimation (lesson 06).

Tensors are ``(B, T)`` over response tokens; ``mask`` is 1 on real tokens (a prefix of ones per
row, float, int or bool). Positions where ``mask`` is 0 may hold anything (padding garbage, even
``inf``): they are selected away with ``torch.where``, never multiplied by 0.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import (
    require_choice,
    require_float_tensor,
    require_int,
    require_mask,
    require_number,
    require_same_shape,
)

WHITEN_EPS = 1e-8


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum ``x`` over the positions where ``mask`` is 1.

    ``sum_i mask_i * x_i``. ``x`` and ``mask`` have the same shape (any shape); with ``dim=None``
    the result is 0-dim, otherwise ``dim`` is reduced (e.g. ``dim=1`` gives per-sequence sums,
    shape ``(B,)``). ``mask`` may be any 0/1 mask here, not only a prefix of ones.

    Taught in notebooks/06_advantages.ipynb.
    """
    x = require_float_tensor("x", x)
    valid = require_mask("mask", mask, x.shape, prefix=False)
    return _masked_sum(x, valid, dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Average ``x`` over the positions where ``mask`` is 1.

    ``sum_i mask_i * x_i / sum_i mask_i``. Shapes as in :func:`masked_sum`. Every reduced slice
    needs at least one valid position (else ``ValueError``).

    Taught in notebooks/06_advantages.ipynb.
    """
    x = require_float_tensor("x", x)
    valid = require_mask("mask", mask, x.shape, prefix=False)
    return _masked_mean(x, valid, dim)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Compute the unbiased variance of ``x`` over the positions where ``mask`` is 1.

    ``sum_i mask_i * (x_i - mean)^2 / (n - 1)`` with ``n = sum_i mask_i`` (Bessel's correction,
    like ``torch.var``); needs ``n >= 2``. Returns a 0-dim tensor.

    Taught in notebooks/06_advantages.ipynb.
    """
    x = require_float_tensor("x", x)
    valid = require_mask("mask", mask, x.shape, prefix=False)
    return _masked_var(x, valid)


LOSS_AGGREGATIONS = ("token_mean", "sequence_mean", "constant")


def masked_aggregate(
    x: torch.Tensor, mask: torch.Tensor, aggregation: str, max_len: int | None = None
) -> torch.Tensor:
    """Reduce a per-token loss ``x`` (``(B, T)``) to one number, one of three ways.

    With ``|o_b| = sum_t mask_bt`` the length of response ``b``:

    - ``"token_mean"``: ``sum_bt mask_bt x_bt / sum_b |o_b|``, one mean over all tokens of the
      batch (PPO as in TRL and lesson 07; DAPO): a long response weighs more;
    - ``"sequence_mean"``: ``(1/B) sum_b (1/|o_b|) sum_t mask_bt x_bt``, each response's mean
      first (GRPO as in Shao et al. 2024, eq. 3): every response weighs the same, so a token of a
      short response weighs more;
    - ``"constant"``: ``sum_bt mask_bt x_bt / (B * max_len)``, one fixed normaliser
      (Dr. GRPO, Liu et al. 2025): every token weighs the same whatever the lengths.

    ``mask`` a 0/1 prefix mask of ``x``'s shape; each row needs a valid token for
    ``"sequence_mean"``; ``max_len`` (an int >= 1, e.g. ``max_new_tokens``) is needed for
    ``"constant"`` only. Returns a 0-dim tensor.

    Taught in notebooks/08_beyond_ppo.ipynb.
    """
    x = require_float_tensor("x", x, ndim=2)
    valid = require_mask("mask", mask, x.shape)
    aggregation = require_choice("aggregation", aggregation, LOSS_AGGREGATIONS)
    if aggregation == "token_mean":
        return _masked_mean(x, valid)
    if aggregation == "sequence_mean":
        return _masked_mean(x, valid, dim=1).mean()
    max_len = require_int("max_len", max_len, 1)
    if x.shape[1] > max_len:
        raise ValueError(f"max_len: expected >= the {x.shape[1]} tokens of x, got {max_len}")
    return _masked_sum(x, valid) / (x.shape[0] * max_len)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise ``x`` to mean 0 and variance 1 over the positions where ``mask`` is 1.

    ``(x - mean) / sqrt(var + 1e-8)`` with the masked mean and unbiased masked variance; with
    ``shift_mean=False`` the mean is added back (only the scale changes, as done for rewards).
    Positions where ``mask`` is 0 are set to 0 (TRL zero-fills them right after whitening).
    Same shape as ``x``.

    Taught in notebooks/06_advantages.ipynb.
    """
    x = require_float_tensor("x", x)
    valid = require_mask("mask", mask, x.shape, prefix=False)
    mean, var = _masked_mean(x, valid), _masked_var(x, valid)
    whitened = (x - mean) / torch.sqrt(var + WHITEN_EPS)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(valid, whitened, torch.zeros_like(whitened))


@torch.no_grad()
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute Generalized Advantage Estimates and value targets (Schulman et al. 2016).

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``,
    where the episode ends at the last valid token (``V`` after it is 0: no bootstrap).
    Returns ``(advantages, returns)``, both ``(B, T)``, with ``returns = advantages + values`` on
    valid positions and both 0 where ``mask`` is 0. Computed without gradient: advantages are
    weights and returns are regression targets, constants for the update.
    ``rewards``, ``values``, ``mask``: ``(B, T)``; ``gamma``, ``lam`` in [0, 1].

    Taught in notebooks/06_advantages.ipynb.
    """
    rewards = require_float_tensor("rewards", rewards, ndim=2)
    values = require_float_tensor("values", values, ndim=2)
    require_same_shape("values", values, "rewards", rewards)
    valid = require_mask("mask", mask, rewards.shape)
    gamma = require_number("gamma", gamma, 0.0, 1.0)
    lam = require_number("lam", lam, 0.0, 1.0)

    zeros = torch.zeros_like(values)
    values = torch.where(valid, values, zeros)
    rewards = torch.where(valid, rewards, zeros)
    # V(s_{t+1}); it is 0 after the last valid token because values were zeroed there.
    next_values = torch.cat([values[:, 1:], zeros[:, :1]], dim=1)
    delta = rewards + gamma * next_values - values  # TD error, 0 on padding

    advantages = torch.empty_like(values)
    lastgaelam = zeros[:, 0]
    for t in reversed(range(values.shape[1])):  # loop over time, vectorised over the batch
        lastgaelam = delta[:, t] + gamma * lam * lastgaelam
        advantages[:, t] = lastgaelam
    returns = torch.where(valid, advantages + values, zeros)
    return advantages, returns


def _masked_sum(x: torch.Tensor, valid: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    selected = torch.where(valid, x, torch.zeros_like(x))
    return selected.sum() if dim is None else selected.sum(dim)


def _masked_mean(x: torch.Tensor, valid: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    count = valid.sum() if dim is None else valid.sum(dim)
    if not bool((count > 0).all()):
        raise ValueError("mask: expected at least one valid position in each averaged slice")
    return _masked_sum(x, valid, dim) / count.to(x.dtype)


def _masked_var(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    count = valid.sum()
    if int(count) < 2:
        raise ValueError("mask: the unbiased variance needs at least 2 valid positions")
    centered = x - _masked_mean(x, valid)
    return _masked_sum(centered**2, valid) / (count - 1).to(x.dtype)
