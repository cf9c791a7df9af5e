"""Tests for rlhf_edu.exercises.ppo_loss: the checker passes right answers, names wrong cases."""

import pytest
import torch

from rlhf_edu import ppo
from rlhf_edu.advantages import masked_mean
from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.ppo_loss import check_ppo_loss, reference_ppo_loss


def test_passes_the_reference(capsys):
    check_ppo_loss(reference_ppo_loss)
    assert "✓ my_ppo_loss" in capsys.readouterr().out


def test_passes_a_from_scratch_answer():
    def from_scratch(logprobs, old_logprobs, advantages, values, old_values, returns, entropy,
                     mask, clip_eps, clip_range_value, vf_coef, ent_coef):  # fmt: skip
        ratio = torch.exp(logprobs - old_logprobs)
        pg = torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
        v_clip = torch.clamp(values, old_values - clip_range_value, old_values + clip_range_value)
        vf = 0.5 * torch.max((values - returns) ** 2, (v_clip - returns) ** 2)
        n = mask.sum()
        return (
            -(pg * mask).sum() + vf_coef * (vf * mask).sum() - ent_coef * (entropy * mask).sum()
        ) / n

    check_ppo_loss(from_scratch)


def policy(lp, olp, a, m, eps):
    return ppo.policy_loss(lp, olp, a, m, eps)[0]


def value(v, ov, r, m, c):
    return ppo.value_loss(v, ov, r, m, c)[0]


WRONG = {
    "value loss added without vf_coef": (
        lambda lp, olp, a, v, ov, r, e, m, ce, cv, vc, ec: (
            policy(lp, olp, a, m, ce) + value(v, ov, r, m, cv) - ec * masked_mean(e, m)
        ),
        "policy term only",  # vf_coef = 0 there, yet the value loss is added
    ),
    "value loss with the policy's clip range": (
        lambda lp, olp, a, v, ov, r, e, m, ce, cv, vc, ec: (
            policy(lp, olp, a, m, ce) + vc * value(v, ov, r, m, ce) - ec * masked_mean(e, m)
        ),
        "other clip ranges",
    ),
    "entropy added instead of subtracted": (
        lambda lp, olp, a, v, ov, r, e, m, ce, cv, vc, ec: (
            policy(lp, olp, a, m, ce) + vc * value(v, ov, r, m, cv) + ec * masked_mean(e, m)
        ),
        "entropy bonus",
    ),
    "plain mean over padding": (
        lambda lp, olp, a, v, ov, r, e, m, ce, cv, vc, ec: (
            policy(lp, olp, a, m, ce) + vc * value(v, ov, r, m, cv) - ec * e.mean()
        ),
        "padding ignored",
    ),
    "objective instead of loss (sign)": (
        lambda lp, olp, a, v, ov, r, e, m, ce, cv, vc, ec: (
            -policy(lp, olp, a, m, ce) + vc * value(v, ov, r, m, cv) - ec * masked_mean(e, m)
        ),
        "policy term only",
    ),
    "per-token losses, not a scalar": (
        lambda lp, olp, a, v, ov, r, e, m, ce, cv, vc, ec: (
            -ppo.clipped_surrogate(torch.exp(lp - olp), a, ce)
        ),
        "a scalar loss",
    ),
    "log-probs detached": (
        lambda lp, olp, a, v, ov, r, e, m, ce, cv, vc, ec: (
            policy(lp.detach(), olp, a, m, ce)
            + vc * value(v, ov, r, m, cv)
            - ec * masked_mean(e, m)
        ),
        "gradient with respect to logprobs",
    ),
}


def positional(fn):
    def answer(logprobs, old_logprobs, advantages, values, old_values, returns, entropy, mask,
               clip_eps, clip_range_value, vf_coef, ent_coef):  # fmt: skip
        return fn(logprobs, old_logprobs, advantages, values, old_values, returns, entropy, mask,
                  clip_eps, clip_range_value, vf_coef, ent_coef)  # fmt: skip

    return answer


@pytest.mark.parametrize("name", WRONG)
def test_names_the_failing_case(name):
    fn, case = WRONG[name]
    with pytest.raises(ExerciseError) as info:
        check_ppo_loss(positional(fn))
    message = str(info.value)
    assert message.startswith(case), message
    if not case.startswith(("gradient", "a scalar")):
        assert "expected" in message and "got" in message


def test_unwritten_exercise_raises_not_implemented():
    def unwritten(**kwargs):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_ppo_loss(unwritten)
