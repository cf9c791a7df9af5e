"""rlhf_edu/soft_reward.py: the soft (probability-weighted) input to the reward model."""

import pytest
import torch

from rlhf_edu.soft_reward import optimise_soft_reward, soft_score


def _equal_length_prompts(tiny, n_tokens=3, k=2):
    out = [q for q in tiny.prompts if len(tiny.tokenizer(q)["input_ids"]) == n_tokens]
    assert len(out) >= k
    return out[:k]


class TestSoftScore:
    def test_one_hot_rows_score_exactly_the_text(self, tiny):
        """One-hot rows are the tokens: the soft score equals the reward model on those ids."""
        rm = tiny.reward.model.eval()
        prompts = _equal_length_prompts(tiny)
        prompt_ids = torch.tensor([tiny.tokenizer(q)["input_ids"] for q in prompts])
        response = torch.randint(0, 1000, (2, 5), generator=torch.Generator().manual_seed(0))
        V = rm.get_input_embeddings().weight.shape[0]
        with torch.no_grad():
            soft = soft_score(rm, prompt_ids, torch.nn.functional.one_hot(response, V).float())
            ids = torch.cat([prompt_ids, response], 1)
            direct = rm(input_ids=ids).logits[:, 0]
        torch.testing.assert_close(soft, direct, atol=1e-5, rtol=1e-5)

    def test_gradient_reaches_the_probabilities(self, tiny):
        rm = tiny.reward.model.eval()
        prompt_ids = torch.tensor(
            [tiny.tokenizer(_equal_length_prompts(tiny, k=1)[0])["input_ids"]]
        )
        V = rm.get_input_embeddings().weight.shape[0]
        z = torch.zeros(1, 4, V, requires_grad=True)
        soft_score(rm, prompt_ids, torch.softmax(z, -1)).sum().backward()
        assert z.grad is not None and z.grad.abs().sum() > 0

    def test_bad_shapes_are_named(self, tiny):
        rm = tiny.reward.model
        with pytest.raises(ValueError, match="probs"):
            soft_score(rm, torch.zeros(1, 2, dtype=torch.long), torch.rand(1, 3, 7))
        V = rm.get_input_embeddings().weight.shape[0]
        with pytest.raises(ValueError, match="prompt_ids"):
            soft_score(rm, torch.zeros(2, 2, dtype=torch.long), torch.rand(1, 3, V))


class TestOptimiseSoftReward:
    def test_short_run_climbs_the_soft_score(self, tiny):
        prompts = _equal_length_prompts(tiny)
        h = optimise_soft_reward(tiny, prompts, n_tokens=6, steps=20, n_samples=4, eval_every=10)
        assert [r["step"] for r in h] == [0, 10, 20]
        assert h[-1]["soft"] > h[0]["soft"] + 0.5
        assert set(h[0]) == {"step", "soft", "sampled", "sampled_max", "gold", "entropy", "example"}
        # the reward model is left as it was found
        assert not any(w.requires_grad for w in tiny.reward.model.parameters())

    def test_prompts_of_unequal_length_are_refused(self, tiny):
        a = next(q for q in tiny.prompts if len(tiny.tokenizer(q)["input_ids"]) == 2)
        b = next(q for q in tiny.prompts if len(tiny.tokenizer(q)["input_ids"]) == 4)
        with pytest.raises(ValueError, match="prompts: expected prompts with the same number"):
            optimise_soft_reward(tiny, [a, b], steps=1)

    @pytest.mark.parametrize(
        ("kw", "name"),
        [({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"n_tokens": 1.5}, "n_tokens"),
         ({"prompts": "a string"}, "prompts")],
    )  # fmt: skip
    def test_bad_arguments_are_named(self, tiny, kw, name):
        args = {"prompts": _equal_length_prompts(tiny), **kw}
        with pytest.raises(ValueError, match=name):
            optimise_soft_reward(tiny, **args)

    def test_a_preset_without_gold_is_refused(self, tiny):
        import dataclasses

        no_gold = dataclasses.replace(tiny, gold=None)
        with pytest.raises(ValueError, match="gold"):
            optimise_soft_reward(no_gold, _equal_length_prompts(tiny), steps=1)
