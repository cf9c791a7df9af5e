"""Tests for rlhf_edu.why_rl: best-of-N, rejection-sampling fine-tuning, REINFORCE (lesson 03).

The training loops run on the shipped tiny preset with tiny budgets (a few prompts, two
rounds): they check the bookkeeping and the direction of the updates, not the learning curve
(the notebook asserts that).
"""

import itertools
import math

import pytest
import torch

from rlhf_edu import why_rl
from rlhf_edu.reinforce import reinforce_loss

PROMPTS = ["this movie", "the plot", "the acting", "i think"]


def params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def padded_batch(seed=0, size=6, length=5):
    gen = torch.Generator().manual_seed(seed)
    logprobs = -3 * torch.rand(size, length, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, length + 1, (size,), generator=gen)
    mask = (torch.arange(length) < lengths[:, None]).long()
    return logprobs, mask


class TestKLBestOfN:
    def test_values(self):
        assert why_rl.kl_best_of_n(1) == 0.0
        assert why_rl.kl_best_of_n(2) == pytest.approx(math.log(2) - 0.5)
        values = [why_rl.kl_best_of_n(n) for n in range(1, 65)]
        assert all(b > a for a, b in itertools.pairwise(values))
        assert values[-1] < math.log(64)

    @pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4"])
    def test_rejects(self, bad):
        with pytest.raises(ValueError, match="n:"):
            why_rl.kl_best_of_n(bad)

    @staticmethod
    def exact_kl(q, n):
        # best of n draws from q (outcomes sorted by distinct rewards): F_i^n - F_{i-1}^n
        F = q.cumsum(0).clamp(max=1.0)
        p = F**n - torch.cat([F.new_zeros(1), F[:-1]]) ** n
        return (p * (p / q).log()).nansum().item()

    @pytest.mark.parametrize("n", [2, 4, 16])
    def test_upper_bound_strict_with_atoms(self, n):
        q = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=torch.float64)
        assert self.exact_kl(q, n) < why_rl.kl_best_of_n(n) - 0.05

    @pytest.mark.parametrize("n", [2, 4, 16])
    def test_tight_when_every_outcome_is_unlikely(self, n):
        q = torch.full((100_000,), 1e-5, dtype=torch.float64)
        exact = self.exact_kl(q, n)
        assert exact <= why_rl.kl_best_of_n(n)
        assert exact == pytest.approx(why_rl.kl_best_of_n(n), abs=2e-3)


class TestSequenceKL:
    def test_masked_sum_of_log_ratios(self):
        logprobs, mask = padded_batch(1)
        ref = logprobs - torch.rand_like(logprobs)
        ref[mask == 0] = float("inf")  # padding garbage must not leak in
        expected = torch.stack([(lp - r)[m.bool()].sum() for lp, r, m in zip(logprobs, ref, mask)])
        torch.testing.assert_close(why_rl.sequence_kl(logprobs, ref, mask), expected)
        assert torch.all(why_rl.sequence_kl(logprobs, logprobs, mask) == 0)


class TestRFTLoss:
    def test_token_mean_cross_entropy(self):
        logprobs, mask = padded_batch(2)
        garbage = logprobs.masked_fill(mask == 0, -100.0)
        expected = -logprobs[mask.bool()].mean()
        torch.testing.assert_close(why_rl.rft_loss(garbage, mask), expected)

    def test_gradient_is_reinforce_with_an_indicator_reward(self):
        # the identity the lesson shows: fine-tuning on the kept responses is REINFORCE with
        # R = 1[kept] and no baseline, up to the positive factor B / (number of kept tokens)
        logprobs, mask = padded_batch(3, size=8)
        rewards = torch.randn(8, dtype=torch.float64)
        keep = why_rl.top_k_indicator(rewards, 0.25).to(torch.float64)
        rows = keep.bool()
        lp = logprobs.clone().requires_grad_(True)
        (g_rl,) = torch.autograd.grad(reinforce_loss(lp, keep, mask), lp)
        (g_ft,) = torch.autograd.grad(why_rl.rft_loss(lp[rows], mask[rows]), lp)
        n_tokens = mask[rows].sum()
        torch.testing.assert_close(g_ft, g_rl * 8 / n_tokens)


