"""Scoring text with a learned reward model: one scalar per text.

A reward model is any ``AutoModelForSequenceClassification``; the reward is the logit of
one label (the only one for the tiny preset's Bradley-Terry model, POSITIVE for
``lvwerra/distilbert-imdb``). Texts are padded on the right, so positions start at 0.

``texts`` is always a non-empty list of strings (a single string, ``None`` or a number is
refused by name). An empty string is scored as the BOS token alone where the tokenizer has
one (GPT-2's empty context, as in :mod:`rlhf_edu.generation`). A text longer than
``max_length``, or than the model's context, is truncated on the right.

:func:`check_scores` holds any reward function to the same contract: one number per text.

Taught in notebooks/02_reward_model.ipynb.
"""

from __future__ import annotations

import numbers

import torch

from ._checks import require_int, require_texts
from .generation import context_length


def _describe(value) -> str:
    """A short description of what a function returned, for an error message."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(x).__name__ for x in value})
        first = f", first {value[0]!r:.40}" if value else ""
        return f"a {type(value).__name__} of {len(value)} items of type {'/'.join(kinds)}{first}"
    return f"{type(value).__name__} {value!r:.40}"


def check_scores(scores, n_texts: int, name: str = "reward_fn", step: int | None = None):
    """Return ``scores`` as a float tensor of shape ``(n_texts,)``: one number per text.

    ``scores`` is what a reward function (``name``) returned for ``n_texts`` texts: a
    tensor, a numpy array or a list of numbers. Anything else (strings, a ``(B, 1)`` or
    scalar tensor, another length) raises ``ValueError`` naming ``name``, what it returned,
    and the training ``step`` when given. Non-finite values pass: the trainers stop on them
    with the step and the quantity. Taught in notebooks/07_ppo.ipynb.
    """
    where = f"step {step}: " if step is not None else ""
    expected = (
        f"{where}{name}: expected one number per text, a ({n_texts},) tensor or a list of "
        f"{n_texts} numbers; got {_describe(scores)}"
    )
    if isinstance(scores, (str, bytes, dict)):
        raise ValueError(expected)
    if isinstance(scores, (list, tuple)) and not all(
        isinstance(x, numbers.Real) or (isinstance(x, torch.Tensor) and x.dim() == 0)
        for x in scores
    ):
        raise ValueError(expected)
    try:
        tensor = torch.as_tensor(scores)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(expected) from None
    if tensor.is_complex() or tuple(tensor.shape) != (n_texts,):
        raise ValueError(expected)
    return tensor.float()


class RewardModel:
    """``reward(texts) -> (B,)`` scores from a sequence classifier's ``label`` logit.

    Args:
        model: a ``PreTrainedModel`` for sequence classification.
        tokenizer: its tokenizer (needs a pad token).
        label: index of the logit that is the reward (0 for a one-logit model).
        max_length: texts are truncated to this many tokens, and never past the model's
            context (``n_positions``): ``self.max_length`` is the smaller of the two.
    """

    def __init__(self, model, tokenizer, label: int = 0, max_length: int = 256):
        n_labels = model.config.num_labels
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < n_labels:
            raise ValueError(f"label: expected an index in [0, {n_labels}), got {label!r}")
        require_int("max_length", max_length, 1)
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer: expected a pad token")
        self.model = model
        self.tokenizer = tokenizer
        self.label = label
        self.max_length = min(max_length, context_length(model) or max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize ``texts`` right-padded, on the model's device ("" as the BOS token)."""
        texts = require_texts("texts", texts)
        bos = self.tokenizer.bos_token
        if bos is not None:
            texts = [t or bos for t in texts]
        self.tokenizer.padding_side = "right"
        enc = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        )
        return {
            k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")
        }

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Scores with gradients (for training): shape ``(B,)``."""
        return self.model(**self.encode(texts)).logits[:, self.label].float()

    @torch.no_grad()
    def __call__(self, texts: list[str], batch_size: int = 128) -> torch.Tensor:
        """Scores without gradients and without dropout, in batches: shape ``(B,)``."""
        texts = require_texts("texts", texts)
        require_int("batch_size", batch_size, 1)
        was_training = self.model.training
        self.model.eval()  # scoring is deterministic: no dropout
        try:
            chunks = [
                self.forward(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
            ]
        finally:
            self.model.train(was_training)
        return torch.cat(chunks)

    def __repr__(self) -> str:
        name = type(self.model).__name__
        return f"RewardModel({name}, label={self.label})"
