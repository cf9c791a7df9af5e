"""Tests for rlhf_edu.packing: the lanes' layout, and that a packed forward pass gives the
padded pass's hidden states, logits, log-probs and gradients."""

import copy

import pytest
import torch

from rlhf_edu import generation, packing
from rlhf_edu.generation import encode_prompts, response_logprobs, sample
from rlhf_edu.value_head import response_hidden_states


@pytest.fixture(scope="module")
def rollout(tiny):
    """Responses of many lengths: some stop early at EOS, so there is padding to save."""
    roll = sample(tiny.policy, tiny.tokenizer, tiny.prompts[:24], max_new_tokens=24, seed=1)
    lengths = roll.mask.sum(1)
    assert lengths.min() < lengths.max() // 2, "the fixture needs short and long responses"
    return roll


def test_lanes_hold_every_sequence_once_with_restarting_positions(rollout):
    pk = packing.pack(rollout)
    R, L = pk.input_ids.shape
    n = rollout.prompt_mask.sum(1) + rollout.mask.sum(1)
    assert L == int(n.max())
    assert R < len(rollout), "short sequences share lanes"
    assert pk.n_tokens < rollout.prompt_ids.numel() + rollout.response_ids.numel()
    used = torch.zeros(R, L, dtype=torch.long)
    k = 0  # the first of row b's response tokens among the N
    for b in range(len(rollout)):
        p, t = int(rollout.prompt_mask[b].sum()), int(rollout.mask[b].sum())
        r, start = int(pk.lane[k]), int(pk.column[k]) - (p - 1)
        seq = torch.cat([rollout.prompt_ids[b, -p:], rollout.response_ids[b, :t]])
        assert torch.equal(pk.input_ids[r, start : start + p + t], seq)
        assert torch.equal(pk.position_ids[r, start : start + p + t], torch.arange(p + t))
        used[r, start : start + p + t] += 1
        # the position that predicts response token t is the one before it, in the same lane
        assert torch.equal(pk.lane[k : k + t], torch.full((t,), r))
        assert torch.equal(pk.input_ids[r, pk.column[k : k + t] + 1], rollout.response_ids[b, :t])
        T = rollout.response_ids.shape[1]  # past the end: the last token's again
        assert pk.index[b].tolist() == list(range(k, k + t)) + [k + t - 1] * (T - t)
        k += t
    assert k == len(pk.lane) == int(rollout.mask.sum())
    assert used.max() == 1, "no two sequences overlap"
    assert int(used.sum()) == int(n.sum())


def test_packed_pass_gives_the_padded_outputs(tiny, rollout):
    m = rollout.mask.bool()
    h_pad, z_pad = response_hidden_states(tiny.policy, rollout, return_logits=True)
    h, z = packing.response_outputs(tiny.policy, rollout, logits=True)
    assert h.shape == h_pad.shape and z.shape == z_pad.shape
    torch.testing.assert_close(h[m], h_pad[m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(z[m], z_pad[m], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(packing.response_outputs(tiny.policy, rollout)[m], h_pad[m])
    lp = packing.response_logprobs(tiny.policy, rollout, temperature=0.7)
    torch.testing.assert_close(lp, response_logprobs(tiny.policy, rollout, 0.7), atol=1e-5, rtol=0)
    assert torch.all(lp[~m] == 0)


def test_the_general_path_reads_the_models_own_logits(tiny, rollout, monkeypatch):
    """A model whose logits are not its output embedding of the hidden state (not GPT-2)."""
    monkeypatch.setattr(packing, "LINEAR_HEAD_MODEL_TYPES", ())
    m = rollout.mask.bool()
    _, z_pad = response_hidden_states(tiny.policy, rollout, return_logits=True)
    _, z = packing.response_outputs(tiny.policy, rollout, logits=True)
    torch.testing.assert_close(z[m], z_pad[m], atol=1e-4, rtol=1e-5)


def test_gradients_match_the_padded_pass(tiny, rollout):
    policy = copy.deepcopy(tiny.policy).requires_grad_(True)
    grads = []
    for logprobs_fn in (response_logprobs, packing.response_logprobs):
        policy.zero_grad()
        logprobs_fn(policy, rollout).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters()]))
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-4)


def test_falls_back_to_the_padded_pass_when_packing_saves_nothing(tiny, monkeypatch):
    roll = sample(tiny.policy, tiny.tokenizer, [tiny.prompts[0]] * 3, max_new_tokens=2, seed=0)
    assert roll.mask.all(), "every response runs to the limit: no padding to save"
    assert not packing.worth_packing(roll, packing.pack(roll))
    calls = []
    monkeypatch.setattr(
        "rlhf_edu.value_head.response_hidden_states",
        lambda *a, **k: calls.append(1) or response_hidden_states(*a, **k),
    )
    packing.response_outputs(tiny.policy, roll)
    assert calls == [1]


