"""Tests for rlhf_edu.fused: the fused GELU computes GPT-2's gelu_new; AdamW is fused."""

import copy

import pytest
import torch
from transformers.activations import ACT2CLS, NewGELUActivation

from rlhf_edu import fused
from rlhf_edu.generation import response_logprobs, sample


def test_the_fused_kernel_is_gelu_new():
    x = torch.linspace(-8, 8, 10_001)
    torch.testing.assert_close(
        ACT2CLS["gelu_pytorch_tanh"]()(x), NewGELUActivation()(x), atol=1e-6, rtol=1e-6
    )


def test_fused_gelu_keeps_the_log_probs(tiny):
    model = copy.deepcopy(tiny.policy)
    roll = sample(model, tiny.tokenizer, tiny.prompts[:8], max_new_tokens=12, seed=0)
    before = response_logprobs(model, roll)
    with fused.fused_gelu(model):
        after = response_logprobs(model, roll)
    assert not torch.equal(after, before), "the fused kernel rounds differently: it ran"
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert model.config.activation_function == tiny.policy.config.activation_function


def test_fused_gelu_swaps_inside_the_block_only(tiny):
    model = copy.deepcopy(tiny.policy)
    own = [m for m in model.modules() if isinstance(m, NewGELUActivation)]
    with fused.fused_gelu(model) as n:
        assert n == len(own) == model.config.n_layer
        assert not any(isinstance(m, NewGELUActivation) for m in model.modules())
    assert [m for m in model.modules() if isinstance(m, NewGELUActivation)] == own
    with pytest.raises(KeyError), fused.fused_gelu(model):
        raise KeyError("an error in the block")
    assert [m for m in model.modules() if isinstance(m, NewGELUActivation)] == own


def test_leaves_other_activations_alone():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    with fused.fused_gelu(model) as n:
        assert n == 0 and isinstance(model[1], torch.nn.ReLU)


def test_fused_gelu_nests(tiny):
    """A block inside another on the same model (a helper that fuses, called during a
    trainer's step) swaps nothing and gives back nothing: the outer block's restore holds."""
    model = copy.deepcopy(tiny.policy)
    own = [m for m in model.modules() if isinstance(m, NewGELUActivation)]
    with fused.fused_gelu(model) as outer:
        with fused.fused_gelu(model) as inner:
            assert (outer, inner) == (len(own), 0)
        assert not any(isinstance(m, NewGELUActivation) for m in model.modules())
    assert [m for m in model.modules() if isinstance(m, NewGELUActivation)] == own


@pytest.mark.parametrize("device, expected", [("cpu", True), ("meta", False)])
def test_adamw_is_fused_on_a_cpu(device, expected):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = fused.adamw([p], torch.device(device), lr=1e-3)
    assert opt.param_groups[0]["fused"] is expected
