"""Tests for rlhf_edu.exercises.advantages: the GAE checker passes the reference and names the
case a typical wrong answer fails."""

import pytest
import torch

from rlhf_edu.advantages import gae
from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.advantages import check_gae


def reference(rewards, values, mask, gamma, lam):
    return gae(rewards, values, mask, gamma, lam)[0]


def loop_gae(
    rewards,
    values,
    mask,
    gamma,
    lam,
    *,
    bootstrap_padding=False,
    zero_padding=True,
    gamma_in_recursion=True,
):
    """A per-row loop, with switches that reproduce common mistakes."""
    advantages = torch.zeros_like(rewards)
    B, T = rewards.shape
    for b in range(B):
        n = T if bootstrap_padding else int(mask[b].sum())
        last = 0.0
        for t in reversed(range(n)):
            next_value = values[b, t + 1] if t + 1 < n else 0.0
            delta = rewards[b, t] + gamma * next_value - values[b, t]
            last = delta + (gamma * lam if gamma_in_recursion else lam) * last
            advantages[b, t] = last
    if not zero_padding:
        return advantages
    return advantages * mask


def test_passes_the_reference(capsys):
    check_gae(reference)
    assert "✓ my_gae: all 9 cases" in capsys.readouterr().out


def test_passes_a_plain_loop():
    check_gae(loop_gae)


def forward_loop(rewards, values, mask, gamma, lam):
    """Wrong: runs the recursion forward in time."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0])
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], 1) * mask
    delta = (rewards + gamma * next_values - values) * mask
    for t in range(rewards.shape[1]):
        last = delta[:, t] + gamma * lam * last
        advantages[:, t] = last
    return advantages * mask


WRONG = {
    "ignores the mask (bootstraps from padding)": (
        lambda r, v, m, g, lam: loop_gae(r, v, m, g, lam, bootstrap_padding=True),
        "padding after the end: the last valid token",
    ),
    "does not zero the padding": (
        lambda r, v, m, g, lam: loop_gae(
            r, v, m, g, lam, bootstrap_padding=True, zero_padding=False
        ),
        "padding after the end: the last valid token",
    ),
    "forgets gamma in the recursion": (
        lambda r, v, m, g, lam: loop_gae(r, v, m, g, lam, gamma_in_recursion=False),
        "gamma = 0",
    ),
    "returns the returns instead of the advantages": (
        lambda r, v, m, g, lam: gae(r, v, m, g, lam)[1],
        "a single full-length sequence",
    ),
    "runs forward in time": (forward_loop, "a single full-length sequence"),
    "swaps gamma and lam": (
        lambda r, v, m, g, lam: reference(r, v, m, lam, g),
        "a single full-length sequence",
    ),
    "returns a tuple": (lambda r, v, m, g, lam: gae(r, v, m, g, lam), "a single full-length"),
}


@pytest.mark.parametrize("name", WRONG)
def test_names_the_failing_case(name):
    fn, case = WRONG[name]
    with pytest.raises(ExerciseError) as info:
        check_gae(fn)
    assert str(info.value).startswith(case), str(info.value)


def test_padding_zeros_case_is_separate():
    """Right on valid positions but garbage on padding: the padding-zeros case names it."""

    def no_zero_fill(rewards, values, mask, gamma, lam):
        return torch.where(mask.bool(), reference(rewards, values, mask, gamma, lam), rewards)

    with pytest.raises(ExerciseError, match="^padding after the end: padded positions must be 0"):
        check_gae(no_zero_fill)


def test_unwritten_exercise_raises_not_implemented():
    def unwritten(rewards, values, mask, gamma, lam):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_gae(unwritten)