class TestTopKIndicator:
    def test_keeps_the_highest(self):
        r = torch.tensor([0.1, 3.0, -1.0, 2.0, 0.5])
        torch.testing.assert_close(why_rl.top_k_indicator(r, 0.4), torch.tensor([0.0, 1, 0, 1, 0]))
        assert why_rl.top_k_indicator(r, 0.01).sum() == 1  # k = ceil(f * B) >= 1
        assert why_rl.top_k_indicator(r, 1.0).sum() == 5

    def test_rejects(self):
        with pytest.raises(ValueError, match="keep_fraction"):
            why_rl.top_k_indicator(torch.zeros(3), 0.0)
        with pytest.raises(ValueError, match="rewards"):
            why_rl.top_k_indicator(torch.zeros(3, 2), 0.5)


class TestBestOfN:
    def test_history(self, tiny):
        before = params(tiny.policy)
        options = {"gold_fn": tiny.gold, "max_new_tokens": 8, "progress": False}
        h = why_rl.best_of_n(tiny.policy, tiny.tokenizer, PROMPTS, tiny.reward, 3, **options)
        assert [d["n"] for d in h] == [1, 2, 3]
        assert [d["samples"] for d in h] == [4, 8, 12]
        rewards = [d["reward"] for d in h]
        assert rewards[0] <= rewards[1] <= rewards[2]  # a max over more draws never drops
        assert [d["kl"] for d in h] == [why_rl.kl_best_of_n(n) for n in (1, 2, 3)]
        # the kept texts are the ones scored
        assert tiny.reward(h[-1]["texts"]).mean().item() == pytest.approx(rewards[-1], abs=1e-4)
        assert tiny.gold(h[-1]["texts"]).mean().item() == pytest.approx(h[-1]["gold"], abs=1e-6)
        assert torch.equal(params(tiny.policy), before)  # no training

    def test_responses_are_the_kept_texts_without_their_prompts(self, tiny):
        options = {"max_new_tokens": 8, "progress": False}
        h = why_rl.best_of_n(tiny.policy, tiny.tokenizer, PROMPTS, tiny.reward, 3, **options)
        for point in h:
            assert all(t.endswith(r) for t, r in zip(point["texts"], point["responses"]))

    def test_rejects_bad_arguments(self, tiny):
        with pytest.raises(ValueError, match="n:"):
            why_rl.best_of_n(tiny.policy, tiny.tokenizer, PROMPTS, tiny.reward, 0)
        with pytest.raises(ValueError, match="prompts"):
            why_rl.best_of_n(tiny.policy, tiny.tokenizer, [], tiny.reward, 2)


class TestTrainingLoops:
    @pytest.mark.parametrize("method", ["rft", "reinforce", "ppo"])
    def test_history_and_updates(self, tiny, method):
        policy = tiny.fresh_policy()
        before = params(policy)
        h = run(method, tiny, policy)
        assert [d["round"] for d in h] == [0, 1, 2]
        assert [d["samples"] for d in h] == [4, 8, 12]
        assert abs(h[0]["kl"]) < 1e-3  # round 0 samples the reference itself
        assert all(math.isfinite(d["loss"]) for d in h[:-1]) and h[-1]["loss"] is None
        assert all(-1 <= d["gold"] <= 1 and len(d["texts"]) == 4 for d in h)
        assert not torch.equal(params(policy), before)
        assert not policy.training  # dropout off for RL

    def test_reinforce_constant_reward_does_not_move_the_policy(self, tiny):
        # R - mean(R) = 0 for every response: a zero gradient, and Adam's step is then 0
        policy = tiny.fresh_policy()
        before = params(policy)
        run("reinforce", tiny, policy, reward_fn=lambda texts: torch.ones(len(texts)))
        assert torch.equal(params(policy), before)

    def test_reinforce_step_raises_the_log_prob_of_the_rewarded_response(self, tiny):
        # one response rewarded 1, the others 0: R - mean(R) > 0 for it only, so one small
        # step raises its log-prob and the weighted objective sum_b (R_b - b) log p(y_b)
        policy = tiny.fresh_policy()
        run("reinforce", tiny, policy, rounds=1, reward_fn=first_only, lr=1e-4)
        # round 0 sampled the reference (same weights) with seed 0: draw that batch again
        rollout = why_rl.generation.sample(tiny.ref_policy, tiny.tokenizer, PROMPTS, 8, seed=0)
        with torch.no_grad():
            before = why_rl.generation.response_logprobs(tiny.ref_policy, rollout).sum(1)
            after = why_rl.generation.response_logprobs(policy, rollout).sum(1)
        weights = first_only(PROMPTS) - 0.25
        assert after[0] > before[0]
        assert (weights * after).sum() > (weights * before).sum()

    def test_nan_reward_names_the_step(self, tiny):
        with pytest.raises(FloatingPointError, match="step 0: reward_fn"):
            run(
                "rft",
                tiny,
                tiny.fresh_policy(),
                reward_fn=lambda t: torch.full((len(t),), math.nan),
            )

    def test_nan_loss_names_the_step(self, tiny, monkeypatch):
        calls = []

        def nan_after_first(*args, **kwargs):
            calls.append(1)
            loss = reinforce_loss(*args, **kwargs)
            return loss * math.nan if len(calls) > 1 else loss

        monkeypatch.setattr(why_rl, "reinforce_loss", nan_after_first)
        with pytest.raises(FloatingPointError, match="step 1: the loss"):
            run("reinforce", tiny, tiny.fresh_policy())

    def test_rejects_bad_arguments(self, tiny):
        with pytest.raises(ValueError, match="prompts"):
            run("rft", tiny, tiny.fresh_policy(), prompts="this movie")
        with pytest.raises(ValueError, match="rounds"):
            run("reinforce", tiny, tiny.fresh_policy(), rounds=-1)
        with pytest.raises(ValueError, match="keep_fraction"):
            run("rft", tiny, tiny.fresh_policy(), keep_fraction=1.5)
        with pytest.raises(ValueError, match="epochs"):
            run("rft", tiny, tiny.fresh_policy(), epochs=0)
        with pytest.raises(ValueError, match="lr"):
            run("reinforce", tiny, tiny.fresh_policy(), lr=-1e-3)
        with pytest.raises(ValueError, match="batch_size"):
            run("reinforce", tiny, tiny.fresh_policy(), batch_size=0)
        with pytest.raises(ValueError, match="reward_fn"):
            run("rft", tiny, tiny.fresh_policy(), reward_fn=lambda t: torch.zeros(len(t), 2))


