"""The reward model's training loss: Bradley-Terry on preference pairs (lesson 02).

``chosen`` and ``rejected`` are the scalar rewards the model gives to the preferred and the
dispreferred response of each pair, shape ``(B,)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf_edu._checks import require_finite, require_float_tensor, require_same_shape


def pairwise_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Compute the Bradley-Terry pairwise loss of a reward model.

    ``loss = -mean(log sigmoid(r_chosen - r_rejected))``: the negative log-likelihood of the
    preferences under ``P(chosen > rejected) = sigmoid(r_chosen - r_rejected)`` (Bradley and
    Terry 1952; Ouyang et al. 2022). ``chosen``, ``rejected``: same shape, usually ``(B,)``.
    Returns a 0-dim tensor. A NaN or infinite reward raises ``ValueError`` (never a NaN loss).

    Taught in notebooks/02_reward_model.ipynb.
    """
    chosen = require_finite("chosen", require_float_tensor("chosen", chosen))
    rejected = require_finite("rejected", require_float_tensor("rejected", rejected))
    require_same_shape("rejected", rejected, "chosen", chosen)
    return -F.logsigmoid(chosen - rejected).mean()  # logsigmoid is stable for large margins


def pair_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Return the fraction of pairs where the chosen response gets the strictly higher reward.

    ``mean(r_chosen > r_rejected)`` (ties count as wrong). Shapes as in :func:`pairwise_loss`;
    returns a python float.

    Taught in notebooks/02_reward_model.ipynb.
    """
    chosen = require_float_tensor("chosen", chosen)
    rejected = require_float_tensor("rejected", rejected)
    require_same_shape("rejected", rejected, "chosen", chosen)
    return (chosen > rejected).float().mean().item()
