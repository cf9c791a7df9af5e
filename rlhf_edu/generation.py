"""Sampling responses from a causal LM, and the per-token log-probs of given responses.

Shapes: prompts are left-padded ``(B, P)``; responses are ``(B, T)``, right-padded with the
pad token after the first EOS; ``mask`` is 1 on response tokens up to and including EOS.

Prompts: an empty prompt ``""`` starts from the BOS token alone, as GPT-2 does for an empty
context (the text is then an unconditional sample). A prompt whose tokens plus
``max_new_tokens`` do not fit the model's context (``n_positions``; 128 for the tiny policy)
is refused with a ``ValueError`` naming the limit; nothing is truncated silently.

The log-prob of a sampled token is taken under the temperature-scaled policy,
``log_softmax(logits / temperature)`` (as TRL does); top-k and top-p only filter what is
drawn. The log-prob of a whole response is the masked sum over its tokens:
``log p(y | x) = sum_t mask_t * log p(y_t | x, y_<t)``.

Taught in notebooks/01_generating_text.ipynb.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ._checks import require_int, require_number, require_texts

# Models whose logits are their output embedding applied to the last hidden state as
# ``output_hidden_states`` reports it (GPT-2's ``lm_head``; no scaling, no softcap): the LM head
# can run on chosen positions alone, and its input is the state a value head reads.
LINEAR_HEAD_MODEL_TYPES = ("gpt2",)


@dataclass
class Rollout:
    """A batch of sampled responses.

    Attributes:
        prompt_ids: ``(B, P)`` left-padded prompt tokens.
        prompt_mask: ``(B, P)`` 1 on real prompt tokens.
        response_ids: ``(B, T)`` sampled tokens, pad after the first EOS.
        mask: ``(B, T)`` 1 on response tokens up to and including EOS (a prefix of ones).
        logprobs: ``(B, T)`` log-probs of the sampled tokens (0 where ``mask`` is 0).
        prompts, responses: the decoded texts (special tokens dropped).
        hidden: ``(B, T, H)`` the sampling model's last hidden states at the positions that
            predict each response token (what ``value_head.response_hidden_states`` recomputes),
            kept only by ``sample(..., keep_hidden=True)``; otherwise None.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor
    prompts: list[str]
    responses: list[str]
    hidden: torch.Tensor | None = None

    @property
    def texts(self) -> list[str]:
        """Prompt and response joined: what a reward model or judge reads."""
        return [p + r for p, r in zip(self.prompts, self.responses)]

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    def select(self, index) -> Rollout:
        """Return the rows at ``index`` (a slice, a list or a tensor of row numbers)."""
        if isinstance(index, slice):
            rows = list(range(len(self)))[index]
        else:
            rows = torch.as_tensor(index).tolist()
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:  # hidden: None unless sampling kept it
                v = [v[i] for i in rows] if isinstance(v, list) else v[rows]
            out[f.name] = v
        return Rollout(**out)


def _check_sampling(temperature: float, top_k: int, top_p: float, max_new_tokens: int) -> None:
    require_number("temperature", temperature, 0, low_open=True)
    require_int("top_k", top_k, 0)  # 0 turns top-k off
    require_number("top_p", top_p, 0, 1, low_open=True)
    require_int("max_new_tokens", max_new_tokens, 1)


def context_length(model) -> int | None:
    """The number of positions ``model`` can attend to (``n_positions`` for GPT-2), or None."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def require_fits_context(model, n_tokens: int, max_new_tokens: int, name: str = "prompts") -> None:
    """Raise unless a prompt of ``n_tokens`` plus ``max_new_tokens`` fits ``model``'s context."""
    limit = context_length(model)
    if limit is not None and n_tokens + max_new_tokens > limit:
        remedies = []
        if max_new_tokens < limit:
            remedies.append(f"shorten the prompt to at most {limit - max_new_tokens} tokens")
        if n_tokens < limit:
            remedies.append(f"lower max_new_tokens to at most {limit - n_tokens}")
        raise ValueError(
            f"{name}: {n_tokens} prompt tokens + max_new_tokens={max_new_tokens} do not fit the "
            f"model's context of {limit} positions; "
            + (" or ".join(remedies) or "shorten the prompt and lower max_new_tokens")
        )


def require_prompts_fit(
    model, attention_mask: torch.Tensor, max_new_tokens: int, name: str = "prompts[{i}]"
) -> None:
    """Raise unless the longest prompt (a row of the ``(B, P)`` ``attention_mask``) plus
    ``max_new_tokens`` fits ``model``'s context; ``name`` is formatted with the row ``i``."""
    lengths = attention_mask.sum(1)
    i = int(lengths.argmax())
    require_fits_context(model, int(lengths[i]), max_new_tokens, name=name.format(i=i))


def encode_prompts(tokenizer, prompts: list[str]):
    """Tokenize ``prompts`` left-padded (``input_ids`` and ``attention_mask``, ``(B, P)``).

    An empty prompt is encoded as the BOS token alone: GPT-2's start for an empty context.
    """
    prompts = require_texts("prompts", prompts)
    if "" in prompts:
        if tokenizer.bos_token is None:
            raise ValueError(
                f"prompts[{prompts.index('')}]: an empty prompt starts from the BOS token, "
                "and this tokenizer has none; give a non-empty prompt"
            )
        prompts = [p or tokenizer.bos_token for p in prompts]
    tokenizer.padding_side = "left"
    return tokenizer(prompts, return_tensors="pt", padding=True)


