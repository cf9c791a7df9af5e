"""PPO's pieces: the probability ratio, the clipped surrogate, policy and value losses.

Tensors are ``(B, T)`` over response tokens; ``mask`` is 1 on real tokens (a prefix of ones per
row). Losses are 0-dim tensors to minimise; their ``stats`` dicts hold python floats (detached,
ready to log).
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_float_tensor, require_mask, require_number, require_same_shape
from rlhf_edu.advantages import _masked_mean


def probability_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor) -> torch.Tensor:
    """Compute the per-token probability ratio ``pi_theta(a|s) / pi_old(a|s)``.

    ``r_t = exp(logprobs_t - old_logprobs_t)`` (Schulman et al. 2017, PPO). Both ``(B, T)``
    natural-log probabilities of the sampled tokens; ``old_logprobs`` come from the rollout
    (no gradient). Returns ``(B, T)``.

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    logprobs = require_float_tensor("logprobs", logprobs)
    old_logprobs = require_float_tensor("old_logprobs", old_logprobs)
    require_same_shape("old_logprobs", old_logprobs, "logprobs", logprobs)
    return torch.exp(logprobs - old_logprobs)


def clipped_surrogate(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
) -> torch.Tensor:
    """Compute PPO's per-element clipped surrogate objective (to maximise).

    ``L_t = min(r_t * A_t, clip(r_t, 1 - eps, 1 + eps_high) * A_t)`` (Schulman et al. 2017, eq. 7,
    where ``eps_high = eps``): the pessimistic one of the plain and clipped terms, so once the
    ratio has moved past the range in the direction the advantage favours, the gradient is 0.
    ``ratio`` and ``advantages`` have the same shape; ``clip_eps`` in (0, 1). ``clip_eps_high``
    (None: the same as ``clip_eps``) is a separate upper range, > 0: DAPO's clip-higher (Yu et al.
    2025, eps_high = 0.28 with eps = 0.2) lets an unlikely token with a positive advantage grow
    further before its gradient stops. Returns that shape.

    Taught in notebooks/04_ratios_and_clipping.ipynb; clip-higher in notebooks/10_after_ppo.ipynb.
    """
    ratio = require_float_tensor("ratio", ratio)
    advantages = require_float_tensor("advantages", advantages)
    require_same_shape("advantages", advantages, "ratio", ratio)
    clip_eps = require_number("clip_eps", clip_eps, 0.0, 1.0, low_open=True, high_open=True)
    high = clip_eps
    if clip_eps_high is not None:
        high = require_number("clip_eps_high", clip_eps_high, 0.0, low_open=True)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high) * advantages
    return torch.min(unclipped, clipped)


