"""Beyond PPO: DPO's loss and the critic-free group advantages of GRPO and RLOO (lesson 08)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf_edu._checks import (
    require_choice,
    require_float_tensor,
    require_int,
    require_number,
    require_same_shape,
)

GROUP_KINDS = ("grpo", "rloo")
GRPO_STD_EPS = 1e-4


def dpo_loss(
    pi_chosen: torch.Tensor,
    pi_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Compute the Direct Preference Optimization loss (Rafailov et al. 2023).

    With implicit rewards ``r = beta * (log pi(y|x) - log pi_ref(y|x))``:
    ``loss = -mean(log sigmoid(r_chosen - r_rejected))``, the Bradley-Terry loss on the policy's
    implicit reward. All four inputs are sequence log-probs (summed over response tokens),
    shape ``(B,)``; ``beta`` >= 0. Returns ``(loss, stats)``: ``loss`` a 0-dim tensor, ``stats``
    python floats named as TRL logs them: ``rewards/chosen``, ``rewards/rejected`` (mean implicit
    rewards), ``rewards/margins`` (their mean difference), ``rewards/accuracies`` (fraction with
    ``r_chosen > r_rejected``).

    Taught in notebooks/08_beyond_ppo.ipynb.
    """
    pi_chosen = require_float_tensor("pi_chosen", pi_chosen, ndim=1)
    for name, x in (
        ("pi_rejected", pi_rejected),
        ("ref_chosen", ref_chosen),
        ("ref_rejected", ref_rejected),
    ):
        require_same_shape(name, require_float_tensor(name, x, ndim=1), "pi_chosen", pi_chosen)
    beta = require_number("beta", beta, 0.0)
    chosen_rewards = beta * (pi_chosen - ref_chosen)
    rejected_rewards = beta * (pi_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    with torch.no_grad():
        stats = {
            "rewards/chosen": chosen_rewards.mean().item(),
            "rewards/rejected": rejected_rewards.mean().item(),
            "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
        }
    return loss, stats


def group_advantages(
    rewards: torch.Tensor, group_size: int, kind: str = "grpo", scale_rewards: bool = True
) -> torch.Tensor:
    """Compute advantages relative to the other samples drawn for the same prompt.

    ``rewards``: ``(B,)``, consecutive groups of ``group_size`` samples per prompt
    (``group_size`` >= 2 divides ``B``). Returns ``(B,)``:

    - ``"grpo"`` (Shao et al. 2024, DeepSeekMath): ``(r_i - mean_g) / (std_g + 1e-4)`` with the
      unbiased group std, as TRL's GRPOTrainer; with ``scale_rewards=False`` only
      ``r_i - mean_g`` (Dr. GRPO, Liu et al. 2025: the std division up-weights prompts whose
      responses all score alike);
    - ``"rloo"`` (Ahmadian et al. 2024): ``r_i - mean of the other G - 1 rewards in its group``
      (the leave-one-out baseline, which keeps the estimator unbiased).

    Taught in notebooks/08_beyond_ppo.ipynb.
    """
    rewards = require_float_tensor("rewards", rewards, ndim=1)
    group_size = require_int("group_size", group_size, 2)
    if rewards.shape[0] % group_size:
        raise ValueError(
            f"group_size: expected a divisor of the batch size {rewards.shape[0]}, got {group_size}"
        )
    kind = require_choice("kind", kind, GROUP_KINDS)
    if not isinstance(scale_rewards, bool):
        raise ValueError(f"scale_rewards: expected True or False, got {scale_rewards!r}")
    if kind == "rloo" and not scale_rewards:
        raise ValueError("scale_rewards: RLOO never divides by the std; expected True for rloo")
    grouped = rewards.view(-1, group_size)  # (num_prompts, G)
    if kind == "grpo":
        centered = grouped - grouped.mean(dim=1, keepdim=True)
        if not scale_rewards:
            return centered.view(-1)
        std = grouped.std(dim=1, keepdim=True)  # unbiased
        return (centered / (std + GRPO_STD_EPS)).view(-1)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)  # leave one out
    return (grouped - baseline).view(-1)
