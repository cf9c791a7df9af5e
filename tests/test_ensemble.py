"""Reward-model ensembles (rlhf_edu/ensemble.py)."""

import pytest
import torch

from rlhf_edu.ensemble import RewardEnsemble, train_reward_models
from rlhf_edu.preferences import Pairs


class Table:
    """A stand-in reward model: a fixed score per text."""

    def __init__(self, scores):
        self.scores = scores

    def __call__(self, texts):
        return torch.tensor([self.scores[t] for t in texts])


REF = ["a", "b", "c"]


def test_mean_minus_k_std_on_standardised_scores():
    m1 = Table({"a": 0.0, "b": 1.0, "c": 2.0, "x": 3.0})
    m2 = Table({"a": 10.0, "b": 12.0, "c": 14.0, "x": 10.0})  # other offset and scale
    ens = RewardEnsemble([m1, m2], REF, k=1.0)
    z = ens.standardised(["x"])  # m1: (3 - 1) / 1 = 2; m2: (10 - 12) / 2 = -1
    torch.testing.assert_close(z, torch.tensor([[2.0], [-1.0]]))
    expected = z.mean(0) - z.std(0)
    torch.testing.assert_close(ens(["x"]), expected)
    # where the members agree (after standardising) the penalty is 0
    torch.testing.assert_close(ens(["b"]), torch.tensor([0.0]))
    assert RewardEnsemble([m1, m2], REF, k=0.0)(["x"]).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    "args,name",
    [
        (([Table({"a": 0.0})], REF), "members"),
        (([Table({"a": 0.0}), Table({"a": 1.0})], REF, -1.0), "k"),
        (([Table({"a": 0.0}), Table({"a": 1.0})], "a"), "reference_texts"),
    ],
)
def test_bad_input_is_named(args, name):
    with pytest.raises(ValueError, match=name):
        RewardEnsemble(*args)


def test_train_reward_models_differ_by_seed(tiny):
    pairs = Pairs(["the plot was great."] * 8, ["the plot was awful."] * 8)
    members = train_reward_models(
        tiny.ref_policy, tiny.tokenizer, pairs, seeds=[0, 1], epochs=1, batch_size=8, progress=False
    )
    texts = ["the plot was great.", "the plot was awful."]
    s0, s1 = members[0](texts), members[1](texts)
    assert not torch.allclose(s0, s1)
    assert s0[0] > s0[1] and s1[0] > s1[1]  # both learned the one preference
    with pytest.raises(ValueError, match="pairs"):
        train_reward_models(tiny.ref_policy, tiny.tokenizer, Pairs(["a"], ["b"]), seeds=[0])
