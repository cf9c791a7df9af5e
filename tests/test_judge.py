import math

import pytest
import torch

from rlhf_edu.corpus import generate_reviews
from rlhf_edu.judge import SCALE, GoldJudge, contributions, gold_score, gold_scores
from rlhf_edu.lexicon import INTENSIFIERS, VALENCE


def total(text):
    return sum(v for _, v in contributions(text))


class TestRules:
    def test_lexicon_valence(self):
        assert total("the plot was good.") == pytest.approx(VALENCE["good"])
        assert total("the plot was dull.") == pytest.approx(VALENCE["dull"])
        assert total("it is set in paris.") == 0

    def test_intensifiers_multiply(self):
        assert total("very good") == pytest.approx(INTENSIFIERS["very"] * VALENCE["good"])
        assert total("a bit good") == pytest.approx(INTENSIFIERS["a bit"] * VALENCE["good"])
        assert total("really very good") == pytest.approx(1.4 * 1.5 * VALENCE["good"])
        # An intensifier in another clause does not reach the word.
        assert total("very, good") == pytest.approx(VALENCE["good"])

    def test_negation_flips_and_halves(self):
        assert total("not bad") == pytest.approx(-0.5 * VALENCE["bad"])
        assert total("not very good") == pytest.approx(-0.5 * 1.5 * VALENCE["good"])
        assert gold_score("the plot was not bad.") > 0 > gold_score("the plot was not good.")
        # Negation stops at a clause break.
        assert total("not the plot, but good") == pytest.approx(VALENCE["good"])

    def test_repeats_subtract(self):
        assert total("good. good.") == pytest.approx(0.0)
        assert total("great. great. great.") == pytest.approx(-VALENCE["great"])
        assert (
            gold_score("the acting was brilliant. the plot was brilliant. the cast was brilliant.")
            < 0
        )

    def test_squash_and_range(self):
        assert gold_score("very good") == pytest.approx(math.tanh(1.5 * 0.6 / SCALE))
        for r in generate_reviews(500, seed=9):
            assert -1 <= gold_score(r) <= 1

    def test_deterministic(self):
        r = generate_reviews(20, seed=2)
        assert gold_scores(r) == gold_scores(r)


class TestGoldJudge:
    def test_returns_tensor(self):
        s = GoldJudge()(["good", "bad"])
        assert isinstance(s, torch.Tensor) and s.shape == (2,) and s[0] > 0 > s[1]

    def test_rejects_single_string(self):
        with pytest.raises(ValueError, match="texts"):
            gold_scores("good")
