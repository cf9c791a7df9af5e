"""rlhf_edu.evaluation.distinct_n: the diversity measure of lessons 01 and 03."""

import pytest

from rlhf_edu.evaluation import distinct_n


def test_counts_distinct_word_ngrams_over_the_batch():
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)  # (a b) twice
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["the the the the"], 2) == pytest.approx(1 / 3)
    assert distinct_n(["one two", "three four"], 2) == 1.0  # no n-gram crosses two texts


def test_no_ngram_gives_zero():
    assert distinct_n(["short"], 2) == 0.0


@pytest.mark.parametrize(
    ("texts", "n", "name"),
    [
        ("a single string", 2, "texts"),
        ([], 2, "texts"),
        (["a", None], 2, "texts"),
        (["a b"], 0, "n"),
    ],
)
def test_bad_input_names_the_argument(texts, n, name):
    with pytest.raises(ValueError, match=name):
        distinct_n(texts, n)
