"""Tests for rlhf_edu.beyond: DPO's loss and GRPO / RLOO group advantages (lesson 08)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.beyond import dpo_loss, group_advantages

SETTINGS = settings(max_examples=200, deadline=None)


def sequence_logprobs(seed, size=8):
    gen = torch.Generator().manual_seed(seed)
    return tuple(-20 * torch.rand(4, size, generator=gen, dtype=torch.float64))


class TestDpoLoss:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), beta=st.floats(0.0, 2.0))
    def test_matches_reference_and_trl_stats(self, seed, beta):
        pi_c, pi_r, ref_c, ref_r = sequence_logprobs(seed)
        loss, stats = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta)
        logits = beta * ((pi_c - ref_c) - (pi_r - ref_r))
        torch.testing.assert_close(loss, -torch.log(torch.sigmoid(logits)).mean())
        # the stats as TRL's DPOTrainer computes them (trl 1.12.0 dpo_trainer.py lines 1664-1679)
        chosen_rewards, rejected_rewards = beta * (pi_c - ref_c), beta * (pi_r - ref_r)
        assert stats["rewards/chosen"] == pytest.approx(chosen_rewards.mean().item())
        assert stats["rewards/rejected"] == pytest.approx(rejected_rewards.mean().item())
        assert stats["rewards/margins"] == pytest.approx(
            (chosen_rewards - rejected_rewards).mean().item()
        )
        accuracy = (chosen_rewards > rejected_rewards).float().mean().item()
        assert stats["rewards/accuracies"] == pytest.approx(accuracy)

    @SETTINGS
    @given(seed=st.integers(0, 2**31), beta=st.floats(0.0, 10.0))
    def test_is_log_two_when_policy_equals_reference(self, seed, beta):
        pi_c, pi_r, _, _ = sequence_logprobs(seed)
        loss, stats = dpo_loss(pi_c, pi_r, pi_c.clone(), pi_r.clone(), beta)
        assert loss.item() == pytest.approx(math.log(2))
        assert stats["rewards/margins"] == 0.0 and stats["rewards/accuracies"] == 0.0

    def test_gradient_raises_chosen_and_lowers_rejected(self):
        pi_c, pi_r, ref_c, ref_r = sequence_logprobs(0)
        pi_c.requires_grad_(True)
        pi_r.requires_grad_(True)
        loss, stats = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1)
        loss.backward()
        assert torch.all(pi_c.grad < 0) and torch.all(pi_r.grad > 0)
        assert all(type(v) is float for v in stats.values())

    def test_rejects_bad_inputs(self):
        x = torch.zeros(3)
        with pytest.raises(ValueError, match="beta"):
            dpo_loss(x, x, x, x, beta=-0.1)
        with pytest.raises(ValueError, match="pi_chosen"):
            dpo_loss(torch.zeros(3, 2), x, x, x, 0.1)
        with pytest.raises(ValueError, match="ref_rejected"):
            dpo_loss(x, x, x, torch.zeros(4), 0.1)
        with pytest.raises(ValueError, match="ref_chosen"):
            dpo_loss(x, x, None, x, 0.1)
        with pytest.raises(ValueError, match="pi_rejected"):
            dpo_loss(x, torch.zeros(3, 1), x, x, 0.1)


class TestGroupAdvantages:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), group_size=st.integers(2, 8), groups=st.integers(1, 5))
    def test_grpo_matches_reference_and_has_mean_zero(self, seed, group_size, groups):
        gen = torch.Generator().manual_seed(seed)
        rewards = torch.randn(groups * group_size, generator=gen, dtype=torch.float64)
        advantages = group_advantages(rewards, group_size, "grpo")
        for g in range(groups):
            r = rewards[g * group_size : (g + 1) * group_size]
            expected = (r - r.mean()) / (torch.std(r, unbiased=True) + 1e-4)
            torch.testing.assert_close(advantages[g * group_size : (g + 1) * group_size], expected)
        torch.testing.assert_close(
            advantages.view(groups, group_size).mean(1), torch.zeros(groups, dtype=torch.float64)
        )

    @SETTINGS
    @given(seed=st.integers(0, 2**31), group_size=st.integers(2, 8), groups=st.integers(1, 5))
    def test_rloo_matches_reference_and_sums_to_zero(self, seed, group_size, groups):
        gen = torch.Generator().manual_seed(seed)
        rewards = torch.randn(groups * group_size, generator=gen, dtype=torch.float64)
        advantages = group_advantages(rewards, group_size, kind="rloo")
        expected = []
        for g in range(groups):
            r = rewards[g * group_size : (g + 1) * group_size].tolist()
            expected += [r[i] - (sum(r) - r[i]) / (group_size - 1) for i in range(group_size)]
        torch.testing.assert_close(advantages, torch.tensor(expected, dtype=torch.float64))
        torch.testing.assert_close(
            advantages.view(groups, group_size).sum(1), torch.zeros(groups, dtype=torch.float64)
        )

    def test_grpo_without_std_scaling_only_centres(self):
        rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 4.0])
        got = group_advantages(rewards, 4, "grpo", scale_rewards=False)
        torch.testing.assert_close(got, torch.tensor([-2.0, -1.0, 0.0, 3.0, -1.0, -1.0, -1.0, 3.0]))
        with pytest.raises(ValueError, match="scale_rewards"):
            group_advantages(rewards, 4, "rloo", scale_rewards=False)
        with pytest.raises(ValueError, match="scale_rewards"):
            group_advantages(rewards, 4, "grpo", scale_rewards=0)

    def test_equal_rewards_give_zero_advantage(self):
        rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
        for kind in ("grpo", "rloo"):
            assert torch.all(group_advantages(rewards, 3, kind) == 0)

    def test_rejects_bad_inputs(self):
        r = torch.zeros(6)
        with pytest.raises(ValueError, match="group_size"):
            group_advantages(r, 4)
        with pytest.raises(ValueError, match="group_size"):
            group_advantages(r, 1)
        with pytest.raises(ValueError, match="group_size"):
            group_advantages(r, 3.0)
        with pytest.raises(ValueError, match="kind"):
            group_advantages(r, 3, kind="ppo")
        with pytest.raises(ValueError, match="rewards"):
            group_advantages(torch.zeros(2, 3), 3)
        with pytest.raises(ValueError, match="rewards"):
            group_advantages([0.0, 1.0], 2)
