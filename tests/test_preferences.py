import pytest
import torch

from rlhf_edu.corpus import generate_reviews
from rlhf_edu.judge import gold_scores
from rlhf_edu.preferences import Pairs, evaluate_pairs, label_pairs, train_reward_model
from rlhf_edu.scoring import RewardModel


class TestLabelPairs:
    def test_noiseless_annotator_picks_higher_gold(self):
        p = label_pairs(["a", "b"], ["c", "d"], [0.5, -0.2], [0.1, 0.3], tau=0)
        assert p.chosen == ["a", "d"] and p.rejected == ["c", "b"]

    def test_noisy_annotator_agrees_with_bradley_terry(self):
        n = 4000
        p = label_pairs(["a"] * n, ["b"] * n, [0.1] * n, [0.0] * n, tau=0.1, seed=1)
        frac = p.chosen.count("a") / n
        expected = float(torch.sigmoid(torch.tensor(1.0)))
        assert abs(frac - expected) < 3 * (expected * (1 - expected) / n) ** 0.5

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="tau"):
            label_pairs(["a"], ["b"], [0], [1], tau=-1)
        with pytest.raises(ValueError, match="texts_a"):
            label_pairs(["a"], ["b", "c"], [0], [1])
        with pytest.raises(ValueError, match="n_test"):
            Pairs(["a"], ["b"]).split(1)


class TestTrainRewardModel:
    def test_learns_held_out_preferences(self, tiny):
        """A fresh one-logit head on the tiny policy learns gold-ordered corpus pairs."""
        from rlhf_edu.build_tiny import reward_model_from_policy

        torch.manual_seed(0)
        reviews = generate_reviews(3600, seed=7)
        a, b = reviews[:1800], reviews[1800:]
        pairs = label_pairs(a, b, gold_scores(a), gold_scores(b), tau=0)
        train, test = pairs.split(200)
        rm = RewardModel(reward_model_from_policy(tiny.policy, tiny.tokenizer), tiny.tokenizer)
        before = evaluate_pairs(rm, test)
        losses = train_reward_model(rm, train, epochs=1, lr=1e-3, batch_size=8, progress=False)
        after = evaluate_pairs(rm, test)
        assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20
        assert after > 0.65 and after > before + 0.1


class TestShippedRewardModel:
    """Recompute the claims about the shipped proxy: good, imperfect, and hackable."""

    def test_accuracy_and_spearman_on_fresh_policy_samples(self, tiny):
        from scipy.stats import spearmanr

        from rlhf_edu.build_tiny import sample_texts

        a = sample_texts(tiny.policy, tiny.tokenizer, tiny.prompts, seed=101)
        b = sample_texts(tiny.policy, tiny.tokenizer, tiny.prompts, seed=202)
        ga, gb = gold_scores(a), gold_scores(b)
        clean = label_pairs(a, b, ga, gb, tau=0)
        acc = evaluate_pairs(tiny.reward, clean)
        assert 0.70 <= acc <= 0.95
        rho = spearmanr(tiny.reward(a).tolist(), ga).statistic
        assert rho >= 0.6

    def test_blind_spot_repetition(self, tiny):
        once = "the acting was extremely brilliant."
        thrice = "the acting was extremely brilliant. the plot was extremely brilliant. the cast was extremely brilliant."
        r = tiny.reward([once, thrice])
        g = tiny.gold([once, thrice])
        assert r[1] > r[0] and g[1] < g[0]


def test_reward_model_rejects_bad_label(tiny):
    with pytest.raises(ValueError, match="label"):
        RewardModel(tiny.reward.model, tiny.tokenizer, label=3)


def test_scoring_is_deterministic_and_keeps_the_training_mode(tiny):
    from rlhf_edu.build_tiny import reward_model_from_policy

    rm = RewardModel(reward_model_from_policy(tiny.policy, tiny.tokenizer).train(), tiny.tokenizer)
    texts = ["the plot was good.", "the acting was dull."]
    assert torch.equal(rm(texts), rm(texts))
    assert rm.model.training
