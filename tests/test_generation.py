import pytest
import torch

from rlhf_edu.generation import response_logprobs, response_mask, sample


@pytest.fixture(scope="module")
def rollout(tiny):
    return sample(tiny.policy, tiny.tokenizer, tiny.prompts[:32], max_new_tokens=20, seed=0)


class TestSample:
    def test_shapes_and_mask(self, tiny, rollout):
        B, T = rollout.response_ids.shape
        assert B == 32 and T <= 20
        assert rollout.mask.shape == rollout.logprobs.shape == (B, T)
        # the mask is a prefix of ones that ends at the first EOS (inclusive)
        assert torch.all(rollout.mask[:, 1:] <= rollout.mask[:, :-1])
        eos = tiny.tokenizer.eos_token_id
        for ids, m in zip(rollout.response_ids, rollout.mask):
            n = int(m.sum())
            assert eos not in ids[: n - 1].tolist()
            if n < T:
                assert ids[n - 1] == eos
                assert torch.all(ids[n:] == tiny.tokenizer.pad_token_id)

    def test_prompts_left_padded(self, tiny, rollout):
        assert torch.all(rollout.prompt_mask[:, -1] == 1)
        assert torch.all(
            rollout.prompt_ids[rollout.prompt_mask == 0] == tiny.tokenizer.pad_token_id
        )

    def test_logprobs_are_log_probabilities(self, rollout):
        assert torch.all(rollout.logprobs <= 0)
        assert torch.all(rollout.logprobs[rollout.mask == 0] == 0)

    def test_texts_decode_responses(self, tiny, rollout):
        assert rollout.texts[0] == rollout.prompts[0] + rollout.responses[0]
        assert len(rollout.responses[0]) > 0

    def test_seed_reproducible(self, tiny):
        a = sample(tiny.policy, tiny.tokenizer, tiny.prompts[:4], max_new_tokens=8, seed=5)
        b = sample(tiny.policy, tiny.tokenizer, tiny.prompts[:4], max_new_tokens=8, seed=5)
        assert torch.equal(a.response_ids, b.response_ids)

    def test_select(self, rollout):
        sub = rollout.select([0, 2])
        assert len(sub) == 2 and sub.responses[1] == rollout.responses[2]
        assert torch.equal(sub.logprobs[1], rollout.logprobs[2])

    @pytest.mark.parametrize(
        "arg, value",
        [
            ("temperature", 0.0),
            ("top_k", -1),
            ("top_p", 0.0),
            ("top_p", 1.5),
            ("max_new_tokens", 0),
        ],
    )
    def test_bad_sampling_arguments(self, tiny, arg, value):
        with pytest.raises(ValueError, match=arg):
            sample(tiny.policy, tiny.tokenizer, ["the plot"], **{arg: value})

    def test_rejects_string_prompt(self, tiny):
        with pytest.raises(ValueError, match="prompts"):
            sample(tiny.policy, tiny.tokenizer, "the plot")


class TestResponseLogprobs:
    """The log-probs kept while sampling equal a fresh forward pass on the same tokens."""

    def test_agrees_with_sampling(self, tiny, rollout):
        lp = response_logprobs(tiny.policy, rollout)
        torch.testing.assert_close(lp, rollout.logprobs, atol=1e-4, rtol=1e-4)

    @pytest.mark.parametrize("temperature, top_k, top_p", [(0.7, 0, 1.0), (1.3, 20, 0.9)])
    def test_agrees_with_temperature_and_filters(self, tiny, temperature, top_k, top_p):
        roll = sample(
            tiny.policy,
            tiny.tokenizer,
            tiny.prompts[:16],
            max_new_tokens=12,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=1,
        )
        lp = response_logprobs(tiny.policy, roll, temperature=temperature)
        torch.testing.assert_close(lp, roll.logprobs, atol=1e-4, rtol=1e-4)

    def test_reference_model_agrees_before_any_update(self, tiny, rollout):
        ref = response_logprobs(tiny.ref_policy, rollout)
        torch.testing.assert_close(ref, rollout.logprobs, atol=1e-4, rtol=1e-4)


def test_response_mask_ends_at_first_eos():
    ids = torch.tensor([[5, 0, 7, 0], [5, 6, 7, 8]])
    assert response_mask(ids, eos_token_id=0).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