def first_only(texts):
    return torch.tensor([1.0] + [0.0] * (len(texts) - 1))


def run(method, tiny, policy, rounds=2, reward_fn=None, prompts=PROMPTS, **kwargs):
    """A tiny budget: 4 prompts, 8 new tokens, ``rounds`` updates."""
    fn = {
        "rft": why_rl.rejection_sampling_finetune,
        "reinforce": why_rl.reinforce_train,
        "ppo": why_rl.ppo_train,
    }[method]
    options = {"batch_size": 4, "gold_fn": tiny.gold, "max_new_tokens": 8, "progress": False}
    if method == "ppo":
        options["mini_batch_size"] = 2
    options.update(kwargs)
    return fn(
        policy,
        tiny.ref_policy,
        tiny.tokenizer,
        prompts,
        reward_fn or tiny.reward,
        rounds,
        **options,
    )


class TestOfflinePseudoLabels:
    """offline=True: the same loop, trained on batches the starting policy drew up front."""

    def runs(self, tiny, rounds=2):
        options = {"batch_size": 4, "lr": 1e-3, "max_new_tokens": 8, "progress": False, "seed": 3}
        return [
            why_rl.rejection_sampling_finetune(
                tiny.fresh_policy(), tiny.ref_policy, tiny.tokenizer, PROMPTS, tiny.reward,
                rounds, offline=offline, **options,
            )
            for offline in (False, True)
        ]  # fmt: skip

    def test_same_first_update_and_measurements(self, tiny):
        iterated, offline = self.runs(tiny)
        assert [d["method"] for d in offline] == ["offline RFT"] * 3
        assert [d["method"] for d in iterated] == ["RFT"] * 3
        # round 0's batch comes from the starting policy either way: the same first update
        assert offline[0]["texts"] == iterated[0]["texts"]
        assert offline[0]["loss"] == pytest.approx(iterated[0]["loss"], abs=1e-6)
        assert offline[1]["texts"] == iterated[1]["texts"]  # measured on the same updated policy

    def test_trains_on_what_the_starting_policy_draws(self, tiny, monkeypatch):
        from rlhf_edu import generation

        seen = []  # the rewards each update ranks, iterated run first, then offline
        real = why_rl.top_k_indicator
        monkeypatch.setattr(
            why_rl, "top_k_indicator", lambda r, f: seen.append(r.clone()) or real(r, f)
        )
        self.runs(tiny)
        iterated, offline = seen[:2], seen[2:]
        for r in range(2):  # round r: the starting policy's batch r (seed 3 + r), scored
            start = generation.sample(tiny.ref_policy, tiny.tokenizer, PROMPTS, 8, seed=3 + r)
            torch.testing.assert_close(offline[r], tiny.reward(start.texts).float())
        torch.testing.assert_close(iterated[0], offline[0])  # both start from the same batch
        assert not torch.allclose(iterated[1], offline[1])  # then the iterated run re-samples

    def test_rejects_a_non_bool(self, tiny):
        with pytest.raises(ValueError, match="offline"):
            why_rl.rejection_sampling_finetune(
                tiny.fresh_policy(), tiny.ref_policy, tiny.tokenizer, PROMPTS, tiny.reward, 1,
                offline="yes",
            )  # fmt: skip


