"""The KL penalty: per-token KL estimators, KL-shaped rewards, beta controllers (lesson 05).

Tensors are ``(B, T)`` over response tokens; ``mask`` is 1 on real tokens (a prefix of ones per
row). Log-probabilities are those of the sampled tokens under the policy ``pi`` and under the
frozen reference ``pi_ref``.
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
    require_shape,
)

KL_KINDS = ("k1", "k2", "k3")


def kl_estimate(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1"
) -> torch.Tensor:
    """Estimate KL(pi || pi_ref) per token from tokens sampled from ``pi``.

    With ``logr = ref_logprobs - logprobs`` (Schulman, "Approximating KL Divergence", 2020):
    ``k1 = -logr`` (unbiased, can be negative), ``k2 = logr^2 / 2`` (biased, low variance),
    ``k3 = exp(logr) - 1 - logr`` (unbiased and always >= 0). "Unbiased" is about the value:
    ``E_{x~pi}[k] = KL(pi || pi_ref)``. Both inputs have the same shape, usually ``(B, T)``;
    returns that shape.

    Gradients flow, and used as a loss (differentiated through ``logprobs`` with the sampled
    tokens held fixed, as GRPO does with k3) the expected gradients are NOT all that of
    ``KL(pi || pi_ref)``: ``E[grad k1] = 0``, ``E[grad k2] = grad KL(pi || pi_ref)``,
    ``E[grad k3] = grad KL(pi_ref || pi)`` (the reverse direction). Put in the reward instead
    (a constant times ``grad log pi``, as PPO does), k1 gives ``grad KL(pi || pi_ref)``.
    Both are shown exactly on a small categorical in the lesson.

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    logprobs = require_float_tensor("logprobs", logprobs)
    ref_logprobs = require_float_tensor("ref_logprobs", ref_logprobs)
    require_same_shape("ref_logprobs", ref_logprobs, "logprobs", logprobs)
    kind = require_choice("kind", kind, KL_KINDS)
    logr = ref_logprobs - logprobs  # log(pi_ref / pi) at the sampled token
    if kind == "k1":
        return -logr
    if kind == "k2":
        return logr**2 / 2
    return torch.expm1(logr) - logr  # k3; expm1(x) = exp(x) - 1, accurate near 0


