"""Tests for rlhf_edu.exercises.clipping: the checker passes the reference, names wrong cases."""

import pytest
import torch

from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.clipping import check_clipped_surrogate
from rlhf_edu.ppo import clipped_surrogate


def test_passes_the_reference(capsys):
    check_clipped_surrogate(clipped_surrogate)
    assert "✓ my_clipped_surrogate" in capsys.readouterr().out


def test_passes_a_case_form_answer():
    def case_form(ratio, advantages, clip_eps):
        upper = advantages * torch.clamp(ratio, max=1 + clip_eps)
        lower = advantages * torch.clamp(ratio, min=1 - clip_eps)
        return torch.where(advantages >= 0, upper, lower)

    check_clipped_surrogate(case_form)


WRONG = {
    "max instead of min": (
        lambda r, a, e: torch.max(r * a, torch.clamp(r, 1 - e, 1 + e) * a),
        "A > 0, r > 1+eps",
    ),
    "always the clipped term": (
        lambda r, a, e: torch.clamp(r, 1 - e, 1 + e) * a,
        "A > 0, r < 1-eps",
    ),
    "clip only the top": (
        lambda r, a, e: torch.min(r * a, torch.clamp(r, max=1 + e) * a),
        "A < 0, r < 1-eps",
    ),
    "forgot A on the clipped term": (
        lambda r, a, e: torch.min(r * a, torch.clamp(r, 1 - e, 1 + e)),
        "A > 0, r > 1+eps",
    ),
    "hard-coded eps": (
        lambda r, a, e: torch.min(r * a, torch.clamp(r, 0.8, 1.2) * a),
        "another clip_eps",
    ),
    "detached result": (
        lambda r, a, e: torch.min(r * a, torch.clamp(r, 1 - e, 1 + e) * a).detach(),
        "gradient",
    ),
    "plain term detached": (
        lambda r, a, e: torch.min(r.detach() * a, torch.clamp(r, 1 - e, 1 + e) * a),
        "gradient",
    ),
}


@pytest.mark.parametrize("name", WRONG)
def test_names_the_failing_case(name):
    fn, case = WRONG[name]
    with pytest.raises(ExerciseError) as info:
        check_clipped_surrogate(fn)
    message = str(info.value)
    assert message.startswith(case), message
    if case != "gradient":
        assert "expected" in message and "got" in message


def test_unwritten_exercise_raises_not_implemented():
    def unwritten(ratio, advantages, clip_eps):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_clipped_surrogate(unwritten)
