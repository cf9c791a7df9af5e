"""A value head: a scalar ``V(s_t)`` read off the policy's hidden states (lesson 06).

The state ``s_t`` before response token ``t`` is the prompt plus ``y_<t``; the hidden state at
the position that *predicts* ``y_t`` summarises it, so ``V(s_t) = w . h_t + b`` with ``h_t`` the
last hidden state there (after GPT-2's final layer norm). Shapes: hidden states ``(B, T, H)``,
values ``(B, T)`` over response tokens, 0 where ``mask`` is 0.

Taught in notebooks/06_advantages.ipynb.
"""

from __future__ import annotations

import torch

from rlhf_edu._checks import require_float_tensor, require_int
from rlhf_edu.generation import Rollout, position_ids_from_mask


class ValueHead(torch.nn.Module):
    """``V(s_t) = w . h_t + b``: one linear layer from the hidden size to a scalar.

    Zero-initialised (``init_std=0``, the default): a fresh head predicts 0 everywhere, i.e.
    "no baseline", and learns from there. ``init_std > 0`` draws ``w`` from
    ``N(0, init_std^2)`` instead (the bias stays 0). Kept in float32 whatever the model's dtype.

    Taught in notebooks/06_advantages.ipynb.
    """

    def __init__(self, hidden_size: int, init_std: float = 0.0) -> None:
        super().__init__()
        hidden_size = require_int("hidden_size", hidden_size, 1)
        if not init_std >= 0:
            raise ValueError(f"init_std: expected a number >= 0, got {init_std!r}")
        self.linear = torch.nn.Linear(hidden_size, 1)
        if init_std > 0:
            torch.nn.init.normal_(self.linear.weight, std=init_std)
        else:
            torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Map hidden states ``(B, T, H)`` to values ``(B, T)``."""
        hidden_states = require_float_tensor("hidden_states", hidden_states, ndim=3)
        if hidden_states.shape[-1] != self.linear.in_features:
            raise ValueError(
                f"hidden_states: expected last dim {self.linear.in_features} (the hidden size), "
                f"got shape {tuple(hidden_states.shape)}"
            )
        return self.linear(hidden_states.to(self.linear.weight.dtype)).squeeze(-1)


def response_hidden_states(
    model, rollout: Rollout, return_logits: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on prompt + response; return the last hidden states ``(B, T, H)``.

    Position ``t`` holds ``h_t``, the state at the position that predicts response token ``t``
    (prompt and ``y_<t`` seen), the same positions as ``generation.response_logits``. Left
    padding of the prompt is skipped with ``generation.position_ids_from_mask``. With
    ``return_logits=True`` also return those positions' logits ``(B, T, V)`` from the same
    forward pass (the policy's log-probs and its values in one go). Gradients flow.

    Taught in notebooks/06_advantages.ipynb.
    """
    input_ids = torch.cat([rollout.prompt_ids, rollout.response_ids], dim=1)
    attention_mask = torch.cat([rollout.prompt_mask, rollout.mask.to(rollout.prompt_mask.dtype)], 1)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        output_hidden_states=True,
        use_cache=False,
        # The LM head runs only where it is needed: the T + 1 last positions (or one position).
        logits_to_keep=rollout.response_ids.shape[1] + 1 if return_logits else 1,
    )
    P = rollout.prompt_ids.shape[1]
    hidden = out.hidden_states[-1][:, P - 1 : -1]  # (B, T, H): h_t predicts response token t
    if return_logits:
        return hidden, out.logits[:, :-1]  # the kept positions P-1 .. P+T-1, minus the last
    return hidden


def values_for_responses(model, value_head: ValueHead, rollout: Rollout) -> torch.Tensor:
    """Values ``V(s_t)`` for every response position of ``rollout``: shape ``(B, T)``.

    ``value_head(response_hidden_states(model, rollout))``, set to 0 where ``rollout.mask`` is 0
    (after the end there is no state to value; GAE bootstraps with 0 there). ``model`` is the
    causal LM whose hidden states the head reads (the policy), on the head's device. Gradients
    flow to the head and to the model; wrap in ``torch.no_grad()`` for the rollout's values.

    Taught in notebooks/06_advantages.ipynb.
    """
    values = value_head(response_hidden_states(model, rollout))
    return torch.where(rollout.mask.bool(), values, torch.zeros_like(values))
