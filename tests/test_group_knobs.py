"""The group trainer's lesson-10 knobs: clip_eps_high, importance_sampling, drop_zero_std_groups."""

import pytest
import torch

from rlhf_edu.generation import response_logprobs
from rlhf_edu.group_methods import GroupConfig, GroupTrainer

SMALL = {"steps": 1, "prompts_per_step": 4, "group_size": 4, "epochs": 1, "mini_batch_size": 16}


def make(tiny, reward_fn=None, **kw):
    cfg = GroupConfig(**{**SMALL, "max_new_tokens": 8, **kw})
    return GroupTrainer(
        "grpo", cfg, tiny.fresh_policy(), tiny.ref_policy, tiny.tokenizer,
        reward_fn or tiny.reward, tiny.prompts,
    )  # fmt: skip


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"clip_eps_high": 0.0}, "clip_eps_high"),
        ({"clip_eps_high": "0.28"}, "clip_eps_high"),
        ({"importance_sampling": "tokens"}, "importance_sampling"),
        ({"drop_zero_std_groups": 1}, "drop_zero_std_groups"),
    ],
)
def test_bad_values_name_the_field(kw, name):
    with pytest.raises(ValueError, match=name):
        GroupConfig(**kw)


def test_defaults_keep_grpo():
    c = GroupConfig()
    assert (c.clip_eps_high, c.importance_sampling, c.drop_zero_std_groups) == (
        None,
        "token",
        False,
    )


def first_prompt_only(texts):
    """Reward 1 for the responses of the first group's prompt by position: other groups get 0."""
    return torch.tensor([float(i % 16 < 4) * (i % 2) for i in range(len(texts))])


class TestDropZeroStdGroups:
    def test_frac_zero_std_is_logged_either_way(self, tiny):
        for drop in (False, True):
            m = make(tiny, reward_fn=first_prompt_only, drop_zero_std_groups=drop).group_step()
            assert m["objective/frac_zero_std"] == pytest.approx(0.75)  # 3 of 4 groups constant

    def test_dropped_groups_do_not_enter_the_loss(self, tiny):
        # one epoch, one minibatch: before the update the ratio is 1, so the token-mean loss is
        # minus the length-weighted mean advantage of the rows trained on: the kept group's alone
        # when dropping, all 16 rows' tokens in the denominator when not.
        tr = make(tiny, reward_fn=first_prompt_only, drop_zero_std_groups=True,
                  loss_aggregation="token_mean", beta=0.0)  # fmt: skip
        m = tr.group_step()
        lengths = tr.last_rollout.mask.sum(1).float()[:4]
        r = torch.tensor([0.0, 1.0, 0.0, 1.0])
        adv = (r - r.mean()) / (r.std() + 1e-4)
        expected = -(adv * lengths).sum() / lengths.sum()
        assert m["loss/policy_avg"] == pytest.approx(expected.item(), abs=1e-4)
        tr_all = make(tiny, reward_fn=first_prompt_only, loss_aggregation="token_mean", beta=0.0)
        m_all = tr_all.group_step()
        all_lengths = tr_all.last_rollout.mask.sum(1).float()
        assert m_all["loss/policy_avg"] == pytest.approx(
            -(adv * lengths).sum().item() / all_lengths.sum().item(), abs=1e-4
        )

    def test_all_groups_constant_means_no_update(self, tiny):
        tr = make(tiny, reward_fn=lambda texts: torch.zeros(len(texts)), drop_zero_std_groups=True)
        before = [q.detach().clone() for q in tr.policy.parameters()]
        m = tr.group_step()
        assert m["objective/frac_zero_std"] == 1.0 and m["loss/policy_avg"] == 0.0
        assert all(torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))


class TestRatioKnobs:
    def test_clip_eps_high_reduces_clipping(self, tiny):
        kw = {"epochs": 3, "mini_batch_size": 8, "lr": 3e-3, "clip_eps": 0.05, "seed": 1}
        sym = make(tiny, **kw).group_step()["policy/clipfrac_avg"]
        high = make(tiny, clip_eps_high=5.0, **kw).group_step()["policy/clipfrac_avg"]
        assert sym > 0 and high < sym

    def test_sequence_ratio_first_loss_is_the_same(self, tiny):
        # before the first update every ratio is 1, per token or per sequence
        a = make(tiny, seed=2).group_step()
        b = make(tiny, seed=2, importance_sampling="sequence").group_step()
        assert a["loss/policy_avg"] == pytest.approx(b["loss/policy_avg"], abs=1e-5)

    def test_sequence_ratio_is_used(self, tiny):
        kw = {
            "epochs": 2,
            "mini_batch_size": 16,
            "lr": 3e-3,
            "clip_eps": 0.2,
            "seed": 3,
            "beta": 0.0,
        }
        a = make(tiny, **kw)
        ma = a.group_step()  # each trainer seeds torch's sampling when it is made
        b = make(tiny, importance_sampling="sequence", **kw)
        mb = b.group_step()
        assert ma["objective/scores"] == mb["objective/scores"]  # same samples
        assert ma["loss/policy_avg"] != pytest.approx(mb["loss/policy_avg"], abs=1e-7)
        lp = response_logprobs(b.policy, b.last_rollout)
        assert torch.isfinite(lp).all()
