"""Tests for rlhf_edu.ppo: ratio, clipped surrogate, policy and value losses, entropy."""

import math
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.ppo import (
    clipped_surrogate,
    entropy_from_logits,
    entropy_from_logprobs,
    policy_loss,
    probability_ratio,
    value_loss,
)

SETTINGS = settings(max_examples=300, deadline=None)

ratios = st.floats(1e-3, 5.0)
nonzero_advantages = st.floats(-10.0, 10.0).filter(lambda a: abs(a) > 1e-6)
clip_epsilons = st.floats(0.01, 0.99)


def rollout(seed, batch=4, length=6, dtype=torch.float64):
    """Random log-probs, old log-probs, advantages and a prefix-of-ones mask, all (B, T)."""
    gen = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(batch, length, generator=gen, dtype=dtype) * 3
    old_logprobs = logprobs + 0.3 * torch.randn(batch, length, generator=gen, dtype=dtype)
    advantages = torch.randn(batch, length, generator=gen, dtype=dtype)
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    mask = torch.arange(length) < lengths[:, None]
    return logprobs, old_logprobs, advantages, mask


def surrogate_case_form(r, a, eps):
    """A >= 0: A * min(r, 1 + eps); A < 0: A * max(r, 1 - eps)."""
    return a * min(r, 1 + eps) if a >= 0 else a * max(r, 1 - eps)


class TestProbabilityRatio:
    @SETTINGS
    @given(seed=st.integers(0, 2**31))
    def test_is_exp_of_logprob_difference(self, seed):
        logprobs, old_logprobs, _, _ = rollout(seed)
        ratio = probability_ratio(logprobs, old_logprobs)
        torch.testing.assert_close(ratio, logprobs.exp() / old_logprobs.exp())
        assert torch.all(probability_ratio(logprobs, logprobs) == 1)

    def test_gradient_is_ratio(self):
        logprobs = torch.tensor([-1.0, -2.0], requires_grad=True)
        ratio = probability_ratio(logprobs, torch.tensor([-1.5, -1.0]))
        ratio.sum().backward()
        torch.testing.assert_close(logprobs.grad, ratio.detach())

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="old_logprobs"):
            probability_ratio(torch.zeros(2, 3), torch.zeros(2, 4))
        with pytest.raises(ValueError, match="old_logprobs"):
            probability_ratio(torch.zeros(2, 3), 0.0)
        with pytest.raises(ValueError, match="logprobs"):
            probability_ratio(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))


class TestClippedSurrogate:
    @SETTINGS
    @given(r=ratios, a=st.floats(-10.0, 10.0), eps=clip_epsilons)
    def test_matches_case_form(self, r, a, eps):
        out = clipped_surrogate(
            torch.tensor([r], dtype=torch.float64), torch.tensor([a], dtype=torch.float64), eps
        )
        assert out.item() == pytest.approx(surrogate_case_form(r, a, eps), rel=1e-12, abs=1e-12)

    @SETTINGS
    @given(r=ratios, a=nonzero_advantages, eps=clip_epsilons)
    def test_one_clip_bound_is_inert_per_sign(self, r, a, eps):
        ratio, adv = torch.tensor([r], dtype=torch.float64), torch.tensor([a], dtype=torch.float64)
        out = clipped_surrogate(ratio, adv, eps)
        if a > 0:  # dropping the lower bound 1 - eps changes nothing
            only_upper = torch.min(ratio * adv, torch.clamp(ratio, max=1 + eps) * adv)
            assert out.item() == only_upper.item()
        else:  # dropping the upper bound 1 + eps changes nothing
            only_lower = torch.min(ratio * adv, torch.clamp(ratio, min=1 - eps) * adv)
            assert out.item() == only_lower.item()

    @SETTINGS
    @given(
        r=st.lists(ratios, min_size=1, max_size=8),
        a=st.lists(nonzero_advantages, min_size=8, max_size=8),
        eps=clip_epsilons,
    )
    def test_gradient_is_zero_exactly_where_clip_is_taken(self, r, a, eps):
        ratio = torch.tensor(r, dtype=torch.float64, requires_grad=True)
        adv = torch.tensor(a[: len(r)], dtype=torch.float64)
        clipped_surrogate(ratio, adv, eps).sum().backward()
        # the clip is taken where the clipped term is strictly the smaller one
        clip_taken = torch.clamp(ratio, 1 - eps, 1 + eps) * adv < ratio * adv
        assert torch.equal(ratio.grad == 0, clip_taken)
        # mathematically: A > 0 and r > 1 + eps, or A < 0 and r < 1 - eps
        expected = ((adv > 0) & (ratio > 1 + eps)) | ((adv < 0) & (ratio < 1 - eps))
        assert torch.equal(clip_taken, expected)

    def test_rejects_bad_inputs(self):
        r, a = torch.ones(3), torch.ones(3)
        for eps in (0.0, 1.0, -0.1, 1.5, float("nan"), "0.2"):
            with pytest.raises(ValueError, match="clip_eps"):
                clipped_surrogate(r, a, eps)
        with pytest.raises(ValueError, match="advantages"):
            clipped_surrogate(r, torch.ones(4))
        with pytest.raises(ValueError, match="ratio"):
            clipped_surrogate([1.0], a)


