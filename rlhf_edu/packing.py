"""Sequence packing: one forward pass over a rollout without computing on its padding.

A rollout's rows are left-padded prompts then right-padded responses, ``(B, P + T)`` tokens,
and many of them are padding: a response that stops at EOS after 6 tokens is padded to the
longest one's ``T``. In the tiny preset's PPO about a third of a minibatch's tokens are
padding, and a forward and backward pass costs about the same per token whether it is
padding or not.

Packing lays each row's real tokens (its prompt's, then its response's; ``n_b`` of them)
end to end in *lanes* of length ``L = max_b n_b``, first-fit decreasing, with position ids
that restart at 0 for each sequence. Given position ids and no attention mask, transformers
keeps attention within each sequence (a block-diagonal causal mask:
``transformers.masking_utils.find_packed_sequence_indices``), so every token sees what it
saw in the padded batch, at the same position: the same log-probs and values (up to float
rounding), from ``R * L`` tokens instead of ``B * (P + T)`` (``R`` lanes). Nothing the
trainer computes changes; ``tests/test_packing.py`` checks it against the padded pass.

Shapes: lanes ``(R, L)``; the outputs are laid out as the padded ones, ``(B, T, ...)``: position
``t`` of row ``b`` holds what predicts response token ``t``. Positions past a response's end
(``mask`` 0) hold a copy of its last token's output, finite and meant to be masked; the LM
head runs on the real response tokens alone.

Used by the trainers (lessons 07, 08 and 10); the padded forms it replaces,
``generation.response_logprobs`` and ``value_head.response_hidden_states``, are the ones
lessons 01 and 06 teach.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .generation import Rollout, check_logprob_args, token_logprobs

# Models whose logits are their output embedding applied to the last hidden state, so the LM
# head can run on the response positions alone (GPT-2's ``lm_head``; no scaling, no softcap).
LINEAR_HEAD_MODEL_TYPES = ("gpt2",)


@dataclass
class Packing:
    """Where a rollout's tokens sit in the lanes.

    Attributes:
        input_ids: ``(R, L)`` the packed tokens (0 in the unused tail of a lane).
        position_ids: ``(R, L)`` 0, 1, ... within each sequence; 0 on the unused tail.
        lane, column: ``(N,)`` where the position that predicts each of the ``N`` response
            tokens sits (``N = mask.sum()``; row by row, token by token).
        index: ``(B, T)`` which of those ``N`` predicts response token ``t`` of row ``b``;
            past a response's end, its last token's.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    lane: torch.Tensor
    column: torch.Tensor
    index: torch.Tensor

    @property
    def n_tokens(self) -> int:
        """Tokens a forward pass over the lanes computes on: ``R * L``."""
        return self.input_ids.numel()


def pack(rollout: Rollout) -> Packing:
    """Lay ``rollout``'s sequences (real prompt tokens, then real response tokens) in lanes.

    First-fit decreasing: the longest sequence first, each into the first lane with room,
    lanes of length ``L`` = the longest sequence. Assumes the layout :func:`can_pack` checks.
    See the module docstring.
    """
    prompt_len = rollout.prompt_mask.long().sum(1).tolist()
    response_len = rollout.mask.long().sum(1).tolist()
    n = [p + t for p, t in zip(prompt_len, response_len)]
    B, P = rollout.prompt_ids.shape
    T = rollout.response_ids.shape[1]
    L = max(n)
    free: list[int] = []  # room left in each lane
    lane_of, start_of = [0] * B, [0] * B
    for b in sorted(range(B), key=lambda b: -n[b]):
        r = next((r for r, room in enumerate(free) if room >= n[b]), len(free))
        if r == len(free):
            free.append(L)
        lane_of[b], start_of[b] = r, L - free[r]
        free[r] -= n[b]
    # Laid out on the CPU (many small copies), then moved to the model's device at once.
    prompt_ids, response_ids = rollout.prompt_ids.cpu(), rollout.response_ids.cpu()
    input_ids = torch.zeros(len(free), L, dtype=response_ids.dtype)
    position_ids = torch.zeros(len(free), L, dtype=torch.long)
    lane, column = [], []
    for b in range(B):
        r, s, p, m = lane_of[b], start_of[b], prompt_len[b], response_len[b]
        input_ids[r, s : s + p] = prompt_ids[b, P - p :]
        input_ids[r, s + p : s + p + m] = response_ids[b, :m]
        position_ids[r, s : s + p + m] = torch.arange(p + m)
        lane += [r] * m
        column += range(s + p - 1, s + p - 1 + m)  # the position before each response token
    length = torch.tensor(response_len)[:, None]
    first = length.cumsum(0) - length  # (B, 1): each row's first response token among the N
    index = first + torch.minimum(torch.arange(T), length - 1)  # past the end: the last one
    device = rollout.response_ids.device
    return Packing(
        input_ids.to(device),
        position_ids.to(device),
        torch.tensor(lane, device=device),
        torch.tensor(column, device=device),
        index.to(device),
    )


