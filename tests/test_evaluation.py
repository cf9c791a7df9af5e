"""rlhf_edu.evaluation.distinct_n: the diversity measure of lessons 01 and 03."""

import pytest
import torch

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


def test_an_evaluation_mid_run_does_not_change_the_run(tiny):
    """evaluate_policy samples in its own random stream: a callback that evaluates leaves the
    training run as it was (lesson 08 scores its runs half-way and relies on it)."""
    from rlhf_edu.evaluation import evaluate_policy
    from rlhf_edu.trainer import PPOConfig, PPOTrainer

    def run(evaluate):
        cfg = PPOConfig(steps=2, batch_size=16, mini_batch_size=8, max_new_tokens=8, seed=5)
        tr = PPOTrainer(cfg, tiny.fresh_policy(), tiny.ref_policy, tiny.tokenizer, tiny.reward,
                        tiny.prompts)  # fmt: skip
        if evaluate:
            tr.callbacks.append(lambda t, m: evaluate_policy(t.policy, tiny, n_prompts=8, seed=7))
        tr.train(progress=False)
        return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in tr.history], tr

    (plain, a), (evaluated, b) = run(False), run(True)
    assert plain == evaluated
    assert all(torch.equal(x, y) for x, y in zip(a.policy.parameters(), b.policy.parameters()))
