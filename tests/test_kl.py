"""Tests for rlhf_edu.kl: KL estimators, shaped rewards, beta controllers, KL-optimal policy."""

import math
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_edu.kl import (
    AdaptiveKLController,
    FixedKLController,
    kl_estimate,
    kl_optimal_policy,
    shaped_rewards,
)

SETTINGS = settings(max_examples=200, deadline=None)


def exact_kl(p_logits, q_logits):
    """KL(p || q) of two categoricals given by logits (last dim)."""
    logp, logq = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    return (logp.exp() * (logp - logq)).sum(-1)


def random_tokens(seed, batch=3, length=6, min_len=1):
    gen = torch.Generator().manual_seed(seed)
    logprobs = -3 * torch.rand(batch, length, generator=gen, dtype=torch.float64)
    ref_logprobs = -3 * torch.rand(batch, length, generator=gen, dtype=torch.float64)
    scores = torch.randn(batch, generator=gen, dtype=torch.float64)
    lengths = torch.randint(min_len, length + 1, (batch,), generator=gen)
    mask = torch.arange(length) < lengths[:, None]
    return scores, logprobs, ref_logprobs, mask, lengths


class TestKlEstimate:
    def test_formulas(self):
        logprobs, ref_logprobs = torch.tensor([-1.0, -0.5]), torch.tensor([-2.0, -0.25])
        logr = ref_logprobs - logprobs
        torch.testing.assert_close(kl_estimate(logprobs, ref_logprobs), -logr)
        torch.testing.assert_close(kl_estimate(logprobs, ref_logprobs, "k2"), logr**2 / 2)
        torch.testing.assert_close(kl_estimate(logprobs, ref_logprobs, "k3"), logr.exp() - 1 - logr)
        for kind in ("k1", "k2", "k3"):
            assert torch.all(kl_estimate(logprobs, logprobs, kind) == 0)

    @SETTINGS
    @given(
        logprob=st.floats(-50.0, 0.0),
        diff=st.one_of(st.floats(-20.0, 20.0), st.floats(-1e-12, 1e-12)),
        dtype=st.sampled_from([torch.float32, torch.float64]),
    )
    def test_k3_is_never_negative(self, logprob, diff, dtype):
        logprobs = torch.tensor([logprob], dtype=dtype)
        assert kl_estimate(logprobs, logprobs + diff, "k3").item() >= 0

    @pytest.mark.parametrize("seed", range(4))
    def test_k1_and_k3_are_unbiased(self, seed):
        gen = torch.Generator().manual_seed(seed)
        vocab, n = 8, 200_000
        p_logits = torch.randn(vocab, generator=gen, dtype=torch.float64)
        q_logits = torch.randn(vocab, generator=gen, dtype=torch.float64)
        tokens = torch.multinomial(p_logits.softmax(-1), n, replacement=True, generator=gen)
        logprobs, ref_logprobs = p_logits.log_softmax(-1)[tokens], q_logits.log_softmax(-1)[tokens]
        kl = exact_kl(p_logits, q_logits).item()
        for kind in ("k1", "k3"):
            samples = kl_estimate(logprobs, ref_logprobs, kind)
            standard_error = samples.std().item() / math.sqrt(n)
            assert abs(samples.mean().item() - kl) < 4 * standard_error, kind

    def test_k2_is_biased_far_from_the_reference(self):
        gen = torch.Generator().manual_seed(0)
        p_logits = torch.tensor([3.0, 0.0, 0.0, -3.0], dtype=torch.float64)
        q_logits = -p_logits
        tokens = torch.multinomial(p_logits.softmax(-1), 100_000, replacement=True, generator=gen)
        samples = kl_estimate(
            p_logits.log_softmax(-1)[tokens], q_logits.log_softmax(-1)[tokens], "k2"
        )
        standard_error = samples.std().item() / math.sqrt(len(tokens))
        assert (
            abs(samples.mean().item() - exact_kl(p_logits, q_logits).item()) > 10 * standard_error
        )

    @pytest.mark.parametrize("seed", range(3))
    def test_expected_gradients_as_a_loss_and_in_the_reward(self, seed):
        """Exact sums over a categorical: the gradient claims of kl_estimate's docstring."""
        gen = torch.Generator().manual_seed(seed)
        theta = torch.randn(6, generator=gen, dtype=torch.float64)
        log_ref = torch.randn(6, generator=gen, dtype=torch.float64).log_softmax(-1)

        def grad(f):
            th = theta.clone().requires_grad_(True)
            return torch.autograd.grad(f(th), th)[0]

        def as_loss(kind):  # E_pi[grad k(x)], x held fixed
            return grad(
                lambda th: (
                    th.softmax(-1).detach() * kl_estimate(th.log_softmax(-1), log_ref, kind)
                ).sum()
            )

        def in_reward(kind):  # E_pi[k(x) grad log pi(x)]
            return grad(
                lambda th: (
                    th.softmax(-1).detach()
                    * kl_estimate(th.log_softmax(-1), log_ref, kind).detach()
                    * th.log_softmax(-1)
                ).sum()
            )

        forward = grad(lambda th: exact_kl(th, log_ref))  # KL(pi || pi_ref)
        reverse = grad(lambda th: exact_kl(log_ref, th))  # KL(pi_ref || pi)
        assert (forward - reverse).abs().max() > 1e-3  # the two directions differ here
        torch.testing.assert_close(
            as_loss("k1"), torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0
        )
        torch.testing.assert_close(as_loss("k2"), forward, atol=1e-12, rtol=0)
        torch.testing.assert_close(as_loss("k3"), reverse, atol=1e-12, rtol=0)
        torch.testing.assert_close(in_reward("k1"), forward, atol=1e-12, rtol=0)

    def test_rejects_bad_inputs(self):
        lp = torch.zeros(2, 3)
        with pytest.raises(ValueError, match="kind"):
            kl_estimate(lp, lp, "k4")
        with pytest.raises(ValueError, match="ref_logprobs"):
            kl_estimate(lp, torch.zeros(3, 2))
        with pytest.raises(ValueError, match="logprobs"):
            kl_estimate([0.0], lp)


