"""The lesson 02 checker passes the reference and names the right case for typical slips."""

import pytest
import torch
import torch.nn.functional as F

from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.reward_model import check_pairwise_loss
from rlhf_edu.rewards import pairwise_loss


def test_reference_passes(capsys):
    check_pairwise_loss(pairwise_loss)
    assert "all 7 cases match" in capsys.readouterr().out


def test_a_plain_formula_passes(capsys):
    check_pairwise_loss(lambda c, r: -F.logsigmoid(c - r).mean())
    check_pairwise_loss(lambda c, r: F.softplus(r - c).mean())  # the same, written as softplus
    assert capsys.readouterr().out.count("✓") == 2


WRONG = {
    "rejected minus chosen": (
        lambda c, r: -F.logsigmoid(r - c).mean(),
        "one pair, chosen ahead by 1",
    ),
    "missing minus sign": (lambda c, r: F.logsigmoid(c - r).mean(), "one pair, chosen ahead"),
    "sigmoid without the log": (
        lambda c, r: -torch.sigmoid(c - r).mean(),
        "one pair, chosen ahead",
    ),
    "each reward scored on its own": (
        lambda c, r: (-F.logsigmoid(c) - F.logsigmoid(-r)).mean(),
        "one pair, chosen ahead",
    ),
    "sum instead of mean": (
        lambda c, r: -F.logsigmoid(c - r).sum(),
        "a batch: the mean over pairs",
    ),
    "no reduction": (lambda c, r: -F.logsigmoid(c - r), r"chosen ahead by 1: expected shape \(\)"),
    "log of sigmoid": (
        lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(),
        "a huge wrong margin",
    ),
    "hinge instead of logistic": (
        lambda c, r: torch.clamp(1 - (c - r), min=0).mean(),
        "one pair, chosen ahead",
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_answers_fail_on_the_right_case(name):
    fn, case = WRONG[name]
    with pytest.raises(ExerciseError, match=case):
        check_pairwise_loss(fn)


def test_not_implemented_propagates():
    def fn(chosen, rejected):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_pairwise_loss(fn)
