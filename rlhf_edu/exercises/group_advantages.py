"""Checker for lesson 08's exercise: group advantages ``my_group_advantages`` (GRPO and RLOO).

Taught in notebooks/08_beyond_ppo.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_callable
from rlhf_edu.beyond import group_advantages
from rlhf_edu.exercises import ExerciseError, compare, passed

FORMULAS = {
    "grpo": "A_i = (r_i - mean of its group) / (unbiased std of its group + 1e-4)",
    "rloo": "A_i = r_i - mean of the OTHER G - 1 rewards of its group",
}


def _cases() -> list[tuple[str, torch.Tensor, int, str]]:
    """Named cases, each isolating one thing: (name, rewards, group_size, kind)."""
    one = torch.tensor([1.0, 2.0, 3.0, 6.0])
    two = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 4.0, 8.0])  # groups differ in mean and std
    return [
        ("grpo, one group of 4: centre by the mean, divide by the unbiased std", one, 4, "grpo"),
        ("grpo, two groups of 4 (consecutive rows share a prompt)", two, 4, "grpo"),
        ("grpo, four groups of 2", two, 2, "grpo"),
        (
            "grpo, a group whose rewards are all equal (std 0: advantages 0)",
            torch.tensor([5.0, 5.0, 5.0, 1.0, 2.0, 3.0]),
            3,
            "grpo",
        ),
        ("rloo, one group of 4: the baseline leaves the response itself out", one, 4, "rloo"),
        ("rloo, two groups of 4 (consecutive rows share a prompt)", two, 4, "rloo"),
    ]


def check_group_advantages(fn) -> None:
    """Check ``fn(rewards, group_size, kind)`` against :func:`rlhf_edu.beyond.group_advantages`.

    ``rewards``: ``(B,)``, consecutive groups of ``group_size``; ``kind``: ``"grpo"`` or
    ``"rloo"``. Expected ``(B,)``: GRPO ``(r - mean_g) / (std_g + 1e-4)`` with the unbiased
    std; RLOO ``r_i - mean of the other G - 1``. Raises :class:`ExerciseError` naming the first
    case that differs, with a hint for the usual slips (the biased std, groups read across
    instead of consecutively, a baseline that includes the response itself); prints a success
    line otherwise.

    Taught in notebooks/08_beyond_ppo.ipynb.
    """
    require_callable("fn", fn, "your function itself (pass it without calling it)")
    cases = _cases()
    for name, rewards, group_size, kind in cases:
        expected = group_advantages(rewards, group_size, kind)
        got = fn(rewards.clone(), group_size, kind)
        _hint(name, got, rewards, group_size, kind)
        compare(f"{name}: {FORMULAS[kind]}", got, expected, atol=1e-4)
    passed("my_group_advantages", len(cases))


def _hint(name, got, rewards, group_size, kind) -> None:
    """Raise a named error when ``got`` matches a known slip (and the slip is wrong here)."""
    grouped = rewards.view(-1, group_size)  # (prompts, G)
    centered = (grouped - grouped.mean(1, keepdim=True)).view(-1)
    biased = grouped.std(1, unbiased=False, keepdim=True)
    if kind == "grpo":
        slips = [
            ((centered.view(-1, group_size) / (biased + 1e-4)).view(-1),
             "you divided by the biased std (1/G); GRPO uses the unbiased one (1/(G-1))"),
            (centered, "you only subtracted the group mean; divide by the group's std too"),
        ]  # fmt: skip
    else:
        slips = [
            (centered, ("your baseline is the mean of the whole group, the response itself "
                        "included; leave it out: (sum of the group - r_i) / (G - 1)")),
        ]  # fmt: skip
    prompts = len(rewards) // group_size
    if prompts > 1:  # groups read across the batch (rows j, j + prompts, ...): a wrong layout
        across = rewards.view(group_size, prompts).t().reshape(-1)
        wrong = group_advantages(across, group_size, kind).view(prompts, group_size)
        slips.append((wrong.t().reshape(-1), ("your groups are rows j, j + B/G, ...; a group is "
                      "consecutive rows [g*G, (g+1)*G), as rewards.view(-1, G) reads them")))  # fmt: skip
    if not isinstance(got, torch.Tensor) or got.shape != rewards.shape:
        return
    right = group_advantages(rewards, group_size, kind)
    for wrong, why in slips:
        close = torch.allclose(got.detach().float(), wrong.float(), atol=1e-4)
        if close and not torch.allclose(wrong, right, atol=1e-4):
            raise ExerciseError(f"{name}: {why}")