class TestPolicyLoss:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), eps=clip_epsilons)
    def test_matches_reference(self, seed, eps):
        logprobs, old_logprobs, advantages, mask = rollout(seed)
        loss, stats = policy_loss(logprobs, old_logprobs, advantages, mask, clip_eps=eps)
        ratio = (logprobs - old_logprobs).exp()[mask]
        adv = advantages[mask]
        objective = torch.tensor(
            [surrogate_case_form(r, a, eps) for r, a in zip(ratio.tolist(), adv.tolist())],
            dtype=torch.float64,
        )
        torch.testing.assert_close(loss, -objective.mean())
        clipped = ((adv > 0) & (ratio > 1 + eps)) | ((adv < 0) & (ratio < 1 - eps))
        assert stats["clipfrac"] == pytest.approx(clipped.double().mean().item())
        logratio = (logprobs - old_logprobs)[mask]
        assert stats["approx_kl"] == pytest.approx(0.5 * (logratio**2).mean().item())
        assert stats["ratio_mean"] == pytest.approx(ratio.mean().item())

    def test_stats_are_floats_and_on_policy_values(self):
        logprobs, _, advantages, mask = rollout(0)
        logprobs.requires_grad_(True)
        loss, stats = policy_loss(logprobs, logprobs.detach(), advantages, mask.float())
        assert set(stats) >= {"clipfrac", "approx_kl", "ratio_mean"}
        assert all(type(v) is float for v in stats.values())
        assert stats == {"clipfrac": 0.0, "approx_kl": 0.0, "ratio_mean": 1.0}
        loss.backward()
        # on-policy, d loss / d logprob_t = -A_t / n_valid on valid tokens and 0 on padding
        torch.testing.assert_close(logprobs.grad, -advantages * mask / mask.sum())

    def test_padding_garbage_is_ignored(self):
        logprobs, old_logprobs, advantages, mask = rollout(1)
        clean, clean_stats = policy_loss(logprobs, old_logprobs, advantages, mask)
        dirty = logprobs.masked_fill(~mask, float("inf"))
        loss, stats = policy_loss(dirty, old_logprobs, advantages.masked_fill(~mask, 1e9), mask)
        assert loss.item() == clean.item() and stats == clean_stats

    def test_rejects_bad_inputs(self):
        lp, a, m = torch.zeros(2, 3), torch.ones(2, 3), torch.ones(2, 3)
        with pytest.raises(ValueError, match="old_logprobs"):
            policy_loss(lp, torch.zeros(2, 2), a, m)
        with pytest.raises(ValueError, match="advantages"):
            policy_loss(lp, lp, torch.ones(3, 2), m)
        with pytest.raises(ValueError, match="advantages"):
            policy_loss(lp, lp, None, m)
        with pytest.raises(ValueError, match="mask"):
            policy_loss(lp, lp, a, torch.ones(2))
        with pytest.raises(ValueError, match="mask"):
            policy_loss(lp, lp, a, torch.tensor([[1, 0, 1], [1, 1, 1]]))
        with pytest.raises(ValueError, match="mask"):
            policy_loss(lp, lp, a, 2 * m)
        with pytest.raises(ValueError, match="clip_eps"):
            policy_loss(lp, lp, a, m, clip_eps=1.0)


