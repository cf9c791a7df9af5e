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

from .generation import LINEAR_HEAD_MODEL_TYPES, Rollout, check_logprob_args, token_logprobs


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
    B = rollout.prompt_ids.shape[0]
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
    # Every real token, row by row (a row's prompt tokens, then its response's), and where
    # it goes: lane r_b, column s_b + j for the j-th token of row b.
    device = rollout.response_ids.device
    tokens = torch.cat([rollout.prompt_ids, rollout.response_ids], 1)
    real = torch.cat([rollout.prompt_mask, rollout.mask.to(rollout.prompt_mask.dtype)], 1)
    n_b = torch.tensor(n, device=device)
    row = torch.repeat_interleave(torch.arange(B, device=device), n_b)  # (sum n,)
    j = torch.arange(len(row), device=device) - (n_b.cumsum(0) - n_b)[row]  # 0, 1, ... per row
    lane_b = torch.tensor(lane_of, device=device)[row]
    column_b = torch.tensor(start_of, device=device)[row] + j
    input_ids = torch.zeros(len(free), L, dtype=tokens.dtype, device=device)
    position_ids = torch.zeros(len(free), L, dtype=torch.long, device=device)
    input_ids[lane_b, column_b] = tokens[real.bool()]
    position_ids[lane_b, column_b] = j
    response = j >= torch.tensor(prompt_len, device=device)[row]  # the N response tokens
    length = torch.tensor(response_len, device=device)[:, None]
    first = length.cumsum(0) - length  # (B, 1): each row's first response token among the N
    index = first + torch.minimum(torch.arange(T, device=device), length - 1)  # past the end: last
    return Packing(
        input_ids,
        position_ids,
        lane_b[response],
        column_b[response] - 1,  # the position before each response token predicts it
        index,
    )


def can_pack(model, rollout: Rollout) -> bool:
    """Whether ``rollout`` has the layout :func:`pack` assumes and ``model`` keeps packed
    sequences apart: every prompt left-padded and non-empty, every response mask a non-empty
    prefix of ones (as ``generation.sample`` makes them), and attention through sdpa or eager
    (transformers reads FlashAttention's packing from position ids only for a single row,
    so lanes there would attend across sequences)."""
    if getattr(model.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    if 0 in (rollout.prompt_ids.shape[1], rollout.response_ids.shape[1]):
        return False
    prompt_mask, mask = rollout.prompt_mask.long().flip(1), rollout.mask.long()
    layout = (
        (prompt_mask.cumprod(1) == prompt_mask).all()  # left padding: ones, then zeros, flipped
        & (mask.cumprod(1) == mask).all()  # a prefix of ones
        & prompt_mask[:, 0].all()  # a non-empty prompt
        & mask[:, 0].all()  # a non-empty response
    )
    return bool(layout)  # one read back to the host (a GPU sync), not four


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

    if rollout.prompt_ids.shape[1] == 0:  # nothing predicts the first response token
        raise ValueError(
            "rollout.prompt_ids: expected at least one prompt position (an empty prompt is the "
            "BOS token, as generation.sample encodes it), got shape "
            f"{tuple(rollout.prompt_ids.shape)}"
        )
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
    # Gathers as index_select on flat rows: the same values as indexing, and a backward that
    # adds rows (index_add) instead of a serial index_put.
    L = packing.input_ids.shape[1]
    at = packing.lane * L + packing.column  # (N,): the N response positions in the flat lanes
    index = packing.index.flatten()

    def laid_out(x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (B, T, ...)
        return x.index_select(0, index).unflatten(0, packing.index.shape)

    hidden = out.hidden_states[-1].flatten(0, 1).index_select(0, at)  # (N, H)
    if not logits:
        return laid_out(hidden)
    if linear_head:  # the LM head on the N response positions only
        return laid_out(hidden), laid_out(model.get_output_embeddings()(hidden))
    return laid_out(hidden), laid_out(out.logits.flatten(0, 1).index_select(0, at))


def response_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """``generation.response_logprobs(model, rollout, temperature)``, packed: ``(B, T)``,
    0 where ``rollout.mask`` is 0. The same checks of its arguments."""
    check_logprob_args(model, rollout, temperature)
    _, logits = response_outputs(model, rollout, logits=True)
    return token_logprobs(logits.float() / temperature, rollout.response_ids) * rollout.mask
