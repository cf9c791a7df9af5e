"""The verifiable reward of the tiny world and pass@k (rlhf_edu/verifiable.py)."""

import math

import pytest
import torch

from rlhf_edu import verifiable as V
from rlhf_edu.judge import gold_score


class TestCheckers:
    def test_negated_negatives_follow_the_judge(self):
        assert V.negated_negatives("the plot was not bad.") == ["bad"]
        assert V.negated_negatives("the ending was never very boring.") == ["boring"]
        assert V.negated_negatives("the plot was bad.") == []
        assert V.negated_negatives("not great, but the plot was bad.") == []  # clause break
        assert V.negated_negatives("bad. the music was bad.") == []  # a repeat is not a negation

    def test_verify_needs_both_parts(self):
        assert V.verify("the plot was not bad and the acting was great.")
        assert not V.verify("the acting was great.")  # positive, nothing negated
        text = "the plot was not bad, but the acting was awful and boring."
        assert V.negated_negatives(text) and gold_score(text) < 0 and not V.verify(text)

    def test_the_keyword_checker_has_a_loophole(self):
        text = "the plot was not good and the acting was awful."
        assert V.keyword_verify(text) and not V.verify(text)
        assert not V.keyword_verify("the acting was awful.")

    def test_as_reward(self):
        r = V.as_reward(V.verify)(["the plot was not bad.", "the plot was bad."])
        torch.testing.assert_close(r, torch.tensor([1.0, 0.0]))
        with pytest.raises(ValueError, match="texts"):
            V.as_reward(V.verify)("a single string")


class TestPassAtK:
    def brute(self, n, c, k):
        return 1 - math.comb(n - c, k) / math.comb(n, k)

    @pytest.mark.parametrize(
        "n,c,k", [(10, 0, 1), (10, 3, 1), (10, 3, 5), (10, 8, 5), (5, 5, 5), (20, 1, 10)]
    )
    def test_matches_the_binomial_formula(self, n, c, k):
        correct = torch.zeros(1, n)
        correct[0, :c] = 1
        assert V.pass_at_k(correct, k) == pytest.approx(self.brute(n, c, k))

    def test_pass_at_1_is_the_pass_rate_and_it_averages_over_prompts(self):
        correct = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0]])
        assert V.pass_at_k(correct, 1) == pytest.approx(0.5)
        assert V.pass_at_k(correct, 4) == pytest.approx(1.0)
        assert V.pass_at_k(correct.bool(), 2) == pytest.approx((0.5 + 1.0) / 2)

    @pytest.mark.parametrize(
        "correct,k,name",
        [
            (torch.ones(2, 3), 4, "k"),
            (torch.ones(2, 3), 0, "k"),
            (torch.ones(3), 1, "correct"),
            (torch.full((2, 2), 0.5), 1, "correct"),
            ([[1, 0]], 1, "correct"),
        ],
    )
    def test_bad_input_is_named(self, correct, k, name):
        with pytest.raises(ValueError, match=name):
            V.pass_at_k(correct, k)


def test_sample_verdicts_shape_and_seed(tiny):
    a = V.sample_verdicts(
        tiny.ref_policy, tiny.tokenizer, tiny.prompts[:3], 4, max_new_tokens=8, seed=1
    )
    b = V.sample_verdicts(
        tiny.ref_policy, tiny.tokenizer, tiny.prompts[:3], 4, max_new_tokens=8, seed=1
    )
    assert a.shape == (3, 4) and a.dtype == torch.bool and torch.equal(a, b)
