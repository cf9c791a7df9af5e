"""The "obvious fix" for a reward that is not differentiable, built so that it can fail in the open.

A reward model reads token ids: ``score(e(x_1), ..., e(x_T))`` with ``e`` its embedding table
``W`` (``(V, d)``). Sampling the ids cuts the gradient (lesson 01). The fix learners propose is
to feed the reward model the model's *probabilities* instead: at each response position the
probability-weighted mix of token embeddings,

    e_t = sum_v softmax(z_t)_v W_v = softmax(z_t) @ W,        z: (T, V) logits,

so ``score`` becomes a differentiable function of the logits ``z`` and gradient ascent works.
What it climbs, though, is the score of a *mixture*: a point in embedding space that no
sequence of tokens is. The text actually sampled from ``softmax(z)`` (one-hot rows) need not
score the same, and the optimiser is free to find mixtures that the reward model, which only
ever saw real text, scores higher than any text. RL avoids this by only ever scoring real
samples (the score-function gradient of lesson 03).

:func:`soft_score` scores probability rows; :func:`optimise_soft_reward` runs gradient ascent on
free logits ``z`` (started from the policy's own next-token logits along one of its samples)
and, along the way, scores text sampled from the same logits with the reward model and the
gold judge. Positions are sampled independently (the logits are free, not autoregressive).

The soft input needs the reward model to read the policy's vocabulary (the tiny preset's
reward model shares the policy's tokenizer; ``gpt2-imdb``'s DistilBERT does not).

Taught in notebooks/01_generating_text.ipynb.
"""

from __future__ import annotations

import torch

from ._checks import require_int, require_number, require_texts


