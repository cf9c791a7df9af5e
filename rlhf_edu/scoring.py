"""Scoring text with a learned reward model: one scalar per text.

A reward model is any ``AutoModelForSequenceClassification``; the reward is the logit of
one label (the only one for the tiny preset's Bradley-Terry model, POSITIVE for
``lvwerra/distilbert-imdb``). Texts are padded on the right, so positions start at 0.

Taught in notebooks/02_reward_model.ipynb.
"""

from __future__ import annotations

import torch


class RewardModel:
    """``reward(texts) -> (B,)`` scores from a sequence classifier's ``label`` logit.

    Args:
        model: a ``PreTrainedModel`` for sequence classification.
        tokenizer: its tokenizer (needs a pad token).
        label: index of the logit that is the reward (0 for a one-logit model).
        max_length: texts are truncated to this many tokens.
    """

    def __init__(self, model, tokenizer, label: int = 0, max_length: int = 256):
        n_labels = model.config.num_labels
        if not 0 <= label < n_labels:
            raise ValueError(f"label: expected an index in [0, {n_labels}), got {label!r}")
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer: expected a pad token")
        self.model = model
        self.tokenizer = tokenizer
        self.label = label
        self.max_length = max_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize ``texts`` right-padded, on the model's device."""
        if isinstance(texts, str) or len(texts) == 0:
            raise ValueError("texts: expected a non-empty list of strings")
        self.tokenizer.padding_side = "right"
        enc = self.tokenizer(
            list(texts),
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
        if isinstance(texts, str):
            raise ValueError("texts: expected a list of strings, got a single string")
        texts = list(texts)
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
