"""A verifiable reward on the tiny world: a program's yes/no verdict, and pass@k.

RL with verifiable rewards (RLVR; DeepSeek-R1, Tulu 3) replaces the learned reward model by a
checker: a math answer matches, the code passes its tests. Here the task is a review that is
**positive overall** (the gold judge's score > 0) **and** contains a **negated negative
phrase** ("never boring", "not bad"), read by the judge's own rules (a negator within three
words before a negative word, in the same clause: :func:`rlhf_edu.judge.contributions`).
The reward is 1 when the checker says yes and 0 otherwise; the metric is the pass rate, and
pass@k (Chen et al. 2021) asks whether at least one of k samples passes.

A checker can have a loophole too: :func:`keyword_verify` only looks for a negator word
somewhere in the text, so "the plot was boring, not good" passes it.

Taught in notebooks/10_after_ppo.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._checks import require_int, require_texts
from .generation import sample
from .judge import contributions, gold_score, words
from .lexicon import NEGATIVE, NEGATORS


def negated_negatives(text: str) -> list[str]:
    """The negative words of ``text`` that the gold judge reads as negated ("not bad" -> bad).

    By the judge's rules an intensifier only scales a word and a repeat flips it, so the first
    use of a negative word contributes > 0 exactly when a negator precedes it in its clause.
    """
    seen: set[str] = set()
    found = []
    for word, value in contributions(text):
        if word in NEGATIVE and word not in seen and value > 0:
            found.append(word)
        seen.add(word)
    return found


def verify(text: str) -> bool:
    """The task's checker: gold score > 0 and at least one negated negative phrase."""
    return gold_score(text) > 0 and bool(negated_negatives(text))


def keyword_verify(text: str) -> bool:
    """A checker with a loophole: a negator word ("not", "never", ...) anywhere in ``text``.

    It checks neither that the negator applies to a negative word nor that the review is
    positive, so a negative review with a "not" in it passes, and so does "not not not".
    """
    return bool(set(words(text)) & NEGATORS)


def as_reward(check: Callable[[str], bool]) -> Callable[[list[str]], torch.Tensor]:
    """Turn a checker into a reward function: ``texts -> (B,)`` float tensor of 1.0 / 0.0."""

    def reward(texts: list[str]) -> torch.Tensor:
        return torch.tensor([float(check(t)) for t in require_texts("texts", texts)])

    reward.__name__ = f"reward_of_{getattr(check, '__name__', 'check')}"
    return reward


def pass_at_k(correct: torch.Tensor, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021, eq. 1), averaged over problems.

    ``correct``: ``(P, n)`` 0/1 (or bool), the verdicts of ``n`` samples for each of ``P``
    prompts. For a prompt with ``c`` passes, ``pass@k = 1 - C(n - c, k) / C(n, k)``: the chance
    that k samples drawn without replacement from the n hold at least one pass, computed as
    ``1 - prod_{i = n - c + 1}^{n} (1 - k / i)`` (no large binomials). ``k`` in ``1..n``.
    Returns a python float in [0, 1].
    """
    if not isinstance(correct, torch.Tensor) or correct.dim() != 2 or correct.numel() == 0:
        raise ValueError(f"correct: expected a non-empty (P, n) tensor of 0/1, got {correct!r:.60}")
    if not bool(((correct == 0) | (correct == 1)).all()):
        raise ValueError("correct: expected only 0/1 values")
    n = correct.shape[1]
    k = require_int("k", k, 1)
    if k > n:
        raise ValueError(f"k: expected at most the n = {n} samples per prompt, got {k}")
    total = 0.0
    for c in correct.sum(dim=1).long().tolist():
        if n - c < k:  # every k-subset holds a pass
            total += 1.0
            continue
        miss = 1.0
        for i in range(n - c + 1, n + 1):
            miss *= 1.0 - k / i
        total += 1.0 - miss
    return total / correct.shape[0]


@torch.no_grad()
def sample_verdicts(
    policy,
    tokenizer,
    prompts: list[str],
    n: int,
    check: Callable[[str], bool] = verify,
    max_new_tokens: int = 16,
    seed: int = 0,
) -> torch.Tensor:
    """Sample ``n`` responses to each prompt and check each text: a ``(P, n)`` bool tensor."""
    prompts = require_texts("prompts", prompts)
    n = require_int("n", n, 1)
    roll = sample(
        policy,
        tokenizer,
        [q for q in prompts for _ in range(n)],
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    return torch.tensor([check(t) for t in roll.texts]).view(len(prompts), n)
