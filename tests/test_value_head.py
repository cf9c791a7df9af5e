"""Tests for rlhf_edu.value_head: shapes, positions, masking, gradients, input checks."""

import pytest
import torch

from rlhf_edu.generation import response_logits, sample
from rlhf_edu.value_head import ValueHead, response_hidden_states, values_for_responses


@pytest.fixture(scope="module")
def rollout(tiny):
    return sample(tiny.policy, tiny.tokenizer, tiny.prompts[:6], max_new_tokens=12, seed=0)


def hidden_size(model):
    return model.config.hidden_size


class TestValueHead:
    def test_zero_init_predicts_zero(self):
        head = ValueHead(8)
        assert torch.equal(head(torch.randn(2, 5, 8)), torch.zeros(2, 5))

    def test_is_linear_on_the_last_dim(self):
        torch.manual_seed(0)
        head = ValueHead(8, init_std=0.1)
        with torch.no_grad():
            head.linear.bias.fill_(0.5)
        h = torch.randn(3, 4, 8)
        expected = h @ head.linear.weight[0] + 0.5
        torch.testing.assert_close(head(h), expected)
        assert head.linear.weight.std() > 0.01

    def test_keeps_float32_for_half_inputs(self):
        head = ValueHead(4, init_std=0.1)
        out = head(torch.randn(2, 3, 4, dtype=torch.bfloat16))
        assert out.dtype == torch.float32 and out.shape == (2, 3)

    def test_rejects_bad_inputs(self):
        with pytest.raises(ValueError, match="hidden_size"):
            ValueHead(0)
        with pytest.raises(ValueError, match="init_std"):
            ValueHead(4, init_std=-1.0)
        with pytest.raises(ValueError, match="hidden_states"):
            ValueHead(4)(torch.randn(2, 3, 5))
        with pytest.raises(ValueError, match="hidden_states"):
            ValueHead(4)(torch.randn(2, 4))


class TestResponseHiddenStates:
    def test_positions_match_the_logits(self, tiny, rollout):
        with torch.no_grad():
            hidden, logits = response_hidden_states(tiny.policy, rollout, return_logits=True)
            expected = response_logits(
                tiny.policy,
                rollout.prompt_ids,
                rollout.prompt_mask,
                rollout.response_ids,
                rollout.mask,
            )
            # GPT-2's LM head reads the last hidden state (after the final layer norm)
            via_head = tiny.policy.lm_head(hidden)
        B, T = rollout.response_ids.shape
        assert hidden.shape == (B, T, hidden_size(tiny.policy))
        valid = rollout.mask.bool()
        torch.testing.assert_close(logits[valid], expected[valid])
        torch.testing.assert_close(via_head[valid], expected[valid], atol=1e-4, rtol=1e-4)

    def test_left_padding_does_not_change_a_row(self, tiny, rollout):
        """A row's hidden states are the same alone or in a left-padded batch."""
        lengths = rollout.prompt_mask.sum(1)
        row = int(torch.argmin(lengths))  # the most padded prompt
        alone = rollout.select([row])
        pad = int(alone.prompt_mask[0].numel() - alone.prompt_mask[0].sum())
        alone.prompt_ids, alone.prompt_mask = alone.prompt_ids[:, pad:], alone.prompt_mask[:, pad:]
        with torch.no_grad():
            batched = response_hidden_states(tiny.policy, rollout)[row]
            single = response_hidden_states(tiny.policy, alone)[0]
        valid = rollout.mask[row].bool()
        torch.testing.assert_close(batched[valid], single[valid], atol=1e-4, rtol=1e-4)


class TestValuesForResponses:
    def test_shape_masking_and_gradients(self, tiny, rollout):
        torch.manual_seed(0)
        head = ValueHead(hidden_size(tiny.policy), init_std=0.1)
        values = values_for_responses(tiny.policy, head, rollout)
        assert values.shape == rollout.response_ids.shape
        assert torch.all(values[rollout.mask == 0] == 0)
        assert torch.all(values[rollout.mask == 1] != 0)
        values.sum().backward()
        assert head.linear.weight.grad is not None and head.linear.weight.grad.abs().sum() > 0
        head.zero_grad()
        tiny.policy.zero_grad(set_to_none=True)

    def test_equals_head_on_hidden_states(self, tiny, rollout):
        torch.manual_seed(1)
        head = ValueHead(hidden_size(tiny.policy), init_std=0.1)
        with torch.no_grad():
            values = values_for_responses(tiny.policy, head, rollout)
            expected = head(response_hidden_states(tiny.policy, rollout)) * rollout.mask
        torch.testing.assert_close(values, expected)

    def test_fresh_head_gives_zero(self, tiny, rollout):
        head = ValueHead(hidden_size(tiny.policy))
        with torch.no_grad():
            values = values_for_responses(tiny.policy, head, rollout)
        assert torch.equal(values, torch.zeros_like(values))