class TestShapedRewards:
    @SETTINGS
    @given(
        seed=st.integers(0, 2**31),
        beta=st.floats(0.0, 2.0),
        kind=st.sampled_from(["k1", "k2", "k3"]),
    )
    def test_matches_per_row_reference(self, seed, beta, kind):
        scores, logprobs, ref_logprobs, mask, lengths = random_tokens(seed)
        rewards = shaped_rewards(scores, logprobs, ref_logprobs, mask, beta, kind)
        kl = kl_estimate(logprobs, ref_logprobs, kind)
        for b, length in enumerate(lengths.tolist()):
            expected = torch.zeros(logprobs.shape[1], dtype=torch.float64)
            expected[:length] = -beta * kl[b, :length]
            expected[length - 1] += scores[b]
            torch.testing.assert_close(rewards[b], expected)

    def test_sum_is_score_minus_beta_times_sequence_kl(self):
        scores, logprobs, ref_logprobs, mask, _ = random_tokens(3)
        logprobs.requires_grad_(True)
        rewards = shaped_rewards(scores, logprobs, ref_logprobs, mask.float(), beta=0.1)
        assert not rewards.requires_grad
        sequence_kl = ((logprobs - ref_logprobs) * mask).sum(1)
        torch.testing.assert_close(rewards.sum(1), scores - 0.1 * sequence_kl.detach())

    def test_rejects_bad_inputs(self):
        scores, lp, m = torch.zeros(2), torch.zeros(2, 3), torch.ones(2, 3)
        with pytest.raises(ValueError, match="scores"):
            shaped_rewards(torch.zeros(3), lp, lp, m, 0.1)
        with pytest.raises(ValueError, match="scores"):
            shaped_rewards(torch.zeros(2, 1), lp, lp, m, 0.1)
        with pytest.raises(ValueError, match="logprobs"):
            shaped_rewards(scores, torch.zeros(6), lp, m, 0.1)
        with pytest.raises(ValueError, match="ref_logprobs"):
            shaped_rewards(scores, lp, torch.zeros(2, 4), m, 0.1)
        with pytest.raises(ValueError, match="mask"):
            shaped_rewards(scores, lp, lp, torch.tensor([[1, 1, 0], [0, 1, 1]]), 0.1)
        with pytest.raises(ValueError, match="mask"):
            shaped_rewards(scores, lp, lp, torch.tensor([[1, 1, 0], [0, 0, 0]]), 0.1)
        with pytest.raises(ValueError, match="beta"):
            shaped_rewards(scores, lp, lp, m, -0.1)
        with pytest.raises(ValueError, match="kind"):
            shaped_rewards(scores, lp, lp, m, 0.1, kind="exact")

    @pytest.mark.parametrize("kl_estimator", ["k1", "k3"])
    @pytest.mark.parametrize("seed", range(4))
    def test_agrees_with_trl(self, trl_ppo, seed, kl_estimator):
        """Against trl==1.12.0 (trl.experimental.ppo), on identical inputs."""
        INVALID_LOGPROB = trl_ppo.INVALID_LOGPROB

        gen = torch.Generator().manual_seed(seed)
        batch, length = 6, 9
        responses = torch.zeros(
            batch, length, dtype=torch.long
        )  # only its shape and device are used
        # TRL's sequence_lengths is the index of the last response token (0 .. T-1).
        sequence_lengths = torch.randint(0, length, (batch,), generator=gen)
        logprobs = -3 * torch.rand(batch, length, generator=gen)
        ref_logprobs = -3 * torch.rand(batch, length, generator=gen)
        values = torch.randn(batch, length, generator=gen)
        scores = torch.randn(batch, generator=gen)
        args = types.SimpleNamespace(kl_coef=0.05, kl_estimator=kl_estimator)

        # TRL's code, copied verbatim from trl 1.12.0 experimental/ppo/ppo_trainer.py lines 763-779
        # fmt: off
        response_idxs = torch.arange(responses.shape[1], device=responses.device).repeat(responses.shape[0], 1)
        padding_mask = response_idxs > sequence_lengths.unsqueeze(1)
        logprobs = torch.masked_fill(logprobs, padding_mask, INVALID_LOGPROB)
        ref_logprobs = torch.masked_fill(ref_logprobs, padding_mask, INVALID_LOGPROB)
        sequence_lengths_p1 = sequence_lengths + 1
        padding_mask_p1 = response_idxs > (sequence_lengths_p1.unsqueeze(1))
        values = torch.masked_fill(values, padding_mask_p1, 0)

        # 4. compute rewards
        # Formula used by http://joschu.net/blog/kl-approx.html for the k1 and k3 estimators
        logr = ref_logprobs - logprobs
        kl = -logr if args.kl_estimator == "k1" else (logr.exp() - 1) - logr  # Else statement is k3
        non_score_reward = -args.kl_coef * kl
        rewards = non_score_reward.clone()
        actual_start = torch.arange(rewards.size(0), device=rewards.device)
        actual_end = torch.where(sequence_lengths_p1 < rewards.size(1), sequence_lengths_p1, sequence_lengths)
        rewards[actual_start, actual_end] += scores
        # fmt: on

        # TRL puts the score one step past the last response token (on the first padding
        # position, where both log-probs are INVALID_LOGPROB so the KL is 0), or on the last token
        # when the response fills the row. That is our convention with the mask ~padding_mask_p1.
        ours = shaped_rewards(
            scores, logprobs, ref_logprobs, ~padding_mask_p1, args.kl_coef, kl_estimator
        )
        torch.testing.assert_close(ours, rewards, atol=1e-5, rtol=0)


