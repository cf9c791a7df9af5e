"""Tests for rlhf_edu.reinforce: the score-function (REINFORCE) loss (lesson 03)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.reinforce import reinforce_loss

SETTINGS = settings(max_examples=200, deadline=None)


def batch(seed, size=5, length=6):
    gen = torch.Generator().manual_seed(seed)
    logprobs = -3 * torch.rand(size, length, generator=gen, dtype=torch.float64)
    rewards = torch.randn(size, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, length + 1, (size,), generator=gen)
    mask = torch.arange(length) < lengths[:, None]
    return logprobs, rewards, mask


class TestReinforceLoss:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), baseline=st.one_of(st.none(), st.floats(-2.0, 2.0)))
    def test_matches_reference(self, seed, baseline):
        logprobs, rewards, mask = batch(seed)
        loss = reinforce_loss(logprobs, rewards, mask, baseline)
        b = 0.0 if baseline is None else baseline
        expected = -sum(
            (r - b) * row[m].sum() for r, row, m in zip(rewards.tolist(), logprobs, mask)
        ) / len(rewards)
        torch.testing.assert_close(loss, expected)

    def test_tensor_baselines_and_no_gradient_through_the_weight(self):
        logprobs, rewards, mask = batch(1)
        per_sample = torch.randn(5, dtype=torch.float64, requires_grad=True)
        loss = reinforce_loss(logprobs, rewards, mask.long(), per_sample)
        expected = -((rewards - per_sample.detach()) * (logprobs * mask).sum(1)).mean()
        torch.testing.assert_close(loss, expected)
        assert not loss.requires_grad  # only the baseline needed grad, and it is detached
        scalar = reinforce_loss(logprobs, rewards, mask, torch.tensor(0.5))
        torch.testing.assert_close(scalar, reinforce_loss(logprobs, rewards, mask, 0.5))

    def test_gradient_is_reward_weighted_score(self):
        logprobs, rewards, mask = batch(2)
        logprobs.requires_grad_(True)
        reinforce_loss(logprobs, rewards, mask).backward()
        torch.testing.assert_close(logprobs.grad, -rewards[:, None] * mask / len(rewards))

    def test_score_function_identity(self):
        # For a categorical p = softmax(theta), E[R] = p . R and its exact gradient is
        # p * (R - p . R); the REINFORCE gradient averaged over many samples must match it.
        gen = torch.Generator().manual_seed(0)
        theta = torch.randn(5, dtype=torch.float64, requires_grad=True)
        reward_table = torch.randn(5, dtype=torch.float64)
        exact = torch.autograd.grad((theta.softmax(-1) * reward_table).sum(), theta)[0]
        n = 100_000
        tokens = torch.multinomial(theta.detach().softmax(-1), n, replacement=True, generator=gen)
        logprobs = theta.log_softmax(-1)[tokens][:, None]  # (n, 1): one-token responses
        mask = torch.ones(n, 1)
        (estimate,) = torch.autograd.grad(
            -reinforce_loss(logprobs, reward_table[tokens], mask), theta
        )
        torch.testing.assert_close(estimate, exact, atol=0.02, rtol=0)

    def test_rejects_bad_inputs(self):
        lp, r, m = torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3)
        with pytest.raises(ValueError, match="logprobs"):
            reinforce_loss(torch.zeros(6), r, torch.ones(6))
        with pytest.raises(ValueError, match="rewards"):
            reinforce_loss(lp, torch.zeros(3), m)
        with pytest.raises(ValueError, match="rewards"):
            reinforce_loss(lp, [0.0, 1.0], m)
        with pytest.raises(ValueError, match="mask"):
            reinforce_loss(lp, r, torch.tensor([[0, 1, 1], [1, 1, 1]]))
        with pytest.raises(ValueError, match="baseline"):
            reinforce_loss(lp, r, m, torch.zeros(3))
        with pytest.raises(ValueError, match="baseline"):
            reinforce_loss(lp, r, m, "mean")
