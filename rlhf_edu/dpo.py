"""DPO on the tiny world: preference pairs from policy samples, then the DPO loss.

1. :func:`sample_pairs`: two responses per prompt from the (reference) policy;
2. :func:`pairs_from_scores`: a labeller (the reward model, or the gold judge) prefers the
   higher-scoring one, always (hard labels); ties are dropped. Or
   :func:`pairs_from_bradley_terry`: the first is preferred with probability
   ``sigmoid(s_a - s_b)`` (labels drawn as the Bradley-Terry model says, the case DPO's
   derivation assumes);
3. :func:`train_dpo`: the reference's sequence log-probs are computed once; then for a few
   epochs of shuffled minibatches, the policy's sequence log-probs
   ``log pi(y|x) = sum_t mask_t log pi(y_t | x, y_<t)`` (:func:`sequence_logprobs`) of the
   chosen and rejected responses go into :func:`rlhf_edu.beyond.dpo_loss`
   (Rafailov et al. 2023): ``-mean(log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))))``.

No reward model is trained, nothing is sampled during training, and there is no value model:
the pairs are fixed (offline), and the reference enters only through its log-probs.

Taught in notebooks/08_beyond_ppo.ipynb.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ._checks import require_int, require_number
from .beyond import dpo_loss
from .generation import Rollout, response_logprobs, sample
from .trainer import _check_finite


@dataclass
class PreferencePairs:
    """Tokenized preference pairs: ``chosen`` row i was preferred to ``rejected`` row i.

    Both are :class:`rlhf_edu.generation.Rollout` s with the same prompts, row for row.
    Taught in notebooks/08_beyond_ppo.ipynb.
    """

    chosen: Rollout
    rejected: Rollout

    def __len__(self) -> int:
        return len(self.chosen)

    def select(self, index) -> PreferencePairs:
        """Return the pairs at ``index`` (a list or tensor of row numbers, or a slice)."""
        return PreferencePairs(self.chosen.select(index), self.rejected.select(index))


@dataclass
class DPOConfig:
    """Settings of a DPO run. Defaults suit the tiny preset on a CPU.

    Taught in notebooks/08_beyond_ppo.ipynb.
    """

    epochs: int = 3
    """Passes over the pairs. Usually 1 to 3: more over-fits the fixed pairs."""
    batch_size: int = 32
    """Pairs per gradient step."""
    lr: float = 3e-4
    """AdamW learning rate. GPT-2 small: ~5e-7 to 5e-6; the tiny policy tolerates ~1e-4."""
    beta: float = 0.1
    """Strength of the implicit KL constraint: small beta lets the policy move further from the
    reference. Usually 0.05 to 0.5 (TRL's default 0.1)."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    temperature: float = 1.0
    """The log-probs are of logits / temperature (1: the model's own distribution)."""
    seed: int = 0
    """Seeds the minibatch shuffling."""

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            require_int(name, getattr(self, name), 1)
        for name in ("lr", "temperature"):
            require_number(name, getattr(self, name), 0, low_open=True)
        for name in ("beta", "max_grad_norm"):
            require_number(name, getattr(self, name), 0)


def sample_pairs(
    policy,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    seed: int = 0,
) -> Rollout:
    """Sample two responses to each prompt: rows ``2i`` and ``2i + 1`` answer ``prompts[i]``.

    Returns one :class:`Rollout` of ``2 * len(prompts)`` rows (so both responses of a pair are
    padded alike). Taught in notebooks/08_beyond_ppo.ipynb.
    """
    if isinstance(prompts, str) or not prompts:
        raise ValueError("prompts: expected a non-empty list of strings")
    doubled = [p for p in prompts for _ in range(2)]
    return sample(policy, tokenizer, doubled, max_new_tokens, temperature, seed=seed)


def pairs_from_scores(rollout: Rollout, scores) -> PreferencePairs:
    """Label consecutive pairs of ``rollout`` by ``scores`` (``(2N,)``): the higher one is chosen.

    Deterministic (hard) labels: Bradley-Terry with scores scaled to infinity, so DPO's optimal
    implicit-reward margins grow without bound. Pairs whose two scores are equal (a tie: no
    preference) are dropped. Returns the
    :class:`PreferencePairs` (at most N). Taught in notebooks/08_beyond_ppo.ipynb.
    """
    scores = _pair_scores(rollout, scores)
    a, b = scores[0::2], scores[1::2]
    keep = (a != b).nonzero().flatten()
    first_wins = a[keep] > b[keep]
    chosen = 2 * keep + (~first_wins).long()
    rejected = 2 * keep + first_wins.long()
    return PreferencePairs(rollout.select(chosen), rollout.select(rejected))


def pairs_from_bradley_terry(rollout: Rollout, scores, seed: int = 0) -> PreferencePairs:
    """Label consecutive pairs of ``rollout`` by drawing from the Bradley-Terry model of ``scores``.

    Row ``2i`` is chosen over row ``2i + 1`` with probability ``sigmoid(s_2i - s_2i+1)``
    (``scores``: ``(2N,)``; one Bernoulli draw per pair, seeded by ``seed``). With such labels
    the population minimiser of the DPO loss at ``beta`` has implicit rewards
    ``beta * log(pi / pi_ref) = s + const(x)`` on the pairs' responses: the KL-regularised
    optimum ``pi_ref * exp(s / beta)`` of lesson 05. Hard labels (:func:`pairs_from_scores`) are
    the limit of scores scaled to infinity, whose optimum has unbounded margins. Returns all N
    pairs. Taught in notebooks/08_beyond_ppo.ipynb.
    """
    scores = _pair_scores(rollout, scores)
    gen = torch.Generator().manual_seed(seed)
    first_wins = torch.bernoulli(torch.sigmoid(scores[0::2] - scores[1::2]), generator=gen).bool()
    pair = torch.arange(len(rollout) // 2)
    chosen = 2 * pair + (~first_wins).long()
    rejected = 2 * pair + first_wins.long()
    return PreferencePairs(rollout.select(chosen), rollout.select(rejected))


def _pair_scores(rollout: Rollout, scores) -> torch.Tensor:
    scores = torch.as_tensor(scores, dtype=torch.float32).detach().cpu()
    if scores.shape != (len(rollout),) or len(rollout) % 2:
        raise ValueError(
            f"scores: expected shape ({len(rollout)},) for an even number of rows, "
            f"got {tuple(scores.shape)}"
        )
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores: expected finite numbers")
    return scores


def sequence_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """``log pi(y|x) = sum_t mask_t * log pi(y_t | x, y_<t)`` for each row: shape ``(B,)``.

    Gradients flow when ``model``'s parameters require them. Taught in
    notebooks/08_beyond_ppo.ipynb.
    """
    return response_logprobs(model, rollout, temperature).sum(1)


def train_dpo(
    config: DPOConfig,
    policy,
    ref_policy,
    pairs: PreferencePairs,
    callbacks: list[Callable] | tuple = (),
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``policy`` in place with DPO on ``pairs``; return the history (one dict per step).

    Steps: 1. the reference's sequence log-probs of all chosen and rejected responses, once;
    then for each epoch and shuffled minibatch of ``batch_size`` pairs: 2. the policy's sequence
    log-probs of chosen and rejected; 3. ``beyond.dpo_loss``; 4. one AdamW step (gradients
    clipped to ``max_grad_norm``). Each history dict has ``step``, ``epoch``, ``pairs`` (seen so
    far), ``loss`` and the loss's stats (``rewards/chosen``, ``rewards/rejected``,
    ``rewards/margins``, ``rewards/accuracies``). ``callbacks``: each called as
    ``fn(policy, metrics)`` after every epoch's last step. A NaN or infinite loss stops
    training with an error naming the step.

    Taught in notebooks/08_beyond_ppo.ipynb.
    """
    if not isinstance(config, DPOConfig):
        raise ValueError(f"config: expected a DPOConfig, got {type(config).__name__}")
    if not isinstance(pairs, PreferencePairs) or len(pairs) == 0:
        raise ValueError("pairs: expected non-empty PreferencePairs")
    c = config
    policy.eval()  # dropout off: the log-probs trained are those of the deterministic policy
    ref_policy.eval()
    # 1. the frozen reference's sequence log-probs, once
    with torch.no_grad():
        ref_chosen = torch.cat(
            [
                sequence_logprobs(ref_policy, pairs.chosen.select(slice(i, i + 256)), c.temperature)
                for i in range(0, len(pairs), 256)
            ]
        )
        ref_rejected = torch.cat(
            [
                sequence_logprobs(
                    ref_policy, pairs.rejected.select(slice(i, i + 256)), c.temperature
                )
                for i in range(0, len(pairs), 256)
            ]
        )
    optimizer = torch.optim.AdamW(policy.parameters(), lr=c.lr)
    generator = torch.Generator().manual_seed(c.seed)
    n_batches = math.ceil(len(pairs) / c.batch_size)
    history: list[dict[str, float]] = []
    bar = tqdm(total=c.epochs * n_batches, desc="DPO", disable=not progress)
    step = 0
    for epoch in range(c.epochs):
        order = torch.randperm(len(pairs), generator=generator)
        for start in range(0, len(pairs), c.batch_size):
            t0 = time.perf_counter()
            step += 1
            idx = order[start : start + c.batch_size]
            mb = pairs.select(idx)
            # 2. the policy's sequence log-probs, with gradients
            pi_chosen = sequence_logprobs(policy, mb.chosen, c.temperature)
            pi_rejected = sequence_logprobs(policy, mb.rejected, c.temperature)
            # 3. the DPO loss on implicit rewards beta * (log pi - log pi_ref)
            loss, stats = dpo_loss(
                pi_chosen, pi_rejected, ref_chosen[idx], ref_rejected[idx], c.beta
            )
            _check_finite(step, "DPO loss", loss.detach())
            # 4. one optimiser step
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), c.max_grad_norm)
            optimizer.step()
            metrics = {
                "step": step,
                "epoch": epoch + 1,
                "pairs": min(start + c.batch_size, len(pairs)) + epoch * len(pairs),
                "loss": loss.item(),
                **stats,
                "time/step": time.perf_counter() - t0,
            }
            history.append(metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{stats['rewards/accuracies']:.2f}")
        for callback in callbacks:
            callback(policy, history[-1])
    bar.close()
    return history