class TestAdaptiveKLController:
    def test_update_formula(self):
        controller = AdaptiveKLController(init_beta=0.1, target=6.0, horizon=10_000)
        new_beta = controller.update(current_kl=6.6, n_steps=256)  # error = 6.6 / 6 - 1 = 0.1
        assert new_beta == controller.beta == pytest.approx(0.1 * (1 + 0.1 * 256 / 10_000))
        # n_steps may be any integer type (e.g. numpy's, from a dataloader)
        assert controller.update(6.6, np.int64(256)) == pytest.approx(new_beta * (1 + 0.1 * 0.0256))

    @pytest.mark.parametrize(("current_kl", "error"), [(100.0, 0.2), (0.0, -0.2), (-3.0, -0.2)])
    def test_error_is_clipped(self, current_kl, error):
        controller = AdaptiveKLController(0.2, target=1.0, horizon=100)
        controller.update(torch.tensor(current_kl), n_steps=10)
        assert controller.beta == pytest.approx(0.2 * (1 + error * 10 / 100))

    @SETTINGS
    @given(current_kl=st.floats(0.0, 50.0), n_steps=st.integers(1, 1000))
    def test_beta_moves_toward_the_target(self, current_kl, n_steps):
        controller = AdaptiveKLController(0.1, target=5.0, horizon=10_000)
        controller.update(current_kl, n_steps)
        if current_kl > 5.0:
            assert controller.beta > 0.1
        elif current_kl < 5.0:
            assert controller.beta < 0.1
        else:
            assert controller.beta == 0.1

    def test_state_round_trip(self):
        controller = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
        controller.update(20.0, 512)
        state = controller.state_dict()
        restored = AdaptiveKLController(1.0, target=1.0, horizon=1.0)
        restored.load_state_dict(state)
        assert restored.state_dict() == state
        assert restored.update(3.0, 64) == controller.update(3.0, 64)

    def test_rejects_bad_inputs(self):
        for name, kwargs in [
            ("init_beta", {"init_beta": 0.0, "target": 1.0, "horizon": 1.0}),
            ("target", {"init_beta": 0.1, "target": -1.0, "horizon": 1.0}),
            ("horizon", {"init_beta": 0.1, "target": 1.0, "horizon": 0}),
        ]:
            with pytest.raises(ValueError, match=name):
                AdaptiveKLController(**kwargs)
        controller = AdaptiveKLController(0.1, 1.0, 1.0)
        with pytest.raises(ValueError, match="current_kl"):
            controller.update(float("nan"), 1)
        with pytest.raises(ValueError, match="n_steps"):
            controller.update(1.0, 0)
        with pytest.raises(ValueError, match="state"):
            controller.load_state_dict({"beta": 0.1})
        with pytest.raises(ValueError, match="beta"):
            controller.load_state_dict({"beta": -1.0, "target": 1.0, "horizon": 1.0})
        assert controller.state_dict() == {"beta": 0.1, "target": 1.0, "horizon": 1.0}