class TestValueLoss:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), clip_range=st.floats(0.01, 10.0))
    def test_matches_reference(self, seed, clip_range):
        gen = torch.Generator().manual_seed(seed)
        values, old_values, returns = torch.randn(3, 4, 6, generator=gen, dtype=torch.float64)
        mask = torch.arange(6) < torch.randint(1, 7, (4, 1), generator=gen)
        loss, stats = value_loss(values, old_values, returns, mask, clip_range=clip_range)
        errors = []
        clipped = []
        for v, v_old, ret in zip(
            values[mask].tolist(), old_values[mask].tolist(), returns[mask].tolist()
        ):
            v_clip = min(max(v, v_old - clip_range), v_old + clip_range)
            errors.append(max((v - ret) ** 2, (v_clip - ret) ** 2))
            clipped.append((v_clip - ret) ** 2 > (v - ret) ** 2)
        assert loss.item() == pytest.approx(0.5 * sum(errors) / len(errors), rel=1e-10)
        assert stats["vf_clipfrac"] == pytest.approx(sum(clipped) / len(clipped))

    def test_no_clipping_is_half_mse(self):
        values = torch.tensor([[1.0, 2.0, 5.0]], requires_grad=True)
        loss, stats = value_loss(
            values, values.detach(), torch.tensor([[0.0, 4.0, 0.0]]), torch.tensor([[1, 1, 0]]), 1.0
        )
        assert loss.item() == pytest.approx(0.5 * (1 + 4) / 2) and stats == {"vf_clipfrac": 0.0}
        loss.backward()
        torch.testing.assert_close(values.grad, torch.tensor([[0.5, -1.0, 0.0]]))

    def test_rejects_bad_inputs(self):
        v, m = torch.zeros(2, 3), torch.ones(2, 3)
        with pytest.raises(ValueError, match="old_values"):
            value_loss(v, torch.zeros(3, 2), v, m)
        with pytest.raises(ValueError, match="returns"):
            value_loss(v, v, torch.zeros(2, 4), m)
        with pytest.raises(ValueError, match="values"):
            value_loss(1.0, v, v, m)
        with pytest.raises(ValueError, match="mask"):
            value_loss(v, v, v, torch.tensor([[0, 1, 1], [1, 1, 1]]))
        for clip_range in (0.0, -1.0, float("inf")):
            with pytest.raises(ValueError, match="clip_range"):
                value_loss(v, v, v, m, clip_range=clip_range)


class TestEntropyFromLogits:
    @SETTINGS
    @given(seed=st.integers(0, 2**31), vocab=st.integers(1, 20))
    def test_matches_torch_categorical(self, seed, vocab):
        gen = torch.Generator().manual_seed(seed)
        logits = 3 * torch.randn(2, 5, vocab, generator=gen, dtype=torch.float64)
        expected = torch.distributions.Categorical(logits=logits).entropy()
        torch.testing.assert_close(entropy_from_logits(logits), expected)

    def test_uniform_and_banned_tokens(self):
        logits = torch.zeros(2, 3, 4)
        torch.testing.assert_close(entropy_from_logits(logits), torch.full((2, 3), math.log(4)))
        logits[..., :2] = float("-inf")  # two banned tokens: uniform over the other two
        torch.testing.assert_close(entropy_from_logits(logits), torch.full((2, 3), math.log(2)))

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="logits"):
            entropy_from_logits(torch.tensor(1.0))
        with pytest.raises(ValueError, match="logits"):
            entropy_from_logits([[0.0, 1.0]])

    def test_from_logprobs_is_the_same_computation(self):
        logits = 4 * torch.randn(3, 7, 50, generator=torch.Generator().manual_seed(0))
        logits[0, 0, :10] = float("-inf")
        logp = torch.log_softmax(logits, dim=-1)
        got = entropy_from_logprobs(logp)
        assert torch.equal(got, entropy_from_logits(logits))  # bit for bit: the trainer's path
        assert torch.isfinite(got).all()
        with pytest.raises(ValueError, match="logprobs"):
            entropy_from_logprobs(torch.tensor(1.0))
        with pytest.raises(ValueError, match="banned"):
            entropy_from_logprobs(logp, banned=torch.zeros(3, dtype=torch.bool))

    def test_a_row_of_banned_tokens_has_entropy_zero_not_nan(self):
        logits = torch.zeros(2, 4)
        logits[0] = float("-inf")  # log_softmax gives nan on this row; its terms are banned
        torch.testing.assert_close(entropy_from_logits(logits), torch.tensor([0.0, math.log(4)]))