@torch.no_grad()
def shaped_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    kind: str = "k1",
) -> torch.Tensor:
    """Build per-token RLHF rewards: a KL penalty on every token, the score on the last one.

    ``r_t = -beta * kl_t + [t == last valid token] * score`` on valid tokens, 0 where ``mask`` is
    0 (Ziegler et al. 2019; Ouyang et al. 2022). ``scores``: ``(B,)`` sequence scores from the
    reward model; ``logprobs``, ``ref_logprobs``, ``mask``: ``(B, T)``, every row with at least
    one valid token; ``beta`` >= 0; ``kind`` as in :func:`kl_estimate`. Returns ``(B, T)``,
    without gradient (rewards are constants for the update). With ``kind="k1"`` the penalties
    of a response sum to ``-beta * (log pi(y) - log pi_ref(y))``, whose score-function gradient
    is ``-beta * grad KL(pi || pi_ref)`` of the sequence; k2 or k3 in the reward estimate the KL's
    value but their score-function gradient is not that of the KL.

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    logprobs = require_float_tensor("logprobs", logprobs, ndim=2)
    kl = kl_estimate(logprobs, ref_logprobs, kind)
    scores = require_float_tensor("scores", scores, ndim=1)
    require_shape("scores", scores, logprobs.shape[:1], " (one score per sequence)")
    valid = require_mask("mask", mask, logprobs.shape)
    if not bool(valid[:, 0].all()):
        raise ValueError("mask: expected at least one valid token per row (to carry the score)")
    beta = require_number("beta", beta, 0.0)

    # the last valid token is valid and followed by padding (or by the end of the row)
    next_valid = torch.cat([valid[:, 1:], torch.zeros_like(valid[:, :1])], dim=1)
    is_last = valid & ~next_valid
    rewards = -beta * kl + is_last.to(kl.dtype) * scores[:, None]
    return torch.where(valid, rewards, torch.zeros_like(rewards))


class AdaptiveKLController:
    """Adapt the KL coefficient beta so that the measured KL tracks a target (Ziegler et al. 2019).

    ``e = clip(KL / target - 1, -0.2, 0.2)`` and ``beta <- beta * (1 + e * n_steps / horizon)``:
    beta grows when the policy drifts further than ``target`` nats from the reference and shrinks
    when it stays closer. ``init_beta``, ``target``, ``horizon`` > 0.

    Taught in notebooks/05_kl_penalty.ipynb.
    """

    def __init__(self, init_beta: float, target: float, horizon: float) -> None:
        self.beta = require_number("init_beta", init_beta, 0.0, low_open=True)
        self.target = require_number("target", target, 0.0, low_open=True)
        self.horizon = require_number("horizon", horizon, 0.0, low_open=True)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Update beta from the KL measured over the last ``n_steps`` samples; return the new beta.

        ``current_kl``: a number or 0-dim tensor (the batch's mean KL per sequence);
        ``n_steps`` >= 1, usually the batch size.
        """
        current_kl = require_number("current_kl", current_kl)
        n_steps = require_int("n_steps", n_steps, 1)
        proportional_error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.beta *= 1 + proportional_error * n_steps / self.horizon
        return self.beta

    def state_dict(self) -> dict[str, float]:
        """Return the controller's state (``beta``, ``target``, ``horizon``) for a checkpoint."""
        return {"beta": self.beta, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the state returned by :meth:`state_dict`."""
        beta, target, horizon = (
            require_number(key, _state_value(state, key), 0.0, low_open=True)
            for key in ("beta", "target", "horizon")
        )
        self.beta, self.target, self.horizon = beta, target, horizon


class FixedKLController:
    """Keep the KL coefficient beta constant; same interface as :class:`AdaptiveKLController`.

    ``beta`` >= 0 (0 turns the penalty off).

    Taught in notebooks/05_kl_penalty.ipynb.
    """

    def __init__(self, beta: float) -> None:
        self.beta = require_number("beta", beta, 0.0)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Check the arguments and leave beta unchanged; return it."""
        require_number("current_kl", current_kl)
        require_int("n_steps", n_steps, 1)
        return self.beta

    def state_dict(self) -> dict[str, float]:
        """Return the controller's state (``beta``) for a checkpoint."""
        return {"beta": self.beta}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the state returned by :meth:`state_dict`."""
        self.beta = require_number("beta", _state_value(state, "beta"), 0.0)


def kl_optimal_policy(ref_probs: torch.Tensor, rewards: torch.Tensor, beta: float) -> torch.Tensor:
    """Compute the policy that maximises ``E_pi[R] - beta * KL(pi || pi_ref)``.

    ``pi*(y) = pi_ref(y) * exp(R(y) / beta) / Z`` with ``Z`` the sum over ``y`` (the last dim),
    computed as a softmax of ``log pi_ref + R / beta`` for stability: the optimum of the
    KL-regularised objective that PPO-RLHF maximises (Ziegler et al. 2019), derived in the DPO
    paper (Rafailov et al. 2023, appendix A.1). ``ref_probs`` (>= 0) and ``rewards`` have the
    same shape ``(..., V)``; ``beta`` > 0. Returns ``(..., V)`` probabilities.

    Taught in notebooks/05_kl_penalty.ipynb.
    """
    ref_probs = require_float_tensor("ref_probs", ref_probs)
    rewards = require_float_tensor("rewards", rewards)
    require_same_shape("rewards", rewards, "ref_probs", ref_probs)
    beta = require_number("beta", beta, 0.0, low_open=True)
    if not bool((ref_probs >= 0).all()):
        raise ValueError("ref_probs: expected non-negative probabilities")
    return torch.softmax(torch.log(ref_probs) + rewards / beta, dim=-1)


def _state_value(state: object, key: str) -> object:
    if not isinstance(state, dict) or key not in state:
        raise ValueError(f"state: expected a dict with key {key!r}, got {state!r}")
    return state[key]