DRAW_OPTIONS = {"max_new_tokens": 8, "progress": False, "seed": 5}


class TestStartDraws:
    """start_draws: the starting policy's batches drawn once and handed to every method."""

    def draws(self, tiny, n=3, **kwargs):
        options = {**DRAW_OPTIONS, "gold_fn": tiny.gold, **kwargs}
        return why_rl.start_draws(tiny.policy, tiny.tokenizer, PROMPTS, tiny.reward, n, **options)

    def test_best_of_n_from_draws_is_best_of_n(self, tiny):
        options = {**DRAW_OPTIONS, "gold_fn": tiny.gold}
        args = (tiny.policy, tiny.tokenizer, PROMPTS, tiny.reward, 3)
        fresh = why_rl.best_of_n(*args, **options)
        reused = why_rl.best_of_n(*args, draws=self.draws(tiny), **options)
        assert [(h["reward"], h["gold"], h["texts"]) for h in fresh] == [
            (h["reward"], h["gold"], h["texts"]) for h in reused
        ]

    @pytest.mark.parametrize("method", ["rft", "offline", "reinforce", "ppo"])
    def test_a_run_from_draws_is_the_same_run(self, tiny, method):
        kwargs = {"seed": 5, "lr": 1e-3}
        name = method
        if method == "offline":
            name, kwargs["offline"] = "rft", True
        fresh = run(name, tiny, tiny.fresh_policy(), **kwargs)
        reused = run(
            name, tiny, tiny.fresh_policy(), draws=self.draws(tiny, batch_size=4), **kwargs
        )
        keys = ("reward", "gold", "kl", "texts", "loss")
        assert [[h[k] for k in keys] for h in fresh] == [[h[k] for k in keys] for h in reused]

    def test_draws_are_checked(self, tiny):
        draws = self.draws(tiny, batch_size=4)
        with pytest.raises(ValueError, match=r"draws: expected a list of at least 2"):
            run("rft", tiny, tiny.fresh_policy(), offline=True, seed=5, draws=draws[:1])
        with pytest.raises(ValueError, match=r"draws\[0\]: drawn with seed 5"):
            run("reinforce", tiny, tiny.fresh_policy(), seed=6, draws=draws)
        with pytest.raises(ValueError, match=r"draws\[0\]: drawn with seed 5 for other prompts"):
            run("reinforce", tiny, tiny.fresh_policy(), seed=5, batch_size=2, draws=draws)
        with pytest.raises(ValueError, match=r"draws\[1\]: expected a Draw"):
            run("rft", tiny, tiny.fresh_policy(), offline=True, seed=5, draws=[draws[0], "x"])
        no_gold = self.draws(tiny, batch_size=4, gold_fn=None)
        with pytest.raises(ValueError, match=r"draws\[0\]: has no gold scores"):
            run("reinforce", tiny, tiny.fresh_policy(), seed=5, draws=no_gold)
        with pytest.raises(ValueError, match="draws: expected a list"):
            why_rl.best_of_n(tiny.policy, tiny.tokenizer, PROMPTS, tiny.reward, 2, draws="x")


class TestPPOStepOnAGivenBatch:
    def test_the_given_batch_is_the_one_trained_on(self, tiny):
        from rlhf_edu.trainer import PPOConfig, PPOTrainer

        config = PPOConfig(steps=1, batch_size=4, mini_batch_size=2, max_new_tokens=8)
        trainer = PPOTrainer(
            config, tiny.fresh_policy(), tiny.ref_policy, tiny.tokenizer, tiny.reward, PROMPTS
        )
        roll = why_rl.generation.sample(trainer.policy, tiny.tokenizer, PROMPTS, 8, seed=9)
        m = trainer.ppo_step(roll)
        assert trainer.last_rollout is roll
        assert m["objective/scores"] == pytest.approx(
            tiny.reward(roll.texts).mean().item(), abs=1e-5
        )
        with pytest.raises(ValueError, match="roll: expected a generation.Rollout"):
            trainer.ppo_step(roll.texts)