class TestFixedKLController:
    def test_update_keeps_beta_and_state_round_trips(self):
        controller = FixedKLController(0.05)
        assert controller.update(100.0, 64) == 0.05 == controller.beta
        restored = FixedKLController(1.0)
        restored.load_state_dict(controller.state_dict())
        assert restored.beta == 0.05 and restored.state_dict() == {"beta": 0.05}
        assert FixedKLController(0).beta == 0.0

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="beta"):
            FixedKLController(-0.1)
        controller = FixedKLController(0.1)
        with pytest.raises(ValueError, match="current_kl"):
            controller.update("big", 1)
        with pytest.raises(ValueError, match="n_steps"):
            controller.update(1.0, 2.5)
        with pytest.raises(ValueError, match="state"):
            controller.load_state_dict(None)


def objective(pi, ref_probs, rewards, beta):
    """E_pi[R] - beta * KL(pi || pi_ref), the quantity the KL-optimal policy maximises."""
    log_ratio = torch.where(pi > 0, pi.log() - ref_probs.log(), torch.zeros_like(pi))
    return (pi * rewards).sum(-1) - beta * (pi * log_ratio).sum(-1)


class TestKlOptimalPolicy:
    def test_formula(self):
        ref_probs = torch.tensor([0.5, 0.25, 0.25, 0.0])
        rewards = torch.tensor([0.0, 1.0, 2.0, 5.0])
        unnormalised = ref_probs * torch.exp(rewards / 0.5)
        torch.testing.assert_close(
            kl_optimal_policy(ref_probs, rewards, 0.5), unnormalised / unnormalised.sum()
        )

    def test_stable_for_large_reward_over_beta(self):
        pi = kl_optimal_policy(
            torch.tensor([[0.5, 0.5]]), torch.tensor([[1000.0, 999.0]]), beta=0.01
        )
        assert torch.all(torch.isfinite(pi)) and pi[0, 0].item() == pytest.approx(1.0)

    @SETTINGS
    @given(seed=st.integers(0, 2**31), beta=st.floats(0.01, 10.0), vocab=st.integers(2, 10))
    def test_beats_random_alternatives(self, seed, beta, vocab):
        gen = torch.Generator().manual_seed(seed)
        ref_probs = torch.randn(vocab, generator=gen, dtype=torch.float64).softmax(-1)
        rewards = torch.randn(vocab, generator=gen, dtype=torch.float64)
        pi_star = kl_optimal_policy(ref_probs, rewards, beta)
        torch.testing.assert_close(pi_star.sum(), torch.tensor(1.0, dtype=torch.float64))
        alternatives = (2 * torch.randn(32, vocab, generator=gen, dtype=torch.float64)).softmax(-1)
        alternatives = torch.cat(
            [alternatives, ref_probs[None], torch.eye(vocab, dtype=torch.float64)]
        )
        best = objective(pi_star, ref_probs, rewards, beta)
        # the optimum equals beta * log Z
        log_z = torch.logsumexp(ref_probs.log() + rewards / beta, -1)
        torch.testing.assert_close(best, beta * log_z)
        assert torch.all(objective(alternatives, ref_probs, rewards, beta) <= best + 1e-9)

    def test_rejects_bad_inputs(self):
        p, r = torch.full((3,), 1 / 3), torch.zeros(3)
        for beta in (0.0, -1.0):
            with pytest.raises(ValueError, match="beta"):
                kl_optimal_policy(p, r, beta)
        with pytest.raises(ValueError, match="ref_probs"):
            kl_optimal_policy(torch.tensor([1.5, -0.5, 0.0]), r, 1.0)
        with pytest.raises(ValueError, match="rewards"):
            kl_optimal_policy(p, torch.zeros(4), 1.0)
        with pytest.raises(ValueError, match="ref_probs"):
            kl_optimal_policy([0.5, 0.5], r, 1.0)
