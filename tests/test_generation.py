import pytest
import torch

from rlhf_edu.generation import (
    encode_prompts,
    require_fits_context,
    response_logprobs,
    response_mask,
    sample,
)


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

    @pytest.mark.parametrize(
        "arg, value",
        [
            ("temperature", float("nan")),
            ("temperature", "1.0"),
            ("top_k", True),
            ("top_k", 2.5),
            ("top_p", float("nan")),
            ("max_new_tokens", 4.0),
            ("seed", "0"),
        ],
    )
    def test_wrong_types_and_nan_name_the_argument(self, tiny, arg, value):
        with pytest.raises(ValueError, match=f"^{arg}: expected"):
            sample(tiny.policy, tiny.tokenizer, ["the plot"], **{arg: value})

    def test_rejects_string_prompt(self, tiny):
        with pytest.raises(ValueError, match="prompts: expected a list of strings, got a single"):
            sample(tiny.policy, tiny.tokenizer, "the plot")

    @pytest.mark.parametrize(
        "prompts, message",
        [
            ([], r"^prompts: expected a non-empty list of strings, got an empty list$"),
            (["the plot", None], r"^prompts\[1\]: expected a string, got NoneType None$"),
            ([3], r"^prompts\[0\]: expected a string, got int 3$"),
            (None, r"^prompts: expected a list of strings, got NoneType$"),
        ],
    )
    def test_rejects_empty_list_and_non_strings(self, tiny, prompts, message):
        with pytest.raises(ValueError, match=message):
            sample(tiny.policy, tiny.tokenizer, prompts, max_new_tokens=4)


class TestPrompts:
    """Empty prompts start from BOS; prompts too long for the context are refused by name."""

    def test_empty_prompt_starts_from_bos(self, tiny):
        roll = sample(tiny.policy, tiny.tokenizer, ["", "the plot"], max_new_tokens=6, seed=0)
        bos = tiny.tokenizer.bos_token_id
        assert roll.prompt_ids[0, -1] == bos and roll.prompt_mask[0].sum() == 1
        assert roll.prompts == ["", "the plot"] and roll.texts[0] == roll.responses[0]
        # its log-probs are those of the continuation of BOS, as a forward pass says
        lp = response_logprobs(tiny.policy, roll)
        torch.testing.assert_close(lp, roll.logprobs, atol=1e-4, rtol=1e-4)

    def test_empty_prompt_alone(self, tiny):
        roll = sample(tiny.policy, tiny.tokenizer, [""], max_new_tokens=6, seed=0)
        assert roll.prompt_ids.tolist() == [[tiny.tokenizer.bos_token_id]]
        assert roll.mask.sum() >= 1

    def test_non_empty_prompts_encode_as_the_tokenizer_does(self, tiny):
        prompts = ["the plot", "it is a long film"]
        tiny.tokenizer.padding_side = "left"
        direct = tiny.tokenizer(prompts, return_tensors="pt", padding=True)
        enc = encode_prompts(tiny.tokenizer, prompts)
        assert torch.equal(enc["input_ids"], direct["input_ids"])
        assert torch.equal(enc["attention_mask"], direct["attention_mask"])

    def test_prompt_too_long_for_the_context_names_the_limit(self, tiny):
        assert tiny.policy.config.n_positions == 128
        long = "the plot was good . " * 40
        n = len(tiny.tokenizer(long)["input_ids"])
        assert n > 128
        message = (
            rf"^prompts\[1\]: {n} prompt tokens \+ max_new_tokens=4 do not fit the model's "
            r"context of 128 positions; shorten the prompt to at most 124 tokens$"
        )
        with pytest.raises(ValueError, match=message):
            sample(tiny.policy, tiny.tokenizer, ["the plot", long], max_new_tokens=4)

    def test_max_new_tokens_past_the_context_is_refused(self, tiny):
        n = len(tiny.tokenizer("the plot")["input_ids"])
        message = (
            rf"^prompts\[0\]: {n} prompt tokens \+ max_new_tokens=128 do not fit the model's "
            rf"context of 128 positions; lower max_new_tokens to at most {128 - n}$"
        )
        with pytest.raises(ValueError, match=message):
            sample(tiny.policy, tiny.tokenizer, ["the plot"], max_new_tokens=128)

    def test_prompt_and_max_new_tokens_each_too_long(self, tiny):
        message = (
            r"^prompts: 200 prompt tokens \+ max_new_tokens=300 do not fit the model's context "
            r"of 128 positions; shorten the prompt and lower max_new_tokens$"
        )
        with pytest.raises(ValueError, match=message):
            require_fits_context(tiny.policy, 200, 300)

    def test_prompt_that_just_fits(self, tiny):
        n = len(tiny.tokenizer("the plot")["input_ids"])
        roll = sample(tiny.policy, tiny.tokenizer, ["the plot"], max_new_tokens=128 - n, seed=0)
        assert roll.prompt_ids.shape[1] + roll.response_ids.shape[1] <= 128


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

    def test_rejects_what_is_not_a_rollout(self, tiny):
        with pytest.raises(ValueError, match="^rollout: expected a Rollout .*got list"):
            response_logprobs(tiny.policy, ["the plot"])

    @pytest.mark.parametrize("temperature", [0.0, float("nan"), "1"])
    def test_bad_temperature(self, tiny, rollout, temperature):
        with pytest.raises(ValueError, match="^temperature: expected"):
            response_logprobs(tiny.policy, rollout, temperature=temperature)

    def test_reference_model_agrees_before_any_update(self, tiny, rollout):
        ref = response_logprobs(tiny.ref_policy, rollout)
        torch.testing.assert_close(ref, rollout.logprobs, atol=1e-4, rtol=1e-4)


def test_response_mask_ends_at_first_eos():
    ids = torch.tensor([[5, 0, 7, 0], [5, 6, 7, 8]])
    assert response_mask(ids, eos_token_id=0).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