def sequence_ratio(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Compute GSPO's sequence-level importance ratio, broadcast to the response's tokens.

    ``s_i = exp((1/|y_i|) sum_t mask_it (logprobs_it - old_logprobs_it))`` (Zheng et al. 2025,
    GSPO, eq. 7): the geometric mean of the per-token ratios of response ``i``, one number per
    response, so every token of a response is clipped (or not) together. All inputs ``(B, T)``
    with a 0/1 prefix ``mask``, each row with at least one valid token. Returns ``(B, T)``: ``s_i``
    on row ``i``'s valid tokens, 1 on padding.

    Taught in notebooks/10_after_ppo.ipynb.
    """
    logprobs = require_float_tensor("logprobs", logprobs)
    old_logprobs = require_float_tensor("old_logprobs", old_logprobs)
    require_same_shape("old_logprobs", old_logprobs, "logprobs", logprobs)
    valid = require_mask("mask", mask, logprobs.shape)
    lengths = valid.sum(dim=1, keepdim=True)
    if bool((lengths == 0).any()):
        raise ValueError("mask: expected at least one valid token in every row")
    mean_logratio = ((logprobs - old_logprobs) * valid).sum(dim=1, keepdim=True) / lengths
    return torch.where(valid.bool(), torch.exp(mean_logratio).expand_as(logprobs), 1.0)


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute PPO's clipped policy loss over the valid tokens (Schulman et al. 2017).

    ``loss = -masked_mean(min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t))`` with
    ``r_t = exp(logprobs_t - old_logprobs_t)``. All inputs ``(B, T)``. Returns ``(loss, stats)``:
    ``loss`` a 0-dim tensor; ``stats`` python floats over valid tokens:
    ``clipfrac`` (fraction where the clipped term is taken and differs), ``approx_kl``
    (``0.5 * mean((logprobs - old_logprobs)^2)``, the k2 estimate TRL logs) and ``ratio_mean``.
    ``clip_eps_high`` (None: ``clip_eps``) is the separate upper range of
    :func:`clipped_surrogate` (DAPO's clip-higher).

    Taught in notebooks/04_ratios_and_clipping.ipynb.
    """
    ratio = probability_ratio(logprobs, old_logprobs)
    advantages = require_float_tensor("advantages", advantages)
    require_same_shape("advantages", advantages, "logprobs", logprobs)
    valid = require_mask("mask", mask, logprobs.shape)
    objective = clipped_surrogate(ratio, advantages, clip_eps, clip_eps_high)
    loss = -_masked_mean(objective, valid)
    with torch.no_grad():
        logratio = logprobs - old_logprobs
        clipped = (objective < ratio * advantages).to(ratio.dtype)  # clip taken and it changed L_t
        stats = {
            "clipfrac": _masked_mean(clipped, valid).item(),
            "approx_kl": _masked_mean(0.5 * logratio**2, valid).item(),
            "ratio_mean": _masked_mean(ratio, valid).item(),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute PPO's clipped value loss over the valid tokens.

    ``loss = 0.5 * masked_mean(max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2))``, the
    pessimistic value clipping of the PPO baselines (OpenAI baselines / Schulman et al. 2017
    code). All inputs ``(B, T)``; ``clip_range`` > 0. Returns ``(loss, stats)`` with
    ``stats["vf_clipfrac"]``, the fraction of valid tokens where the clipped error is larger
    (a python float).

    Taught in notebooks/06_advantages.ipynb.
    """
    values = require_float_tensor("values", values)
    old_values = require_float_tensor("old_values", old_values)
    returns = require_float_tensor("returns", returns)
    require_same_shape("old_values", old_values, "values", values)
    require_same_shape("returns", returns, "values", values)
    valid = require_mask("mask", mask, values.shape)
    clip_range = require_number("clip_range", clip_range, 0.0, low_open=True)
    values_clipped = torch.clamp(values, old_values - clip_range, old_values + clip_range)
    vf_losses1 = torch.square(values - returns)
    vf_losses2 = torch.square(values_clipped - returns)
    loss = 0.5 * _masked_mean(torch.max(vf_losses1, vf_losses2), valid)
    with torch.no_grad():
        vf_clipfrac = _masked_mean((vf_losses2 > vf_losses1).to(values.dtype), valid).item()
    return loss, {"vf_clipfrac": vf_clipfrac}


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Compute the entropy of the categorical distribution at each position.

    ``H = -sum_v p_v log p_v`` with ``p = softmax(logits)`` over the last dim: ``(B, T, V)`` gives
    ``(B, T)``. Entries with logit ``-inf`` (banned tokens) contribute 0.

    Taught in notebooks/07_ppo.ipynb.
    """
    logits = require_float_tensor("logits", logits)
    if logits.dim() < 1:
        raise ValueError("logits: expected shape (..., V) with a vocabulary dim, got shape ()")
    return entropy_from_logprobs(torch.log_softmax(logits, dim=-1), torch.isneginf(logits))


def entropy_from_logprobs(
    logprobs: torch.Tensor, banned: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`entropy_from_logits` from ``log p = log_softmax(logits)`` ``(..., V)``, for a
    caller that has it already (the trainer's log-probs come from the same ``log p``):
    ``H = -sum_v exp(log p_v) log p_v``, ``(...)``. A banned token contributes 0: where
    ``banned`` (the logits' ``-inf`` entries, same shape) is True, or by default where
    ``log p`` is ``-inf``.
    """
    logprobs = require_float_tensor("logprobs", logprobs)
    if logprobs.dim() < 1:
        raise ValueError("logprobs: expected shape (..., V) with a vocabulary dim, got shape ()")
    if banned is None:
        banned = torch.isneginf(logprobs)
    elif not isinstance(banned, torch.Tensor) or banned.shape != logprobs.shape:
        raise ValueError(
            f"banned: expected a bool tensor of shape {tuple(logprobs.shape)} (as logprobs), "
            f"got {getattr(banned, 'shape', type(banned).__name__)}"
        )
    p_logp = logprobs.exp() * logprobs
    if banned.any():  # 0 * -inf is nan: a banned token's term is 0 (one pass skipped if none)
        p_logp = torch.where(banned, torch.zeros_like(logprobs), p_logp)
    return -p_logp.sum(dim=-1)