class TestAgreementWithTRL:
    """Policy loss, value loss and entropy against trl==1.12.0 (trl.experimental.ppo)."""

    @pytest.mark.parametrize("seed", range(8))
    def test_losses_and_stats(self, trl_ppo, seed):
        gen = torch.Generator().manual_seed(seed)
        batch, length = 6, 9
        masked_mean, INVALID_LOGPROB = trl_ppo.masked_mean, trl_ppo.INVALID_LOGPROB
        args = types.SimpleNamespace(cliprange=0.2, cliprange_value=0.2)
        micro_batch_inds = torch.arange(batch)  # one micro-batch holding the whole batch
        # TRL's masks (True = padding): padding_mask past the last response token,
        # padding_mask_p1 one step later (see trl 1.12.0 ppo_trainer.py lines 763-768).
        sequence_lengths = torch.randint(0, length, (batch,), generator=gen)
        response_idxs = torch.arange(length).repeat(batch, 1)
        padding_mask = response_idxs > sequence_lengths.unsqueeze(1)
        padding_mask_p1 = response_idxs > (sequence_lengths + 1).unsqueeze(1)
        # Inputs filled on padding as TRL fills them (lines 765, 769, 824-828).
        old_logprobs = (-3 * torch.rand(batch, length, generator=gen)).masked_fill(
            padding_mask, INVALID_LOGPROB
        )
        new_logprobs = old_logprobs + 0.3 * torch.randn(batch, length, generator=gen)
        new_logprobs = new_logprobs.masked_fill(padding_mask, INVALID_LOGPROB).requires_grad_(True)
        advantages = torch.randn(batch, length, generator=gen).masked_fill(padding_mask, 0)
        old_values = torch.randn(batch, length, generator=gen).masked_fill(padding_mask_p1, 0)
        vpred = old_values + 0.3 * torch.randn(batch, length, generator=gen)
        vpred = vpred.masked_fill(padding_mask_p1, 0).requires_grad_(True)
        returns = torch.randn(batch, length, generator=gen).masked_fill(padding_mask_p1, 0)
        mb_logprobs, mb_advantage, mb_values, mb_return = (
            old_logprobs,
            advantages,
            old_values,
            returns,
        )

        # TRL's code, copied verbatim from trl 1.12.0 experimental/ppo/ppo_trainer.py lines 829-846
        # fmt: off
        vpredclipped = torch.clamp(
            vpred,
            mb_values - args.cliprange_value,
            mb_values + args.cliprange_value,
        )
        vf_losses1 = torch.square(vpred - mb_return)
        vf_losses2 = torch.square(vpredclipped - mb_return)
        vf_loss_max = torch.max(vf_losses1, vf_losses2)
        vf_loss = 0.5 * masked_mean(vf_loss_max, ~padding_mask_p1[micro_batch_inds])
        vf_clipfrac = masked_mean(
            (vf_losses2 > vf_losses1).float(), ~padding_mask_p1[micro_batch_inds]
        )
        logprobs_diff = new_logprobs - mb_logprobs
        ratio = torch.exp(logprobs_diff)
        pg_losses = -mb_advantage * ratio
        pg_losses2 = -mb_advantage * torch.clamp(ratio, 1.0 - args.cliprange, 1.0 + args.cliprange)
        pg_loss_max = torch.max(pg_losses, pg_losses2)
        pg_loss = masked_mean(pg_loss_max, ~padding_mask[micro_batch_inds])
        # ... and lines 852-854, 857 (inside torch.no_grad()), then ratio.mean() from line 868
        with torch.no_grad():
            pg_clipfrac = masked_mean(
                (pg_losses2 > pg_losses).float(), ~padding_mask[micro_batch_inds]
            )
            approxkl = 0.5 * (logprobs_diff**2).mean()
            ratio_mean = ratio.mean()
        # fmt: on

        ours_pg, pg_stats = policy_loss(
            new_logprobs, old_logprobs, advantages, ~padding_mask, clip_eps=0.2
        )
        ours_vf, vf_stats = value_loss(vpred, old_values, returns, ~padding_mask_p1, clip_range=0.2)
        close = {"atol": 1e-5, "rtol": 0}
        torch.testing.assert_close(ours_pg, pg_loss, **close)
        torch.testing.assert_close(ours_vf, vf_loss, **close)
        assert pg_stats["clipfrac"] == pytest.approx(pg_clipfrac.item(), abs=1e-5)
        assert vf_stats["vf_clipfrac"] == pytest.approx(vf_clipfrac.item(), abs=1e-5)
        # TRL averages approxkl and the ratio over all B*T positions, padding included (where the
        # log-prob difference is 0 and the ratio 1); ours average over valid tokens. Rescale.
        n_valid, n_all = (~padding_mask).sum().item(), padding_mask.numel()
        assert pg_stats["approx_kl"] * n_valid / n_all == pytest.approx(approxkl.item(), abs=1e-5)
        rescaled_ratio = (pg_stats["ratio_mean"] * n_valid + (n_all - n_valid)) / n_all
        assert rescaled_ratio == pytest.approx(ratio_mean.item(), abs=1e-5)

        # the gradients agree too
        trl_grads = torch.autograd.grad(pg_loss + vf_loss, (new_logprobs, vpred))
        our_grads = torch.autograd.grad(ours_pg + ours_vf, (new_logprobs, vpred))
        for ours, theirs in zip(our_grads, trl_grads):
            torch.testing.assert_close(ours, theirs, **close)

    def test_entropy(self, trl_ppo):
        from trl.trainer.utils import entropy_from_logits as trl_entropy_from_logits

        logits = 4 * torch.randn(3, 7, 50, generator=torch.Generator().manual_seed(0))
        prob_dist = torch.nn.functional.softmax(logits, dim=-1)
        # TRL's code, copied verbatim from trl 1.12.0 experimental/ppo/ppo_trainer.py line 856
        entropy = torch.logsumexp(logits, dim=-1) - torch.sum(prob_dist * logits, dim=-1)  # fmt: skip
        torch.testing.assert_close(entropy_from_logits(logits), entropy, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            entropy_from_logits(logits), trl_entropy_from_logits(logits), atol=1e-5, rtol=0
        )


