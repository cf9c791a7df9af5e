"""Tests for rlhf_edu.exercises.kl: the k3 checker passes the reference, names wrong cases."""

import pytest
import torch

from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.kl import check_k3
from rlhf_edu.kl import kl_estimate


def test_passes_the_reference(capsys):
    check_k3(lambda logprobs, ref_logprobs: kl_estimate(logprobs, ref_logprobs, "k3"))
    assert "✓ my_k3: all 5 cases match" in capsys.readouterr().out


def test_passes_a_ratio_form_answer():
    def ratio_form(logprobs, ref_logprobs):
        ratio = torch.exp(ref_logprobs - logprobs)  # pi_ref / pi
        return ratio - 1 - torch.log(ratio)

    check_k3(ratio_form)


def k3_of(logr):
    return torch.exp(logr) - 1 - logr


WRONG = {
    "forgot the -1": (lambda lp, ref: torch.exp(ref - lp) - (ref - lp), "equal distributions"),
    "k1 instead": (lambda lp, ref: lp - ref, "non-negativity"),
    "forgot the -logr": (lambda lp, ref: torch.exp(ref - lp) - 1, "non-negativity"),
    "swapped sign": (lambda lp, ref: k3_of(lp - ref), "sign convention"),
    "k2 instead": (lambda lp, ref: (ref - lp) ** 2 / 2, "sign convention"),
    "clamped log-ratio": (lambda lp, ref: k3_of(torch.clamp(ref - lp, -1, 1)), "a random (4, 6)"),
    "mean over tokens": (lambda lp, ref: k3_of(ref - lp).mean(), "equal distributions"),
    "detached": (lambda lp, ref: k3_of(ref - lp).detach(), "gradient"),
    "logprobs detached inside": (lambda lp, ref: k3_of(ref - lp.detach()) + 0 * lp, "gradient"),
}


@pytest.mark.parametrize("name", WRONG)
def test_names_the_failing_case(name):
    fn, case = WRONG[name]
    with pytest.raises(ExerciseError) as info:
        check_k3(fn)
    message = str(info.value)
    assert message.startswith(case), message
    if case != "gradient":
        assert "expected" in message and "got" in message


def test_swapped_sign_gets_a_hint():
    with pytest.raises(ExerciseError, match="reverse direction"):
        check_k3(WRONG["swapped sign"][0])


def test_unwritten_exercise_raises_not_implemented():
    def unwritten(logprobs, ref_logprobs):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_k3(unwritten)
