"""The checker of lesson 03's exercise passes the reference and names the case of each slip."""

import pytest

from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.reinforce import check_reinforce_loss
from rlhf_edu.reinforce import reinforce_loss


def reference(logprobs, rewards, mask, baseline):
    return -((rewards - baseline) * (logprobs * mask).sum(1)).mean()


def test_passes_the_package_reference_and_a_plain_solution(capsys):
    check_reinforce_loss(reinforce_loss)
    check_reinforce_loss(reference)
    assert "all 6 cases match" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "case"),
    [
        # the objective instead of the loss
        (lambda lp, r, m, b: ((r - b) * (lp * m).sum(1)).mean(), "sign convention"),
        # forgot the baseline
        (lambda lp, r, m, b: -(r * (lp * m).sum(1)).mean(), "baseline subtraction"),
        # added the baseline
        (lambda lp, r, m, b: -((r + b) * (lp * m).sum(1)).mean(), "baseline subtraction"),
        # forgot the mask: padded log-probs count
        (lambda lp, r, m, b: -((r - b) * lp.sum(1)).mean(), "masking of padded tokens"),
        # token mean instead of the sum over tokens
        (lambda lp, r, m, b: -((r - b) * (lp * m).sum(1) / m.sum(1)).mean(), "sign convention"),
        # sum over the batch instead of the mean
        (lambda lp, r, m, b: -((r - b) * (lp * m).sum(1)).sum(), "sign convention"),
        # per-sequence losses, not reduced
        (lambda lp, r, m, b: -((r - b) * (lp * m).sum(1)), "expected shape ()"),
        # detached log-probs: right value, no gradient
        (lambda lp, r, m, b: reference(lp.detach(), r, m, b), "gradient direction"),
    ],
)
def test_fails_naming_the_case(wrong, case):
    with pytest.raises(ExerciseError, match=case):
        check_reinforce_loss(wrong)


def test_sign_error_says_to_return_the_loss():
    with pytest.raises(ExerciseError, match="MINIMISE"):
        check_reinforce_loss(lambda lp, r, m, b: ((r - b) * (lp * m).sum(1)).mean())


def test_gradient_direction_catches_a_sign_hidden_in_the_graph():
    # right values, but the gradient flows with the wrong sign (a constant plus -x trick)
    def wrong(lp, r, m, b):
        value = reference(lp, r, m, b)
        return 2 * value.detach() - value

    with pytest.raises(ExerciseError, match="gradient direction"):
        check_reinforce_loss(wrong)


def test_not_implemented_propagates():
    def todo(lp, r, m, b):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_reinforce_loss(todo)
