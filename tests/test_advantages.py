"""Tests for rlhf_edu.advantages: masked statistics, whitening, GAE (lesson 06)."""

import types

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlhf_edu.advantages import gae, masked_aggregate, masked_mean, masked_sum, masked_var, whiten

SETTINGS = settings(max_examples=200, deadline=None)


def random_batch(seed, batch=4, length=7, min_len=1, dtype=torch.float64):
    """Return (x, y, mask, lengths): two random (B, T) tensors and a prefix-of-ones mask."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, generator=gen, dtype=dtype)
    y = torch.randn(batch, length, generator=gen, dtype=dtype)
    lengths = torch.randint(min_len, length + 1, (batch,), generator=gen)
    mask = torch.arange(length) < lengths[:, None]
    return x, y, mask, lengths


def gae_reference(rewards, values, length, gamma, lam):
    """GAE for one sequence as a plain Python loop over its first `length` tokens."""
    advantages = [0.0] * len(rewards)
    lastgaelam = 0.0
    for t in reversed(range(length)):
        next_value = values[t + 1] if t + 1 < length else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages[t] = lastgaelam
    returns = [a + v if t < length else 0.0 for t, (a, v) in enumerate(zip(advantages, values))]
    return advantages, returns


class TestMaskedSum:
    @SETTINGS
    @given(seed=st.integers(0, 2**31))
    def test_matches_sum_of_selected(self, seed):
        x, _, mask, _ = random_batch(seed)
        torch.testing.assert_close(masked_sum(x, mask), x[mask].sum())
        per_row = torch.stack([row[m].sum() for row, m in zip(x, mask)])
        torch.testing.assert_close(masked_sum(x, mask, dim=1), per_row)

    def test_ignores_garbage_on_padding(self):
        x = torch.tensor([[1.0, float("inf")], [2.0, float("nan")]])
        mask = torch.tensor([[1, 0], [1, 0]])
        assert masked_sum(x, mask).item() == 3.0

    def test_accepts_non_prefix_mask(self):
        x = torch.tensor([1.0, 2.0, 4.0])
        assert masked_sum(x, torch.tensor([0.0, 1.0, 1.0])).item() == 6.0

    def test_rejects_bad_inputs(self):
        x = torch.ones(2, 3)
        with pytest.raises(ValueError, match="x"):
            masked_sum([[1.0]], torch.ones(1, 1))
        with pytest.raises(ValueError, match="x"):
            masked_sum(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3))
        with pytest.raises(ValueError, match="mask"):
            masked_sum(x, torch.ones(2, 4))
        with pytest.raises(ValueError, match="mask"):
            masked_sum(x, torch.full((2, 3), 0.5))
        with pytest.raises(ValueError, match="mask"):
            masked_sum(x, [[1, 1, 1], [1, 1, 1]])


class TestMaskedMean:
    @SETTINGS
    @given(seed=st.integers(0, 2**31))
    def test_matches_torch_mean_of_selected(self, seed):
        x, _, mask, _ = random_batch(seed)
        for m in (mask, mask.float(), mask.long()):
            torch.testing.assert_close(masked_mean(x, m), torch.mean(x[mask]))
        per_row = torch.stack([row[m].mean() for row, m in zip(x, mask)])
        torch.testing.assert_close(masked_mean(x, mask, dim=1), per_row)

    def test_gradient_only_on_valid_positions(self):
        x = torch.randn(2, 3, requires_grad=True)
        mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
        masked_mean(x, mask).backward()
        torch.testing.assert_close(x.grad, mask.float() / 3)

    def test_rejects_empty_selection(self):
        with pytest.raises(ValueError, match="mask"):
            masked_mean(torch.ones(2, 3), torch.zeros(2, 3))
        with pytest.raises(ValueError, match="mask"):
            masked_mean(torch.ones(2, 3), torch.tensor([[1, 0, 0], [0, 0, 0]]), dim=1)

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="x"):
            masked_mean(torch.ones(0), torch.ones(0))
        with pytest.raises(ValueError, match="mask"):
            masked_mean(torch.ones(2, 3), torch.ones(3, 2))


class TestMaskedVar:
    @SETTINGS
    @given(seed=st.integers(0, 2**31))
    def test_matches_unbiased_torch_var_of_selected(self, seed):
        x, _, mask, _ = random_batch(seed)
        assume(mask.sum() >= 2)
        torch.testing.assert_close(masked_var(x, mask), torch.var(x[mask], unbiased=True))

    def test_needs_two_valid_positions(self):
        with pytest.raises(ValueError, match="mask"):
            masked_var(torch.ones(2, 3), torch.tensor([[1, 0, 0], [0, 0, 0]]))

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="x"):
            masked_var("x", torch.ones(2))
        with pytest.raises(ValueError, match="mask"):
            masked_var(torch.ones(2, 3), torch.full((2, 3), 2))


def aggregate_reference(x, lengths, aggregation, max_len):
    """The three aggregations as plain Python loops over responses and their valid tokens."""
    rows = [[x[b, t].item() for t in range(int(lengths[b]))] for b in range(len(lengths))]
    if aggregation == "token_mean":
        return sum(sum(r) for r in rows) / sum(len(r) for r in rows)
    if aggregation == "sequence_mean":
        return sum(sum(r) / len(r) for r in rows) / len(rows)
    return sum(sum(r) for r in rows) / (len(rows) * max_len)


class TestMaskedAggregate:
    @pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean", "constant"])
    @pytest.mark.parametrize("seed", range(5))
    def test_matches_plain_loop(self, seed, aggregation):
        x, _, mask, lengths = random_batch(seed, batch=5, length=6)
        x = torch.where(mask, x, torch.full_like(x, float("inf")))  # padding garbage
        got = masked_aggregate(x, mask, aggregation, max_len=8)
        assert got.item() == pytest.approx(aggregate_reference(x, lengths, aggregation, 8))

    def test_the_three_differ_on_unequal_lengths(self):
        x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [5.0, 0.0, 0.0, 0.0]])
        mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
        assert masked_aggregate(x, mask, "token_mean").item() == pytest.approx(9 / 5)
        assert masked_aggregate(x, mask, "sequence_mean").item() == pytest.approx(3.0)
        assert masked_aggregate(x, mask, "constant", max_len=4).item() == pytest.approx(9 / 8)

    def test_gradient_weights_per_token(self):
        x = torch.zeros(2, 4, requires_grad=True)
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
        (g,) = torch.autograd.grad(masked_aggregate(x, mask, "sequence_mean"), x)
        expected = torch.tensor([[1 / 8] * 4, [1 / 4, 1 / 4, 0, 0]])
        torch.testing.assert_close(g, expected)

    def test_rejects_bad_inputs(self):
        x, mask = torch.zeros(2, 3), torch.ones(2, 3)
        with pytest.raises(ValueError, match="aggregation"):
            masked_aggregate(x, mask, "mean")
        with pytest.raises(ValueError, match="max_len"):
            masked_aggregate(x, mask, "constant")
        with pytest.raises(ValueError, match="max_len"):
            masked_aggregate(x, mask, "constant", max_len=2)
        with pytest.raises(ValueError, match="mask"):
            masked_aggregate(x, torch.tensor([[1, 1, 1], [0, 0, 0]]), "sequence_mean")
        with pytest.raises(ValueError, match="x"):
            masked_aggregate(torch.zeros(3), torch.ones(3), "token_mean")


class TestWhiten:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), scale=st.floats(1e-2, 1e3), shift=st.floats(-1e3, 1e3))
    def test_mean_zero_variance_one(self, seed, scale, shift):
        x, _, mask, _ = random_batch(seed, min_len=2)
        x = shift + scale * x
        assume(torch.var(x[mask]) > 1e-4)
        w = whiten(x, mask)
        assert abs(masked_mean(w, mask).item()) < 1e-6
        assert abs(masked_var(w, mask).item() - 1.0) < 1e-4
        assert torch.all(w[~mask] == 0)

    @SETTINGS
    @given(seed=st.integers(0, 2**31))
    def test_without_shift_keeps_the_mean(self, seed):
        x, _, mask, _ = random_batch(seed, min_len=2)
        x = x + 3.0
        w = whiten(x, mask, shift_mean=False)
        torch.testing.assert_close(masked_mean(w, mask), masked_mean(x, mask))
        expected = (x - x[mask].mean()) / torch.sqrt(x[mask].var() + 1e-8) + x[mask].mean()
        torch.testing.assert_close(w[mask], expected[mask])

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="x"):
            whiten(None, torch.ones(2))
        with pytest.raises(ValueError, match="mask"):
            whiten(torch.ones(2, 3), torch.ones(2, 2))
        with pytest.raises(ValueError, match="mask"):
            whiten(torch.ones(2, 3), torch.tensor([[1, 0, 0], [0, 0, 0]]))


class TestGAE:
    @SETTINGS
    @given(
        seed=st.integers(0, 2**31),
        gamma=st.floats(0.0, 1.0),
        lam=st.floats(0.0, 1.0),
        length=st.integers(1, 12),
    )
    def test_matches_per_sequence_loop(self, seed, gamma, lam, length):
        rewards, values, mask, lengths = random_batch(seed, length=length, min_len=0)
        advantages, returns = gae(rewards, values, mask, gamma=gamma, lam=lam)
        for b in range(rewards.shape[0]):
            adv_ref, ret_ref = gae_reference(
                rewards[b].tolist(), values[b].tolist(), int(lengths[b]), gamma, lam
            )
            torch.testing.assert_close(advantages[b], torch.tensor(adv_ref, dtype=torch.float64))
            torch.testing.assert_close(returns[b], torch.tensor(ret_ref, dtype=torch.float64))

    @SETTINGS
    @given(seed=st.integers(0, 2**31))
    def test_gamma_lam_one_is_reward_to_go_minus_value(self, seed):
        rewards, values, mask, _ = random_batch(seed)
        advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
        rewards_to_go = (rewards * mask).flip(1).cumsum(1).flip(1)
        torch.testing.assert_close(advantages, (rewards_to_go - values) * mask)
        torch.testing.assert_close(returns, rewards_to_go * mask)

    def test_lam_zero_is_one_step_td_error(self):
        rewards = torch.tensor([[1.0, 2.0, 3.0]])
        values = torch.tensor([[0.5, 0.25, 4.0]])
        advantages, _ = gae(rewards, values, torch.tensor([[1, 1, 0]]), gamma=0.5, lam=0.0)
        # delta_0 = 1 + 0.5 * 0.25 - 0.5; delta_1 = 2 + 0.5 * 0 - 0.25 (episode ends, no bootstrap)
        torch.testing.assert_close(advantages, torch.tensor([[0.625, 1.75, 0.0]]))

    def test_no_gradient_and_garbage_padding_ignored(self):
        values = torch.tensor([[1.0, float("nan")]], requires_grad=True)
        rewards = torch.tensor([[2.0, float("inf")]])
        advantages, returns = gae(rewards, values, torch.tensor([[True, False]]))
        assert not advantages.requires_grad and not returns.requires_grad
        torch.testing.assert_close(advantages, torch.tensor([[1.0, 0.0]]))
        torch.testing.assert_close(returns, torch.tensor([[2.0, 0.0]]))

    def test_rejects_bad_inputs(self):
        r, v, m = torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3)
        with pytest.raises(ValueError, match="rewards"):
            gae(torch.ones(3), torch.ones(3), torch.ones(3))
        with pytest.raises(ValueError, match="values"):
            gae(r, torch.ones(2, 4), m)
        with pytest.raises(ValueError, match="values"):
            gae(r, v.numpy(), m)
        with pytest.raises(ValueError, match="mask"):
            gae(r, v, torch.tensor([[0, 1, 1], [1, 1, 1]]))
        with pytest.raises(ValueError, match="gamma"):
            gae(r, v, m, gamma=1.5)
        with pytest.raises(ValueError, match="lam"):
            gae(r, v, m, lam=-0.1)
        with pytest.raises(ValueError, match="lam"):
            gae(r, v, m, lam="high")


class TestAgreementWithTRL:
    """Whitening and GAE against trl==1.12.0 (trl.experimental.ppo), on identical inputs."""

    @pytest.mark.parametrize("seed", range(5))
    def test_masked_statistics(self, trl_ppo, seed):
        x, _, mask, _ = random_batch(seed, batch=6, length=9, min_len=2, dtype=torch.float32)
        # TRL's masked_* multiply by the mask, so they need a float mask.
        m = mask.float()
        torch.testing.assert_close(
            masked_mean(x, mask), trl_ppo.masked_mean(x, m), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            masked_mean(x, mask, dim=1), trl_ppo.masked_mean(x, m, axis=1), atol=1e-5, rtol=0
        )
        torch.testing.assert_close(masked_var(x, mask), trl_ppo.masked_var(x, m), atol=1e-5, rtol=0)
        for shift_mean in (True, False):
            # TRL leaves padding positions whitened and zero-fills them after the call; ours
            # zero-fills inside, so compare with TRL's whiten + masked_fill (as its trainer does).
            expected = trl_ppo.masked_whiten(x, m, shift_mean=shift_mean).masked_fill(~mask, 0)
            torch.testing.assert_close(
                whiten(x, mask, shift_mean=shift_mean), expected, atol=1e-5, rtol=0
            )

    @pytest.mark.parametrize("seed", range(5))
    @pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.8)])
    def test_advantages_and_returns(self, trl_ppo, seed, gamma, lam):
        gen = torch.Generator().manual_seed(seed)
        batch, gen_length = 6, 10
        # TRL's sequence_lengths is the index of the last response token (0 .. T-1).
        sequence_lengths = torch.randint(0, gen_length, (batch,), generator=gen)
        values = torch.randn(batch, gen_length, generator=gen)
        rewards = torch.randn(batch, gen_length, generator=gen)
        args = types.SimpleNamespace(gamma=gamma, lam=lam)
        masked_whiten = trl_ppo.masked_whiten

        # TRL's code, copied verbatim from trl 1.12.0 experimental/ppo/ppo_trainer.py lines 763-764,
        # 767-769 (765-766 fill log-probs, unused here; `responses` only supplies a shape).
        # fmt: off
        responses = torch.zeros(batch, gen_length, dtype=torch.long)
        response_idxs = torch.arange(responses.shape[1], device=responses.device).repeat(responses.shape[0], 1)
        padding_mask = response_idxs > sequence_lengths.unsqueeze(1)
        sequence_lengths_p1 = sequence_lengths + 1
        padding_mask_p1 = response_idxs > (sequence_lengths_p1.unsqueeze(1))
        values = torch.masked_fill(values, padding_mask_p1, 0)
        # fmt: on
        # TRL's rewards are 0 past padding_mask_p1 (the KL is 0 where both log-probs are
        # INVALID_LOGPROB).
        rewards = torch.masked_fill(rewards, padding_mask_p1, 0)

        # TRL's code, copied verbatim from trl 1.12.0 experimental/ppo/ppo_trainer.py lines 787-798
        # fmt: off
        lastgaelam = 0
        advantages_reversed = []
        gen_length = responses.shape[1]
        for t in reversed(range(gen_length)):
            nextvalues = values[:, t + 1] if t < gen_length - 1 else 0.0
            delta = rewards[:, t] + args.gamma * nextvalues - values[:, t]
            lastgaelam = delta + args.gamma * args.lam * lastgaelam
            advantages_reversed.append(lastgaelam)
        advantages = torch.stack(advantages_reversed[::-1], axis=1)
        returns = advantages + values
        advantages = masked_whiten(advantages, ~padding_mask)
        advantages = torch.masked_fill(advantages, padding_mask, 0)
        # fmt: on

        # TRL runs GAE over the padded length; its episode really ends at the first padding
        # position (padding_mask_p1: one step past the last response token, where the score sits),
        # so our mask for GAE is ~padding_mask_p1. It whitens over the response tokens only
        # (~padding_mask).
        our_advantages, our_returns = gae(rewards, values, ~padding_mask_p1, gamma=gamma, lam=lam)
        our_advantages = whiten(our_advantages, ~padding_mask)
        torch.testing.assert_close(our_returns, returns, atol=1e-5, rtol=0)
        torch.testing.assert_close(our_advantages, advantages, atol=1e-5, rtol=0)
