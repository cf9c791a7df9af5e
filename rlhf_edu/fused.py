"""Fused kernels for the same functions: how the trainers run their models and optimizer.

GPT-2's activation, ``gelu_new``, is the tanh approximation of GELU,

    gelu(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).

transformers' ``NewGELUActivation`` evaluates it as eight element-wise ops (a power, four
multiplications, two additions, a tanh), each a pass over the ``(B, L, 4H)`` activations that
keeps its own tensor for the backward pass: about a fifth of the tiny policy's forward time
on a CPU. ``torch.nn.functional.gelu(x, approximate="tanh")`` evaluates the same formula in
one kernel; transformers ships it as ``GELUTanh`` (``"gelu_pytorch_tanh"``) and documents it
as equivalent to ``NewGELUActivation`` up to rounding. :func:`fused_gelu` swaps one for the
other while a ``with`` block runs (the trainers' steps);
``tests/test_fused.py`` checks that the log-probs agree to 1e-5.

AdamW likewise: :func:`adamw` asks torch for its fused implementation (one kernel over all
parameters instead of a loop of small ops per parameter) where torch has one, the same
update rule.

Used by the trainers (lessons 07, 08 and 10).
"""

from __future__ import annotations

import contextlib

import torch
from transformers.activations import ACT2CLS, NewGELUActivation


def _gelu_modules(model: torch.nn.Module) -> list[tuple[torch.nn.Module, str]]:
    """``(parent, name)`` of every ``NewGELUActivation`` in ``model``."""
    return [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is NewGELUActivation
    ]


@contextlib.contextmanager
def fused_gelu(model: torch.nn.Module):
    """Run ``model`` with the fused GELU inside the ``with`` block, its own modules after it
    (also after an error). Yields how many were swapped. The trainers' steps run their policy
    and reference in one, so outside a step those models compute as they always did: in
    ``generation.sample``, ``generation.response_logprobs``, and whatever a lesson does next.
    Nested blocks on one model are fine: the inner one finds nothing left to swap."""
    swaps = [(parent, name, getattr(parent, name)) for parent, name in _gelu_modules(model)]
    kernel = ACT2CLS["gelu_pytorch_tanh"]()
    for parent, name, _ in swaps:
        setattr(parent, name, kernel)
    try:
        yield len(swaps)
    finally:
        for parent, name, module in swaps:
            setattr(parent, name, module)


def adamw(params, device: torch.device, **kwargs) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **kwargs)``, fused on a CPU or a CUDA GPU."""
    return torch.optim.AdamW(params, fused=device.type in ("cpu", "cuda"), **kwargs)
