import statistics

import pytest

from rlhf_edu import corpus
from rlhf_edu.judge import gold_scores, words
from rlhf_edu.lexicon import INTENSIFIERS, NEGATIVE, NEGATORS, POSITIVE, VALENCE


@pytest.fixture(scope="module")
def reviews():
    return corpus.generate_reviews(20_000, seed=0)


class TestGenerateReviews:
    def test_size_and_vocabulary(self, reviews):
        assert len(reviews) == 20_000
        assert len(corpus.vocabulary(reviews)) >= 300

    def test_reproducible_from_seed(self):
        assert corpus.generate_reviews(50, seed=3) == corpus.generate_reviews(50, seed=3)
        assert corpus.generate_reviews(50, seed=3) != corpus.generate_reviews(50, seed=4)

    def test_balanced_with_real_spread(self, reviews):
        g = gold_scores(reviews)
        assert abs(statistics.mean(g)) < 0.05
        assert statistics.stdev(g) > 0.3

    def test_has_intensifiers_negation_mixed_sentiment_and_filler(self, reviews):
        toks = [words(r) for r in reviews[:2000]]
        assert sum(any(w in NEGATORS for w in t) for t in toks) > 200
        assert (
            sum(any(w in INTENSIFIERS for w in t) or "a bit" in r for t, r in zip(toks, reviews))
            > 500
        )
        mixed = sum(any(w in POSITIVE for w in t) and any(w in NEGATIVE for w in t) for t in toks)
        assert mixed > 400
        assert (
            sum("it runs" in r or "is set in" in r or "i watched it" in r for r in reviews) > 1000
        )
        assert statistics.mean(r.count(".") for r in reviews[:2000]) > 2

    def test_never_repeats_a_sentiment_word(self, reviews):
        for r in reviews[:5000]:
            sentiment = [w for w in words(r) if w in VALENCE]
            assert len(sentiment) == len(set(sentiment)), r

    def test_rejects_bad_n(self):
        with pytest.raises(ValueError, match="n"):
            corpus.generate_reviews(0)


class TestMakePrompts:
    def test_prompts_are_review_prefixes_of_2_to_4_words(self, reviews):
        prompts = corpus.make_prompts(reviews[:100], seed=1)
        for p, r in zip(prompts, reviews):
            assert r.startswith(p) and 2 <= len(p.split()) <= 4