def can_pack(model, rollout: Rollout) -> bool:
    """Whether ``rollout`` has the layout :func:`pack` assumes and ``model`` keeps packed
    sequences apart: every prompt left-padded and non-empty, every response mask a non-empty
    prefix of ones (as ``generation.sample`` makes them), and attention through sdpa or eager
    (transformers reads FlashAttention's packing from position ids only for a single row,
    so lanes there would attend across sequences)."""
    attention = getattr(model.config, "_attn_implementation", None)
    prompt_mask, mask = rollout.prompt_mask.long(), rollout.mask.long()
    return (
        attention in ("sdpa", "eager")
        and bool(torch.equal(prompt_mask.flip(1).cumprod(1), prompt_mask.flip(1)))
        and bool(torch.equal(mask.cumprod(1), mask))
        and bool(prompt_mask[:, -1].all() and mask[:, 0].all())
    )


def worth_packing(rollout: Rollout, packing: Packing) -> bool:
    """Whether the lanes hold fewer tokens than the padded batch ``(B, P + T)``."""
    return packing.n_tokens < rollout.prompt_ids.numel() + rollout.response_ids.numel()


def response_outputs(
    model, rollout: Rollout, logits: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``value_head.response_hidden_states(model, rollout, return_logits=logits)``, packed.

    Returns the last hidden states ``(B, T, H)`` at the positions that predict each response
    token (and their logits ``(B, T, V)`` with ``logits=True``), from one forward pass over
    the lanes; the padded pass when packing would not save tokens or :func:`can_pack` says
    no. Gradients flow.
    """
    from .value_head import response_hidden_states

    if not can_pack(model, rollout) or not worth_packing(rollout, packing := pack(rollout)):
        return response_hidden_states(model, rollout, return_logits=logits)
    linear_head = getattr(model.config, "model_type", None) in LINEAR_HEAD_MODEL_TYPES
    out = model(
        input_ids=packing.input_ids,
        position_ids=packing.position_ids,
        output_hidden_states=True,
        use_cache=False,
        logits_to_keep=1 if (linear_head or not logits) else 0,
    )
    hidden = out.hidden_states[-1][packing.lane, packing.column]  # (N, H): response tokens
    if not logits:
        return hidden[packing.index]
    if linear_head:  # the LM head on the N response positions only
        return hidden[packing.index], model.get_output_embeddings()(hidden)[packing.index]
    return hidden[packing.index], out.logits[packing.lane, packing.column][packing.index]


def response_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """``generation.response_logprobs(model, rollout, temperature)``, packed: ``(B, T)``,
    0 where ``rollout.mask`` is 0. The same checks of its arguments."""
    check_logprob_args(model, rollout, temperature)
    _, logits = response_outputs(model, rollout, logits=True)
    return token_logprobs(logits.float() / temperature, rollout.response_ids) * rollout.mask
