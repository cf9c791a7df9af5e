"""Reward-model ensembles: optimise the members' mean minus k times their spread.

A reward model is trusted where its training data was; off that data (text the policy
invents while it optimises) members trained from different seeds disagree. Penalising the
disagreement, ``R(x) = mean_m r_m(x) - k * std_m r_m(x)``, makes text that only some members
like worth less (Coste et al. 2023, "Reward model ensembles help mitigate overoptimization",
whose uncertainty-weighted objective subtracts the variance instead; Eisenstein et al. 2023 on
what ensembles cannot fix: errors the members share). Bradley-Terry scores are defined only up to a shift (and
members differ in scale), so each member is first standardised on reference texts:
``z_m(x) = (r_m(x) - mu_m) / sigma_m``.

Taught in notebooks/10_after_ppo.ipynb.
"""

from __future__ import annotations

import torch

from ._checks import require_int, require_number, require_texts
from .build_tiny import reward_model_from_policy
from .preferences import Pairs, train_reward_model
from .scoring import RewardModel


class RewardEnsemble:
    """``ensemble(texts) -> (B,)``: ``mean_m z_m - k * std_m z_m`` over the members.

    ``members``: reward models (``texts -> (B,)``), at least 2; ``reference_texts``: texts
    (e.g. samples of the reference policy) on which each member's mean and std are measured, to
    put the members on one scale; ``k`` >= 0 (0: the plain mean). ``std`` is the unbiased one
    over the members.
    """

    def __init__(self, members, reference_texts: list[str], k: float = 1.0):
        if len(members) < 2:
            raise ValueError(f"members: expected at least 2 reward models, got {len(members)}")
        self.members = list(members)
        self.k = require_number("k", k, 0)
        ref = self.raw(require_texts("reference_texts", reference_texts))  # (M, N)
        self.mu = ref.mean(dim=1, keepdim=True)
        self.sigma = ref.std(dim=1, keepdim=True).clamp_min(1e-6)

    @torch.no_grad()
    def raw(self, texts: list[str]) -> torch.Tensor:
        """Each member's own scores: ``(M, B)``."""
        return torch.stack([m(texts).float().cpu() for m in self.members])

    def standardised(self, texts: list[str]) -> torch.Tensor:
        """Each member's scores on the common scale ``z_m``: ``(M, B)``."""
        return (self.raw(texts) - self.mu) / self.sigma

    def __call__(self, texts: list[str]) -> torch.Tensor:
        z = self.standardised(texts)
        return z.mean(dim=0) - self.k * z.std(dim=0)

    def __repr__(self) -> str:
        return f"RewardEnsemble({len(self.members)} members, k={self.k})"


def train_reward_models(
    policy, tokenizer, pairs: Pairs, seeds, bootstrap: bool = True, **train_kwargs
) -> list[RewardModel]:
    """Train one reward model per seed on ``pairs``; return them (in eval mode).

    Each member starts from the policy's transformer with a fresh head drawn under its seed
    (:func:`rlhf_edu.build_tiny.reward_model_from_policy`); with ``bootstrap`` it trains on a
    resample of the pairs with replacement (drawn under its seed), so the members also see
    different data. ``train_kwargs`` go to :func:`rlhf_edu.preferences.train_reward_model`.
    """
    seeds = [require_int("seeds", s, 0) for s in seeds]
    if len(pairs) < 2:
        raise ValueError(f"pairs: expected at least 2 preference pairs, got {len(pairs)}")
    members = []
    for seed in seeds:
        torch.manual_seed(seed)  # the fresh head's initial weights
        rm = RewardModel(reward_model_from_policy(policy, tokenizer), tokenizer)
        data = pairs
        if bootstrap:
            g = torch.Generator().manual_seed(seed)
            idx = torch.randint(len(pairs), (len(pairs),), generator=g).tolist()
            data = Pairs([pairs.chosen[i] for i in idx], [pairs.rejected[i] for i in idx])
        train_reward_model(rm, data, seed=seed, **train_kwargs)
        members.append(rm)
    return members
