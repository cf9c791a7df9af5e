"""DPO on the tiny preset (rlhf_edu/dpo.py): pairs, sequence log-probs, the training loop."""

import math

import pytest
import torch

from rlhf_edu import dpo
from rlhf_edu.generation import response_logprobs


@pytest.fixture(scope="module")
def roll(tiny):
    return dpo.sample_pairs(tiny.ref_policy, tiny.tokenizer, tiny.prompts[:8], max_new_tokens=8)


class TestSamplePairs:
    def test_two_responses_per_prompt(self, tiny, roll):
        assert len(roll) == 16
        for i, prompt in enumerate(tiny.prompts[:8]):
            assert roll.prompts[2 * i] == roll.prompts[2 * i + 1] == prompt

    def test_bad_prompts(self, tiny):
        with pytest.raises(ValueError, match="prompts"):
            dpo.sample_pairs(tiny.ref_policy, tiny.tokenizer, "one string")


class TestPairsFromScores:
    def test_higher_score_is_chosen_and_ties_dropped(self, roll):
        scores = torch.tensor([1.0, 2.0, 5.0, 3.0, 0.5, 0.5] + [0.0, 1.0] * 5)
        pairs = dpo.pairs_from_scores(roll, scores)
        assert len(pairs) == 7  # the tie (pair 2) is dropped
        assert pairs.chosen.responses[0] == roll.responses[1]
        assert pairs.rejected.responses[0] == roll.responses[0]
        assert pairs.chosen.responses[1] == roll.responses[2]
        assert pairs.rejected.responses[1] == roll.responses[3]
        assert pairs.chosen.prompts == pairs.rejected.prompts

    def test_bad_scores(self, roll):
        with pytest.raises(ValueError, match="scores"):
            dpo.pairs_from_scores(roll, torch.zeros(3))
        with pytest.raises(ValueError, match="scores"):
            dpo.pairs_from_scores(roll, torch.full((16,), math.nan))


class TestPairsFromBradleyTerry:
    def test_first_wins_with_probability_sigmoid_of_the_difference(self, roll):
        diffs = torch.tensor([0.0, 1.0, -2.0, 0.5, 3.0, -0.5, 0.0, 1.5])
        scores = torch.stack([diffs, torch.zeros(8)], 1).flatten()  # row 2i - row 2i+1 = diffs[i]
        wins = torch.zeros(8)
        n = 400
        for seed in range(n):
            pairs = dpo.pairs_from_bradley_terry(roll, scores, seed=seed)
            assert len(pairs) == 8  # no pair dropped, not even the ties
            assert pairs.chosen.prompts == pairs.rejected.prompts
            wins += torch.tensor(
                [c == roll.responses[2 * i] for i, c in enumerate(pairs.chosen.responses)]
            ).float()
        # pairs of two distinct responses (else "who won" cannot be read off the text);
        # 4 standard errors of a frequency out of 400 draws: at most 0.1
        distinct = [i for i in range(8) if roll.responses[2 * i] != roll.responses[2 * i + 1]]
        assert len(distinct) >= 5
        torch.testing.assert_close(
            (wins / n)[distinct], torch.sigmoid(diffs)[distinct], atol=0.1, rtol=0
        )

    def test_large_differences_give_the_hard_labels(self, roll):
        scores = torch.tensor([1.0, 2.0, 5.0, 3.0, 0.7, 0.5] + [0.0, 1.0] * 5) * 100
        soft = dpo.pairs_from_bradley_terry(roll, scores, seed=1)
        hard = dpo.pairs_from_scores(roll, scores)
        assert soft.chosen.responses == hard.chosen.responses

    def test_seeded(self, roll):
        scores = torch.zeros(16)
        a = dpo.pairs_from_bradley_terry(roll, scores, seed=5).chosen.responses
        assert a == dpo.pairs_from_bradley_terry(roll, scores, seed=5).chosen.responses

    def test_bad_scores(self, roll):
        with pytest.raises(ValueError, match="scores"):
            dpo.pairs_from_bradley_terry(roll, torch.zeros(3))
        with pytest.raises(ValueError, match="scores"):
            dpo.pairs_from_bradley_terry(roll, torch.full((16,), math.inf))


def test_sequence_logprobs_sum_the_masked_token_logprobs(tiny, roll):
    seq = dpo.sequence_logprobs(tiny.ref_policy, roll)
    assert seq.shape == (16,)
    torch.testing.assert_close(seq, response_logprobs(tiny.ref_policy, roll).sum(1))
    # the sampling model's own log-probs, summed over the mask
    torch.testing.assert_close(seq, (roll.logprobs * roll.mask).sum(1), atol=1e-4, rtol=0)


class TestDPOConfig:
    @pytest.mark.parametrize(
        "kw, name",
        [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": 0}, "lr"),
         ({"beta": -1}, "beta"), ({"beta": math.inf}, "beta")],
    )  # fmt: skip
    def test_bad_values_name_the_field(self, kw, name):
        with pytest.raises(ValueError, match=name):
            dpo.DPOConfig(**kw)


class TestTrainDPO:
    def test_starts_at_log2_and_learns_the_pairs(self, tiny, roll):
        pairs = dpo.pairs_from_scores(roll, tiny.reward(roll.texts))
        seen = []
        history = dpo.train_dpo(
            dpo.DPOConfig(epochs=6, batch_size=4, lr=1e-3, beta=0.5),
            tiny.fresh_policy(),
            tiny.ref_policy,
            pairs,
            callbacks=[lambda policy, m: seen.append(m["epoch"])],
            progress=False,
        )
        assert seen == [1, 2, 3, 4, 5, 6]  # once per epoch
        assert len(history) == 6 * 2
        assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy = reference
        assert history[-1]["pairs"] == 6 * len(pairs)
        assert history[-1]["loss"] < 0.5 and history[-1]["rewards/margins"] > 0
        assert history[-1]["rewards/accuracies"] == 1.0

    def test_reference_is_not_trained(self, tiny, roll):
        pairs = dpo.pairs_from_scores(roll, tiny.reward(roll.texts))
        before = [q.clone() for q in tiny.ref_policy.parameters()]
        dpo.train_dpo(dpo.DPOConfig(epochs=1, batch_size=8), tiny.fresh_policy(), tiny.ref_policy,
                      pairs, progress=False)  # fmt: skip
        assert all(torch.equal(a, b) for a, b in zip(before, tiny.ref_policy.parameters()))

    def test_nan_loss_names_the_step(self, tiny, roll):
        pairs = dpo.pairs_from_scores(roll, tiny.reward(roll.texts))
        policy = tiny.fresh_policy()
        with torch.no_grad():
            policy.lm_head.weight.fill_(math.nan)
        with pytest.raises(FloatingPointError, match="step 1: DPO loss"):
            dpo.train_dpo(dpo.DPOConfig(), policy, tiny.ref_policy, pairs, progress=False)

    def test_bad_arguments(self, tiny, roll):
        pairs = dpo.pairs_from_scores(roll, tiny.reward(roll.texts))
        with pytest.raises(ValueError, match="config"):
            dpo.train_dpo({"epochs": 1}, tiny.fresh_policy(), tiny.ref_policy, pairs)
        with pytest.raises(ValueError, match="pairs"):
            dpo.train_dpo(dpo.DPOConfig(), tiny.fresh_policy(), tiny.ref_policy, [])
