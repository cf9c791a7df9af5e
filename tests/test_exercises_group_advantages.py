"""The checker of lesson 08's exercise passes the reference and names the case of each slip."""

import pytest
import torch

from rlhf_edu.beyond import group_advantages
from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.group_advantages import check_group_advantages


def plain(rewards, group_size, kind):
    """A plain-loop solution, group by group."""
    out = []
    for g in range(0, len(rewards), group_size):
        r = rewards[g : g + group_size].tolist()
        mean = sum(r) / len(r)
        if kind == "grpo":
            std = (sum((x - mean) ** 2 for x in r) / (len(r) - 1)) ** 0.5
            out += [(x - mean) / (std + 1e-4) for x in r]
        else:
            out += [x - (sum(r) - x) / (len(r) - 1) for x in r]
    return torch.tensor(out)


def test_passes_the_package_reference_and_a_plain_solution(capsys):
    check_group_advantages(group_advantages)
    check_group_advantages(plain)
    assert "all 6 cases match" in capsys.readouterr().out


def biased_std(rewards, group_size, kind):
    if kind == "rloo":
        return group_advantages(rewards, group_size, kind)
    g = rewards.view(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=False, keepdim=True) + 1e-4)).view(
        -1
    )


def mean_only(rewards, group_size, kind):
    g = rewards.view(-1, group_size)
    return (g - g.mean(1, keepdim=True)).view(-1)


def across(rewards, group_size, kind):
    g = rewards.view(group_size, -1)  # groups as columns: the wrong layout
    if kind == "grpo":
        return ((g - g.mean(0)) / (g.std(0) + 1e-4)).reshape(-1)
    return (g - (g.sum(0) - g) / (group_size - 1)).reshape(-1)


def no_eps(rewards, group_size, kind):
    if kind == "rloo":
        return group_advantages(rewards, group_size, kind)
    g = rewards.view(-1, group_size)
    return ((g - g.mean(1, keepdim=True)) / g.std(1, keepdim=True)).view(-1)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (biased_std, "biased std"),
        (mean_only, "only subtracted the group mean"),
        (
            lambda r, G, k: mean_only(r, G, k) if k == "rloo" else group_advantages(r, G, k),
            "the response itself included",
        ),
        (across, "consecutive rows"),
        (no_eps, "four groups of 2.*nan"),  # 0 / 0 = nan in the (0, 0) group
        (lambda r, G, k: group_advantages(r, G, k)[:-1], "expected shape"),
    ],
)
def test_names_the_slip(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_group_advantages(wrong)