def response_mask(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Return the ``(B, T)`` mask: 1 up to and including the first EOS, 0 after."""
    is_eos = (response_ids == eos_token_id).long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos  # EOS strictly before position t
    return (eos_before == 0).long()


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: ``cumsum(mask) - 1``, 0 on padding (as generate does)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def sample(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    keep_hidden: bool = False,
) -> Rollout:
    """Sample one response per prompt, batched and left-padded, with the KV cache.

    Returns a :class:`Rollout` with the response ids, their mask (ends at EOS) and the
    per-token log-probs ``log_softmax(logits / temperature)`` of the sampled tokens.
    ``prompts`` is a non-empty list of strings; ``""`` samples from the BOS token alone, and
    a prompt that with ``max_new_tokens`` exceeds the model's context is refused.
    ``keep_hidden=True`` also keeps the last hidden states that produced each token's logits
    (``Rollout.hidden``): the PPO trainer reads its values ``V(s_t)`` off them (lesson 07).
    They are the LM head's input at each step, caught by a hook, for models whose head reads
    the last hidden state as it is (``LINEAR_HEAD_MODEL_TYPES``); any other model, or a head
    that did not run once per new token, leaves ``hidden`` None.

    Taught in notebooks/01_generating_text.ipynb.
    """
    prompts = require_texts("prompts", prompts)
    _check_sampling(temperature, top_k, top_p, max_new_tokens)
    if seed is not None:
        require_int("seed", seed, 0)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError("tokenizer: expected a pad token distinct from EOS (see presets)")
    device = next(model.parameters()).device
    enc = encode_prompts(tokenizer, prompts)
    require_prompts_fit(model, enc["attention_mask"], max_new_tokens)
    enc = enc.to(device)
    if seed is not None:
        torch.manual_seed(seed)
    kept: list[tuple[int, torch.Tensor]] = []  # keep_hidden: per head call, its input's last
    hook = None  # position; only the last layer's states, not every layer's (output_hidden_states)
    if keep_hidden and getattr(model.config, "model_type", None) in LINEAR_HEAD_MODEL_TYPES:
        hook = model.get_output_embeddings().register_forward_pre_hook(
            lambda head, args, kwargs: _keep_last(kept, args, kwargs), with_kwargs=True
        )
    try:
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            use_cache=True,
            return_dict_in_generate=True,
            output_logits=True,
        )
    finally:
        if hook is not None:
            hook.remove()
    P = enc["input_ids"].shape[1]
    response_ids = out.sequences[:, P:]
    mask = response_mask(response_ids, tokenizer.eos_token_id)
    response_ids = response_ids.masked_fill(mask == 0, tokenizer.pad_token_id)
    logits = torch.stack(out.logits, dim=1).float()  # (B, T, V), raw (before warpers)
    logprobs = token_logprobs(logits / temperature, response_ids) * mask
    hidden = _kept_hidden(kept, *response_ids.shape) if keep_hidden else None
    return Rollout(
        prompt_ids=enc["input_ids"],
        prompt_mask=enc["attention_mask"],
        response_ids=response_ids,
        mask=mask,
        logprobs=logprobs,
        prompts=prompts,
        responses=tokenizer.batch_decode(response_ids, skip_special_tokens=True),
        hidden=hidden,
    )


def _keep_last(kept: list, args: tuple, kwargs: dict) -> None:
    """A forward pre-hook on the LM head: keep its input's length and last position ``(B, H)``."""
    x = args[0] if args else next(iter(kwargs.values()))
    kept.append((x.shape[1], x[:, -1].clone()))  # a copy: the prompt pass's (B, P, H) is freed


def _kept_hidden(kept: list, B: int, T: int) -> torch.Tensor | None:
    """``(B, T, H)`` from the head's calls: the prompt pass, then one position per new token.
    None for any other pattern (assisted decoding, a head called twice a step), so that the
    values come from a forward pass instead; a device that runs one extra step (MPS) is
    trimmed to ``T``."""
    kept = kept[:T]
    if len(kept) != T or any(n != 1 for n, _ in kept[1:]) or any(h.shape[0] != B for _, h in kept):
        return None
    return torch.stack([h for _, h in kept], dim=1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Return ``log_softmax(logits)[b, t, tokens[b, t]]``: shape ``(B, T)``."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def response_logits(model, prompt_ids, prompt_mask, response_ids, mask) -> torch.Tensor:
    """Run ``model`` on prompt + response; return the logits that predict each response token.

    Shape ``(B, T, V)``: position t holds the distribution over ``response_ids[:, t]``.
    """
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, mask.to(prompt_mask.dtype)], dim=1)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    P = prompt_ids.shape[1]
    return out.logits[:, P - 1 : -1]


def check_logprob_args(model, rollout, temperature) -> None:
    """Raise unless ``rollout`` is a :class:`Rollout` that fits ``model``'s context and
    ``temperature`` is a number > 0 (the checks of :func:`response_logprobs`)."""
    if not isinstance(rollout, Rollout):
        raise ValueError(f"rollout: expected a Rollout (from sample), got {type(rollout).__name__}")
    require_number("temperature", temperature, 0, low_open=True)
    require_fits_context(
        model, rollout.prompt_ids.shape[1], rollout.response_ids.shape[1], name="rollout"
    )


def response_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs ``(B, T)`` of ``rollout``'s responses under any causal LM.

    Used for the reference model, and for the policy during PPO's epochs. Agrees with the
    log-probs that :func:`sample` returns when ``model`` is the sampling model.

    Taught in notebooks/01_generating_text.ipynb.
    """
    check_logprob_args(model, rollout, temperature)
    logits = response_logits(
        model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.mask
    )
    return token_logprobs(logits / temperature, rollout.response_ids) * rollout.mask
