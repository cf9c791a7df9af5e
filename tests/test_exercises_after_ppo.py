"""The checker of lesson 10's exercise accepts the reference and names each usual slip."""

import pytest
import torch

from rlhf_edu.advantages import masked_aggregate
from rlhf_edu.beyond import group_advantages
from rlhf_edu.exercises import ExerciseError
from rlhf_edu.exercises.after_ppo import check_dr_grpo_loss, dr_grpo_loss


def loss_with(how="constant", scale=False, clip=True, use_mask=True):
    def fn(logprobs, old_logprobs, rewards, mask, group_size, max_len, clip_eps):
        adv = group_advantages(rewards, group_size, "grpo", scale_rewards=scale)[:, None]
        ratio = torch.exp(logprobs - old_logprobs)
        obj = ratio * adv
        if clip:
            obj = torch.min(obj, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
        m = mask if use_mask else torch.ones_like(mask)
        return -masked_aggregate(obj, m, how, max_len)

    return fn


def test_reference_passes(capsys):
    check_dr_grpo_loss(dr_grpo_loss)
    check_dr_grpo_loss(loss_with())
    assert "all 6 cases" in capsys.readouterr().out


@pytest.mark.parametrize(
    "fn,words",
    [
        (loss_with(scale=True), "std"),
        (loss_with("sequence_mean"), "each response's mean"),
        (loss_with("token_mean"), "number of valid tokens"),
        (loss_with(clip=False), "clip"),
        (loss_with(use_mask=False), "padding"),
    ],
)
def test_each_slip_is_named(fn, words):
    with pytest.raises(ExerciseError, match=words):
        check_dr_grpo_loss(fn)


def test_wrong_shape_and_value_name_the_case():
    with pytest.raises(ExerciseError, match="ratio 1, one group of 4"):
        check_dr_grpo_loss(lambda *a: torch.zeros(2))
    with pytest.raises(ExerciseError, match="ratio 1, one group of 4"):
        check_dr_grpo_loss(lambda *a: torch.tensor(1.0))


def test_not_implemented_propagates():
    def fn(*a):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_dr_grpo_loss(fn)