def soft_score(reward_model, prompt_ids: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Score prompts followed by *probability rows* instead of tokens: shape ``(B,)``.

    ``reward_model`` is a sequence classifier with one reward logit (index 0) that accepts
    ``inputs_embeds`` and takes its score at the last position (GPT-2's does, when no padding
    is involved); ``prompt_ids`` ``(B, P)`` token ids, all real (no padding); ``probs``
    ``(B, T, V)`` rows on the simplex (one-hot rows give the score of that exact text). The
    response embeddings are ``probs @ W``. Differentiable in ``probs``.

    Taught in notebooks/01_generating_text.ipynb.
    """
    W = reward_model.get_input_embeddings().weight  # (V, d)
    if probs.dim() != 3 or probs.shape[-1] != W.shape[0]:
        raise ValueError(
            f"probs: expected (B, T, {W.shape[0]}) rows over the reward model's vocabulary, "
            f"got shape {tuple(probs.shape)}"
        )
    if prompt_ids.dim() != 2 or prompt_ids.shape[0] != probs.shape[0]:
        raise ValueError(
            f"prompt_ids: expected (B, P) with B={probs.shape[0]}, got {tuple(prompt_ids.shape)}"
        )
    embeds = torch.cat([W[prompt_ids], probs.to(W.dtype) @ W], dim=1)  # (B, P + T, d)
    return reward_model(inputs_embeds=embeds).logits[:, 0].float()


def optimise_soft_reward(
    preset,
    prompts: list[str],
    n_tokens: int = 12,
    steps: int = 150,
    lr: float = 0.1,
    n_samples: int = 32,
    eval_every: int = 25,
    seed: int = 0,
) -> list[dict]:
    """Gradient ascent on the soft score of free logits; real samples scored along the way.

    For each prompt (all must have the same number of tokens, so no padding enters the soft
    input), ``z`` (``(B, n_tokens, V)``) starts as the policy's next-token logits along one
    sample of its own, and Adam (``lr``) maximises ``soft_score(softmax(z))`` for ``steps``
    steps. Every ``eval_every`` steps (and at the end) ``n_samples`` responses per prompt are
    drawn from ``softmax(z)`` (independently per position) and scored as text.

    Returns one dict per evaluation: ``step``, ``soft`` (mean soft score), ``sampled`` (mean
    reward-model score of the sampled texts, exactly as tokens), ``sampled_max``, ``gold``
    (mean gold score of the sampled texts), ``entropy`` (mean per-position entropy of
    ``softmax(z)``, nats) and ``example`` (one sampled response).

    Taught in notebooks/01_generating_text.ipynb.
    """
    prompts = require_texts("prompts", prompts)
    for name, value, low in (("n_tokens", n_tokens, 1), ("steps", steps, 1),
                             ("n_samples", n_samples, 1), ("eval_every", eval_every, 1),
                             ("seed", seed, 0)):  # fmt: skip
        require_int(name, value, low)
    require_number("lr", lr, 0, low_open=True)
    if preset.gold is None:
        raise ValueError("preset: expected a preset with a gold judge (the tiny preset)")
    tokenizer, policy, rm = preset.tokenizer, preset.ref_policy, preset.reward.model
    V = rm.get_input_embeddings().weight.shape[0]
    if (
        V != policy.get_input_embeddings().weight.shape[0]
        or preset.reward.tokenizer.get_vocab() != tokenizer.get_vocab()
    ):
        raise ValueError(
            "preset: the soft input needs a reward model that reads the policy's vocabulary "
            f"(preset {preset.name!r} has another tokenizer for its reward model); use 'tiny'"
        )
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    if len({len(i) for i in ids}) != 1:
        raise ValueError(
            "prompts: expected prompts with the same number of tokens (no padding in the soft "
            f"input), got lengths {[len(i) for i in ids]}"
        )
    device = next(rm.parameters()).device
    prompt_ids = torch.tensor(ids, device=device)  # (B, P)
    P = prompt_ids.shape[1]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    was_training = rm.training
    rm.eval()
    requires = [w.requires_grad for w in rm.parameters()]
    rm.requires_grad_(False)
    try:
        with torch.no_grad():  # start: the policy's logits along one of its own samples
            torch.manual_seed(seed)
            start = policy.generate(
                prompt_ids, attention_mask=torch.ones_like(prompt_ids), do_sample=True,
                max_new_tokens=n_tokens, min_new_tokens=n_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
            logits = policy(start).logits[:, P - 1 : P - 1 + n_tokens]  # (B, T, V)
        z = logits.clone().float().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        history = []
        for step in range(steps + 1):
            soft = soft_score(rm, prompt_ids, torch.softmax(z, -1))  # (B,)
            if step % eval_every == 0 or step == steps:
                history.append(_evaluate(preset, rm, prompts, prompt_ids, z, soft, n_samples,
                                         generator, step))  # fmt: skip
            if step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            (-soft.sum()).backward()  # each prompt's logits get their own gradient
            optimizer.step()
    finally:
        for w, r in zip(rm.parameters(), requires):
            w.requires_grad_(r)
        rm.train(was_training)
    return history


@torch.no_grad()
def _evaluate(preset, rm, prompts, prompt_ids, z, soft, n_samples, generator, step) -> dict:
    B, T, V = z.shape
    probs = torch.softmax(z.detach(), -1)
    draws = torch.multinomial(probs.reshape(B * T, V).cpu(), n_samples, replacement=True,
                              generator=generator)  # (B*T, n)  # fmt: skip
    tokens = draws.reshape(B, T, n_samples).permute(0, 2, 1).reshape(B * n_samples, T)
    tokens = tokens.to(z.device)
    onehot = torch.nn.functional.one_hot(tokens, V).float()  # (B*n, T, V)
    sampled = soft_score(rm, prompt_ids.repeat_interleave(n_samples, 0), onehot)
    texts = [
        prompts[i // n_samples] + preset.tokenizer.decode(t, skip_special_tokens=True)
        for i, t in enumerate(tokens.tolist())
    ]
    gold = preset.gold(texts)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
    return {
        "step": step,
        "soft": soft.mean().item(),
        "sampled": sampled.mean().item(),
        "sampled_max": sampled.max().item(),
        "gold": gold.mean().item(),
        "entropy": entropy.item(),
        "example": texts[0][len(prompts[0]) :],
    }