class TestClipHigherAndSequenceRatio:
    """clip_eps_high (DAPO's clip-higher) and sequence_ratio (GSPO), lesson 10."""

    def test_clip_eps_high_none_is_the_symmetric_clip(self):
        r, a = torch.tensor([0.5, 0.9, 1.1, 1.5]), torch.tensor([1.0, -1.0, 1.0, -2.0])
        torch.testing.assert_close(clipped_surrogate(r, a, 0.2, None), clipped_surrogate(r, a, 0.2))

    def test_upper_range_moves_only_the_top(self):
        r = torch.tensor([1.25, 1.25, 0.7, 0.7])
        a = torch.tensor([1.0, -1.0, -1.0, 1.0])
        got = clipped_surrogate(r, a, 0.2, clip_eps_high=0.28)
        # r = 1.25, A > 0: inside 1 + 0.28, no clip (symmetric eps would give 1.2)
        # r = 0.7, A < 0: the lower range 1 - 0.2 is unchanged: min(-0.7, -0.8) = -0.8
        torch.testing.assert_close(got, torch.tensor([1.25, -1.25, -0.8, 0.7]))
        assert clipped_surrogate(r, a, 0.2)[0] == pytest.approx(1.2)

    @pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), "0.3"])
    def test_bad_clip_eps_high_is_named(self, bad):
        with pytest.raises(ValueError, match="clip_eps_high"):
            clipped_surrogate(torch.ones(2), torch.ones(2), 0.2, clip_eps_high=bad)

    def test_policy_loss_passes_clip_eps_high(self):
        logprobs, old, adv, mask = rollout(0)
        _, sym = policy_loss(logprobs, old, adv, mask, 0.1)
        _, wide = policy_loss(logprobs, old, adv, mask, 0.1, clip_eps_high=10.0)
        assert wide["clipfrac"] < sym["clipfrac"]

    def test_sequence_ratio_is_the_geometric_mean_of_the_token_ratios(self):
        from rlhf_edu.ppo import sequence_ratio

        logprobs, old, _, mask = rollout(1)
        got = sequence_ratio(logprobs, old, mask)
        for b in range(logprobs.shape[0]):
            n = int(mask[b].sum())
            token = probability_ratio(logprobs[b, :n], old[b, :n])
            expected = token.prod() ** (1 / n)
            torch.testing.assert_close(got[b, :n], expected.expand(n))
            assert torch.all(got[b, n:] == 1)

    def test_sequence_ratio_gradient_spreads_evenly(self):
        from rlhf_edu.ppo import sequence_ratio

        logprobs = torch.zeros(1, 4, requires_grad=True)
        mask = torch.tensor([[1, 1, 0, 0]])
        s = sequence_ratio(logprobs, torch.zeros(1, 4), mask)
        (g,) = torch.autograd.grad(s[0, 0], logprobs)  # d s / d logprob_t = s / |y| on valid t
        torch.testing.assert_close(g, torch.tensor([[0.5, 0.5, 0.0, 0.0]]))

    def test_sequence_ratio_checks_its_inputs(self):
        from rlhf_edu.ppo import sequence_ratio

        with pytest.raises(ValueError, match="mask"):
            sequence_ratio(
                torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([[1, 0, 0], [0, 0, 0]])
            )
        with pytest.raises(ValueError, match="old_logprobs"):
            sequence_ratio(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3))
