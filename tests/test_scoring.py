import numpy as np
import pytest
import torch

from rlhf_edu.scoring import RewardModel, check_scores


class TestRewardModel:
    def test_one_score_per_text(self, tiny):
        scores = tiny.reward(["a great film", "a dull film", "the plot"], batch_size=2)
        assert scores.shape == (3,) and scores.dtype == torch.float32
        torch.testing.assert_close(scores, tiny.reward(["a great film", "a dull film", "the plot"]))

    @pytest.mark.parametrize("label", [1, -1, True, "0"])
    def test_label_out_of_range(self, tiny, label):
        with pytest.raises(ValueError, match=r"^label: expected an index in \[0, 1\)"):
            RewardModel(tiny.reward.model, tiny.reward.tokenizer, label=label)

    @pytest.mark.parametrize("max_length", [0, 1.5])
    def test_max_length(self, tiny, max_length):
        with pytest.raises(ValueError, match="^max_length: expected an int >= 1"):
            RewardModel(tiny.reward.model, tiny.reward.tokenizer, max_length=max_length)


class TestCheckScores:
    @pytest.mark.parametrize(
        "scores",
        [torch.tensor([1.0, 2.0]), [1.0, 2], (0.5, -1.0), np.array([1.0, 2.0]), [True, False]],
    )
    def test_one_number_per_text_passes(self, scores):
        out = check_scores(scores, 2)
        assert out.shape == (2,) and out.dtype == torch.float32

    def test_nan_passes_through_for_the_trainer_to_stop_on(self):
        assert torch.isnan(check_scores([float("nan"), 1.0], 2)[0])

    @pytest.mark.parametrize(
        "scores, got",
        [
            (["good", "bad"], "a list of 2 items of type str, first 'good'"),
            ("good", "str 'good'"),
            (torch.zeros(2, 1), r"a tensor of shape \(2, 1\) and dtype torch.float32"),
            (torch.zeros(3), r"a tensor of shape \(3,\) and dtype torch.float32"),
            (torch.tensor(1.0), r"a tensor of shape \(\) and dtype torch.float32"),
            ([1.0], "a list of 1 items of type float, first 1.0"),
            ([1.0, None], "a list of 2 items of type NoneType/float, first 1.0"),
            (None, "NoneType None"),
            ({"a": 1.0, "b": 2.0}, r"dict \{'a': 1.0, 'b': 2.0\}"),
            (np.array(["a", "b"]), "ndarray"),
        ],
    )
    def test_anything_else_names_reward_fn_and_what_it_returned(self, scores, got):
        expected = (
            r"^reward_fn: expected one number per text, a \(2,\) tensor or a list of 2 "
            rf"numbers; got {got}"
        )
        with pytest.raises(ValueError, match=expected):
            check_scores(scores, 2)

    def test_step_and_name(self):
        with pytest.raises(ValueError, match=r"^step 3: gold_fn: expected one number per text"):
            check_scores(["x"], 1, name="gold_fn", step=3)
