"""Issue 12: what a learner might type wrongly gets a ValueError naming the argument.

Cross-cutting cases: the texts a reward model or the gold judge scores, devices, and the
inputs a PPO trainer checks when it is built or resumed. Module-specific cases live in the
test file of their module (tests/test_generation.py for prompts and sampling arguments).
"""

import pytest
import torch

from rlhf_edu.judge import GoldJudge, gold_score, gold_scores

BAD_TEXTS = [
    ([], r"^texts: expected a non-empty list of strings, got an empty list$"),
    ("a great film", r"^texts: expected a list of strings, got a single string 'a great film'$"),
    (["a great film", None], r"^texts\[1\]: expected a string, got NoneType None$"),
    ([3], r"^texts\[0\]: expected a string, got int 3$"),
    (None, r"^texts: expected a list of strings, got NoneType$"),
]


class TestTextsToScore:
    @pytest.mark.parametrize("texts, message", BAD_TEXTS)
    def test_reward_model(self, tiny, texts, message):
        with pytest.raises(ValueError, match=message):
            tiny.reward(texts)

    @pytest.mark.parametrize("texts, message", BAD_TEXTS)
    def test_reward_model_forward(self, tiny, texts, message):
        with pytest.raises(ValueError, match=message):
            tiny.reward.forward(texts)

    @pytest.mark.parametrize("texts, message", BAD_TEXTS)
    def test_gold_judge(self, texts, message):
        with pytest.raises(ValueError, match=message):
            GoldJudge()(texts)
        with pytest.raises(ValueError, match=message):
            gold_scores(texts)

    def test_gold_score_of_one_text(self):
        with pytest.raises(ValueError, match="^text: expected a string, got NoneType None$"):
            gold_score(None)

    def test_tuples_are_lists_too(self, tiny):
        texts = ("a great film", "a dull film")
        assert torch.equal(tiny.reward(texts), tiny.reward(list(texts)))
        assert torch.equal(GoldJudge()(texts), GoldJudge()(list(texts)))

    def test_empty_string_scores_as_the_bos_token(self, tiny):
        bos = tiny.reward.tokenizer.bos_token
        scores = tiny.reward(["", "a great film"])
        assert scores.shape == (2,) and torch.isfinite(scores).all()
        torch.testing.assert_close(scores[0], tiny.reward([bos])[0])
        assert tiny.reward([""]).shape == (1,)
        assert GoldJudge()([""]).tolist() == [0.0]

    def test_text_longer_than_the_context_is_truncated(self, tiny):
        assert tiny.reward.model.config.n_positions == 128
        assert tiny.reward.max_length == 128  # the preset asks for 256; the context has 128
        long = "the plot was good . " * 60
        assert len(tiny.reward.tokenizer(long)["input_ids"]) > 128
        ids = tiny.reward.encode([long])["input_ids"]
        assert ids.shape == (1, 128)
        assert torch.isfinite(tiny.reward([long])).all()

    @pytest.mark.parametrize("batch_size", [0, 2.5, None])
    def test_batch_size(self, tiny, batch_size):
        with pytest.raises(ValueError, match="^batch_size: expected an int >= 1"):
            tiny.reward(["a great film"], batch_size=batch_size)
