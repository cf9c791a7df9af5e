"""Pairwise preferences and training a reward model on them (Bradley-Terry).

An annotator who prefers the better text with probability
``P(a > b) = sigmoid((g_a - g_b) / tau)`` (gold scores g, noise temperature tau) is
simulated by :func:`label_pairs`; a reward model r is then fit by minimising
``-mean(logsigmoid(r(chosen) - r(rejected)))`` (``rewards.pairwise_loss``).

Taught in notebooks/02_reward_model.ipynb.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .rewards import pair_accuracy, pairwise_loss


@dataclass
class Pairs:
    """Preference pairs: ``chosen[i]`` was preferred to ``rejected[i]``."""

    chosen: list[str]
    rejected: list[str]

    def __len__(self) -> int:
        return len(self.chosen)

    def split(self, n_test: int) -> tuple[Pairs, Pairs]:
        """Return (train, test): the last ``n_test`` pairs are held out."""
        if not 0 < n_test < len(self):
            raise ValueError(f"n_test: expected 0 < n_test < {len(self)}, got {n_test!r}")
        k = len(self) - n_test
        return (
            Pairs(self.chosen[:k], self.rejected[:k]),
            Pairs(self.chosen[k:], self.rejected[k:]),
        )


def label_pairs(texts_a, texts_b, gold_a, gold_b, tau: float = 0.1, seed: int = 0) -> Pairs:
    """Label each pair (a_i, b_i) like a noisy annotator: a wins w.p. sigmoid((g_a - g_b)/tau).

    ``tau = 0`` gives a noiseless annotator who always picks the higher gold score.
    """
    if not len(texts_a) == len(texts_b) == len(gold_a) == len(gold_b):
        raise ValueError("texts_a, texts_b, gold_a, gold_b: expected the same length")
    if tau < 0:
        raise ValueError(f"tau: expected a number >= 0, got {tau!r}")
    rng = random.Random(seed)
    chosen, rejected = [], []
    for a, b, ga, gb in zip(texts_a, texts_b, gold_a, gold_b):
        diff = float(ga) - float(gb)
        if tau == 0:
            p_a = 1.0 if diff > 0 else 0.0 if diff < 0 else 0.5
        else:
            p_a = float(torch.sigmoid(torch.tensor(diff / tau)))
        a_wins = rng.random() < p_a
        chosen.append(a if a_wins else b)
        rejected.append(b if a_wins else a)
    return Pairs(chosen, rejected)


def train_reward_model(
    reward,
    pairs: Pairs,
    epochs: int = 2,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Fit ``reward`` (a ``scoring.RewardModel``) on ``pairs``; return the loss per step.

    Each step scores a minibatch of chosen and rejected texts together and takes an AdamW
    step on ``pairwise_loss``. Taught in notebooks/02_reward_model.ipynb.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs, batch_size: expected positive integers")
    g = torch.Generator().manual_seed(seed)
    model = reward.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    n = len(pairs)
    n_steps = epochs * ((n + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / n_steps)
    losses = []
    bar = tqdm(total=n_steps, desc="reward model", disable=not progress)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g).tolist()
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            scores = reward.forward(
                [pairs.chosen[j] for j in idx] + [pairs.rejected[j] for j in idx]
            )
            chosen, rejected = scores[: len(idx)], scores[len(idx) :]
            loss = pairwise_loss(chosen, rejected)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"reward model training: loss is {loss.item()} at step {len(losses)}"
                )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return losses


@torch.no_grad()
def evaluate_pairs(reward, pairs: Pairs) -> float:
    """Held-out pair accuracy: the fraction of pairs where r(chosen) > r(rejected)."""
    return float(pair_accuracy(reward(pairs.chosen), reward(pairs.rejected)))
