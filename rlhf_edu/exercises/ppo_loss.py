"""Checker for lesson 07's exercise: assemble PPO's loss from its parts.

``my_ppo_loss(logprobs, old_logprobs, advantages, values, old_values, returns, entropy, mask,
clip_eps, clip_range_value, vf_coef, ent_coef)`` should return the scalar minimised at every
minibatch of a PPO step:

``loss = policy_loss + vf_coef * value_loss - ent_coef * masked_mean(entropy)``

with ``policy_loss`` from ``ppo.policy_loss`` (clip range ``clip_eps``), ``value_loss`` from
``ppo.value_loss`` (clip range ``clip_range_value``) and the mean over valid tokens only
(``advantages.masked_mean``). All tensors ``(B, T)``.

Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu import ppo
from rlhf_edu._checks import require_callable
from rlhf_edu.advantages import masked_mean
from rlhf_edu.exercises import ExerciseError, compare, learner_gradient, passed

NAMES = ("logprobs", "old_logprobs", "advantages", "values", "old_values", "returns", "entropy")


def reference_ppo_loss(
    logprobs, old_logprobs, advantages, values, old_values, returns, entropy, mask,
    clip_eps, clip_range_value, vf_coef, ent_coef,
):  # fmt: skip
    """The reference answer: the loss of step 6 of ``PPOTrainer.ppo_step``."""
    pg_loss, _ = ppo.policy_loss(logprobs, old_logprobs, advantages, mask, clip_eps)
    vf_loss, _ = ppo.value_loss(values, old_values, returns, mask, clip_range_value)
    return pg_loss + vf_coef * vf_loss - ent_coef * masked_mean(entropy, mask)


def _batch(seed: int = 0, B: int = 4, T: int = 6) -> dict[str, torch.Tensor]:
    """A (B, T) batch whose ratios and values fall on both sides of their clip ranges; its mask
    ends every row but the first early."""
    gen = torch.Generator().manual_seed(seed)
    old_logprobs = -2 * torch.rand(B, T, generator=gen)
    old_values = torch.randn(B, T, generator=gen)
    lengths = torch.tensor([T] + torch.randint(1, T, (B - 1,), generator=gen).tolist())
    return {
        "logprobs": old_logprobs + 0.4 * torch.randn(B, T, generator=gen),
        "old_logprobs": old_logprobs,
        "advantages": torch.randn(B, T, generator=gen),
        "values": old_values + 0.5 * torch.randn(B, T, generator=gen),
        "old_values": old_values,
        "returns": torch.randn(B, T, generator=gen),
        "entropy": 3 * torch.rand(B, T, generator=gen),
        "mask": (torch.arange(T) < lengths[:, None]).float(),
    }


def _call(fn, batch, **settings):
    args = {k: v.clone() for k, v in batch.items()}
    return fn(**args, **settings)


def check_ppo_loss(fn) -> None:
    """Check ``fn`` (keyword arguments as ``reference_ppo_loss``) against the reference.

    Cases, each isolating one part: the policy term alone (``vf_coef = ent_coef = 0``), the
    value term alone (zero advantages), its weight ``vf_coef``, the entropy bonus (subtracted:
    a bonus lowers the loss), the clip ranges passed as arguments, padding ignored (garbage
    after the end changes nothing), a scalar result, and the gradients with respect to the
    log-probs and the values. Raises ``ExerciseError`` naming the first case that differs.

    Taught in notebooks/07_ppo.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    padded = _batch()
    batch = {**padded, "mask": torch.ones_like(padded["mask"])}  # no padding until the padding case
    base = {"clip_eps": 0.2, "clip_range_value": 0.2, "vf_coef": 0.0, "ent_coef": 0.0}
    n_cases = 0

    def case(name, b, **settings):
        nonlocal n_cases
        kw = {**base, **settings}
        got = _call(fn, b, **kw)
        if isinstance(got, tuple):  # a (loss, stats) answer: the loss is what is checked
            got = got[0]
        settings_text = ", ".join(f"{k}={v}" for k, v in kw.items())
        compare(f"{name} ({settings_text})", got, reference_ppo_loss(**b, **kw))
        n_cases += 1

    got = _call(fn, batch, **base)
    got = got[0] if isinstance(got, tuple) else got
    if not (isinstance(got, torch.Tensor) and got.dim() == 0):
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise ExerciseError(f"a scalar loss: expected a 0-dim tensor (one number), got {shape}")
    case("policy term only: the clipped policy loss of lesson 04", batch)
    no_advantage = {**batch, "advantages": torch.zeros_like(batch["advantages"])}
    case("value term only (advantages 0): the clipped value loss", no_advantage, vf_coef=1.0)
    case("value term weighted by vf_coef", batch, vf_coef=0.1)
    case("entropy bonus: minus ent_coef times the masked mean entropy", batch, ent_coef=0.01)
    case("all three parts together", batch, vf_coef=0.5, ent_coef=0.01)
    case("other clip ranges", batch, clip_eps=0.05, clip_range_value=0.5, vf_coef=1.0)
    valid = padded["mask"].bool()
    for name in NAMES:  # garbage after the end of each row
        padded[name] = torch.where(valid, padded[name], torch.full_like(padded[name], 7.0))
    case("padding ignored: means over valid tokens only", padded, vf_coef=0.5, ent_coef=0.01)

    kw = {**base, "vf_coef": 0.5, "ent_coef": 0.01}
    for wrt in ("logprobs", "values"):
        args = {k: v.clone() for k, v in padded.items()}
        args[wrt].requires_grad_(True)
        got = fn(**args, **kw)
        got = got[0] if isinstance(got, tuple) else got
        got_grad = learner_gradient(
            f"gradient with respect to {wrt}",
            got,
            args[wrt],
            f"the loss carries no gradient back to {wrt}; compute it with torch operations "
            "(no .item(), .detach() or torch.no_grad())",
        )
        ref = {k: v.clone() for k, v in padded.items()}
        ref[wrt].requires_grad_(True)
        (expected,) = torch.autograd.grad(reference_ppo_loss(**ref, **kw), ref[wrt])
        compare(f"gradient with respect to {wrt}", got_grad, expected)
        n_cases += 1
    passed("my_ppo_loss", n_cases)