@pytest.mark.parametrize("case", ["float masks", "a hole in a mask", "an empty response"])
def test_other_layouts_give_the_padded_outputs(tiny, rollout, case):
    roll = rollout.select(list(range(6)))
    if case == "float masks":
        roll.prompt_mask, roll.mask = roll.prompt_mask.float(), roll.mask.float()
    elif case == "a hole in a mask":
        roll.mask = roll.mask.clone()
        roll.mask[0, 1] = 0
    else:
        roll.mask = roll.mask.clone()
        roll.mask[2] = 0
    assert packing.can_pack(tiny.policy, roll) is (case == "float masks")
    m = roll.mask.bool()
    want = response_logprobs(tiny.policy, roll)
    torch.testing.assert_close(packing.response_logprobs(tiny.policy, roll)[m], want[m])


def test_flash_attention_is_not_packed(tiny, rollout, monkeypatch):
    """transformers reads FlashAttention's packing from position ids only for one row."""
    assert packing.can_pack(tiny.policy, rollout)
    monkeypatch.setattr(tiny.policy.config, "_attn_implementation", "flash_attention_2")
    assert not packing.can_pack(tiny.policy, rollout)


def test_checks_its_arguments_as_the_padded_function_does(tiny, rollout):
    with pytest.raises(ValueError, match="temperature"):
        packing.response_logprobs(tiny.policy, rollout, temperature=0.0)
    with pytest.raises(ValueError, match="rollout: expected a Rollout"):
        packing.response_logprobs(tiny.policy, "not a rollout")


def test_sampling_keeps_the_hidden_states_the_values_read(tiny, rollout):
    kept = sample(
        tiny.policy, tiny.tokenizer, rollout.prompts, max_new_tokens=24, seed=1, keep_hidden=True
    )
    assert torch.equal(kept.response_ids, rollout.response_ids) and rollout.hidden is None
    m = kept.mask.bool()
    torch.testing.assert_close(kept.hidden[m], response_hidden_states(tiny.policy, kept)[m])
    assert torch.equal(kept.select([2, 0]).hidden, kept.hidden[[2, 0]])
    head = tiny.policy.get_output_embeddings()
    assert not head._forward_pre_hooks, "the hook that kept them is removed"


def test_kept_hidden_states_are_the_last_layers_generate_reports(tiny, rollout):
    """The hook on the LM head's input keeps what ``output_hidden_states`` reports for the last
    layer, bit for bit, without every other layer's."""
    kept = sample(
        tiny.policy, tiny.tokenizer, rollout.prompts, max_new_tokens=24, seed=1, keep_hidden=True
    )
    enc = encode_prompts(tiny.tokenizer, rollout.prompts)
    torch.manual_seed(1)
    out = tiny.policy.generate(
        **enc,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=24,
        pad_token_id=tiny.tokenizer.pad_token_id,
        eos_token_id=tiny.tokenizer.eos_token_id,
        return_dict_in_generate=True,
        output_hidden_states=True,
    )
    every_layer = torch.stack([step[-1][:, -1] for step in out.hidden_states], dim=1)
    assert every_layer.shape == kept.hidden.shape
    assert torch.equal(kept.hidden, every_layer)


def test_other_models_keep_no_hidden_states(tiny, rollout, monkeypatch):
    monkeypatch.setattr(generation, "LINEAR_HEAD_MODEL_TYPES", ())  # as for a non-GPT-2 model
    kept = sample(
        tiny.policy, tiny.tokenizer, rollout.prompts[:4], max_new_tokens=8, keep_hidden=True
    )
    assert kept.hidden is None and kept.logprobs.shape == kept.mask.shape


def test_kept_hidden_states_need_one_head_call_per_new_token():
    B, H = 2, 3
    prompt, step = (5, torch.zeros(B, H)), (1, torch.ones(B, H))
    assert generation._kept_hidden([prompt, step, step], B, 3).shape == (B, 3, H)
    assert generation._kept_hidden([prompt, step, step, step], B, 3).shape == (B, 3, H)  # MPS
    assert generation._kept_hidden([prompt, step], B, 3) is None  # a call missing
    assert generation._kept_hidden([prompt, (4, torch.ones(B, H)), step], B, 3) is None  # assisted
    assert generation._kept_hidden([prompt, (1, torch.ones(1, H)), step], B, 3) is None


def test_the_hook_is_removed_when_generate_fails(tiny, rollout, monkeypatch):
    model = copy.deepcopy(tiny.policy)

    def fail(*args, **kwargs):
        raise RuntimeError("generate failed")

    monkeypatch.setattr(model, "generate", fail)
    with pytest.raises(RuntimeError, match="generate failed"):
        sample(model, tiny.tokenizer, rollout.prompts[:2], max_new_tokens=4, keep_hidden=True)
    assert not model.get_output_embeddings()._forward_pre_hooks


def test_an_empty_prompt_tensor_is_refused(tiny, rollout):
    bad = rollout.select([0, 1])
    bad.prompt_ids, bad.prompt_mask = bad.prompt_ids[:, :0], bad.prompt_mask[:, :0]
    with pytest.raises(ValueError, match="rollout.prompt_ids"):
        packing.response_outputs(tiny.policy, bad)
