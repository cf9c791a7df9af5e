"""Three ways to get more reward out of a policy, on the same sample budget (lesson 03).

1. **Best-of-N** (no training): draw ``N`` responses per prompt and keep the one the reward
   model likes best. The model does not change; the *sampling procedure* moves away from the
   reference by at most ``log N - (N-1)/N`` nats (:func:`kl_best_of_n`, an upper bound).
2. **Rejection-sampling fine-tuning** (RFT, "pseudo-labels", expert iteration): sample, keep
   the top fraction by reward, fine-tune on them with the ordinary language-model loss,
   repeat. Iterated (re-sampled from the current policy each round) or, with
   ``offline=True``, on batches all drawn once from the starting policy (offline
   pseudo-labels, filtered behaviour cloning).
3. **REINFORCE** with the batch-mean reward as baseline: sample, weight each response's
   log-probability by ``R - mean(R)``, step, repeat (:func:`rlhf_edu.reinforce.reinforce_loss`).

Each function returns a history: one dict per point, with ``samples`` (responses drawn so
far, the x-axis of the lesson's plot), ``reward`` (mean reward-model score), ``gold`` (mean
gold score, or None), ``kl`` (mean over responses of ``sum_t (logprobs - ref_logprobs)``) and
``texts`` (prompt + response) and ``responses``. The RL loops put the policy in eval mode (dropout off, as TRL does for RL): the
log-probs that are trained are then those of the policy that sampled.

Taught in notebooks/03_why_rl.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from rlhf_edu import generation
from rlhf_edu._checks import require_int, require_number
from rlhf_edu.advantages import masked_mean, masked_sum
from rlhf_edu.kl import kl_estimate
from rlhf_edu.reinforce import reinforce_loss

RewardFn = Callable[[list[str]], torch.Tensor]


def kl_best_of_n(n: int) -> float:
    """Return ``log n - (n - 1) / n``: an upper bound on the KL (nats) of best-of-n sampling.

    ``KL(pi_best-of-n || pi) <= log n - (n - 1) / n``. Stiennon et al. 2020 (appendix G.3) state
    it as the KL of the best-of-n distribution; Beirami et al. 2024 show it is only an upper
    bound, approached when every outcome has vanishing probability (a continuum of responses,
    none likely) and strictly above the KL when some outcome has sizeable probability (lesson
    08 computes the exact KL for one token, below the bound). 0 for ``n = 1``; grows like
    ``log n``. ``n``: an int >= 1.

    Taught in notebooks/03_why_rl.ipynb.
    """
    n = require_int("n", n, 1)
    return math.log(n) - (n - 1) / n


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor):
    """Per-response KL estimate ``sum_t mask_t * (logprobs_t - ref_logprobs_t)``: shape ``(B,)``.

    The k1 estimator of :func:`rlhf_edu.kl.kl_estimate` summed over each response's tokens;
    its mean over responses sampled from the policy estimates ``KL(pi || pi_ref)`` per response.
    ``logprobs``, ``ref_logprobs``, ``mask``: ``(B, T)``.

    Taught in notebooks/03_why_rl.ipynb.
    """
    return masked_sum(kl_estimate(logprobs, ref_logprobs, "k1"), mask, dim=1)


def rft_loss(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The ordinary language-model loss on responses: token-mean cross-entropy.

    ``loss = -sum_bt mask_bt * logprobs_bt / sum_bt mask_bt``: the loss a supervised
    fine-tuning step minimises on the kept responses (``logprobs``, ``mask``: ``(B, T)``, the
    rows to learn from). Returns a 0-dim tensor.

    Taught in notebooks/03_why_rl.ipynb.
    """
    return -masked_mean(logprobs, mask)


def top_k_indicator(rewards: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """Return ``1[y_b in top-k by reward]`` as a float ``(B,)`` tensor, ``k = ceil(f * B)``.

    Ties are broken by position (``torch.topk``). ``rewards``: ``(B,)``; ``keep_fraction`` in
    (0, 1].

    Taught in notebooks/03_why_rl.ipynb.
    """
    if not (isinstance(rewards, torch.Tensor) and rewards.dim() == 1 and len(rewards) > 0):
        raise ValueError("rewards: expected a non-empty 1-dim tensor")
    keep_fraction = require_number("keep_fraction", keep_fraction, 0, 1, low_open=True)
    k = math.ceil(keep_fraction * len(rewards))
    keep = torch.zeros(len(rewards), dtype=torch.float32, device=rewards.device)
    keep[torch.topk(rewards, k).indices] = 1.0
    return keep


def best_of_n(
    policy,
    tokenizer,
    prompts: list[str],
    reward_fn: RewardFn,
    n: int,
    gold_fn: RewardFn | None = None,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Best-of-N sampling, for every N from 1 to ``n``, on one set of draws.

    Draw ``n`` responses for each prompt (``n * len(prompts)`` samples), then for each
    ``N <= n`` keep, per prompt, the highest-reward one among the first ``N``. The model is not
    trained: ``policy`` is only sampled from. Returns ``n`` dicts with ``n``,
    ``samples = N * len(prompts)``, ``reward`` and ``gold`` (means over prompts of the kept
    responses), ``kl`` = :func:`kl_best_of_n` (an upper bound on the KL), ``texts`` (the
    kept prompt + response texts) and ``responses`` (the kept responses alone).

    Taught in notebooks/03_why_rl.ipynb.
    """
    _check_prompts(prompts)
    n = require_int("n", n, 1)
    rewards, golds, texts, responses = [], [], [], []
    for i in tqdm(range(n), desc="best-of-N: drawing", disable=not progress):
        rollout = generation.sample(
            policy, tokenizer, prompts, max_new_tokens, temperature, seed=seed + i
        )
        rewards.append(_score(reward_fn, rollout.texts, "reward_fn", i))
        if gold_fn is not None:
            golds.append(_score(gold_fn, rollout.texts, "gold_fn", i))
        texts.append(rollout.texts)
        responses.append(rollout.responses)
    rewards = torch.stack(rewards)  # (n, B): draw i for prompt b
    golds = torch.stack(golds) if golds else None
    history = []
    for big_n in range(1, n + 1):
        best = rewards[:big_n].argmax(dim=0)  # (B,) which draw wins, per prompt
        cols = torch.arange(len(prompts))
        history.append(
            {
                "method": "best-of-N",
                "n": big_n,
                "samples": big_n * len(prompts),
                "reward": rewards[best, cols].mean().item(),
                "gold": None if golds is None else golds[best, cols].mean().item(),
                "kl": kl_best_of_n(big_n),
                "texts": [texts[i][b] for b, i in enumerate(best.tolist())],
                "responses": [responses[i][b] for b, i in enumerate(best.tolist())],
            }
        )
    return history


def rejection_sampling_finetune(
    policy,
    ref_policy,
    tokenizer,
    prompts: list[str],
    reward_fn: RewardFn,
    rounds: int,
    batch_size: int = 64,
    keep_fraction: float = 0.25,
    epochs: int = 2,
    lr: float = 1e-3,
    gold_fn: RewardFn | None = None,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    offline: bool = False,
) -> list[dict]:
    """Rejection-sampling fine-tuning: sample, keep the best, fine-tune on them, repeat.

    Each round: 1. sample ``batch_size`` responses (the next prompts of ``prompts``, cycling);
    2. score them; 3. keep the top ``keep_fraction`` by reward; 4. take ``epochs`` Adam steps on
    :func:`rft_loss` (token-mean cross-entropy) over the kept responses. Trains ``policy`` in
    place (pass ``preset.fresh_policy()``). ``rounds`` updates, then one more batch to measure
    the final policy: ``rounds + 1`` history dicts, point ``r`` measuring the policy after ``r``
    rounds on the batch drawn there (``samples = (r + 1) * batch_size`` drawn so far), with
    ``round``, ``loss`` (None on the last) and the keys of the module docstring.

    ``offline=True`` (offline pseudo-labels): before any update, the *starting* policy draws
    the batch of every round (the prompts and seeds the iterated run draws there), and round
    ``r`` trains on the top of that batch instead of the one the current policy just drew.
    Everything else, the points measured included, is as in the iterated run: the two differ
    only in which policy produced the training data (``method`` is ``"offline RFT"``).

    Taught in notebooks/03_why_rl.ipynb.
    """
    require_number("keep_fraction", keep_fraction, 0, 1, low_open=True)
    require_int("epochs", epochs, 1)
    if not isinstance(offline, bool):
        raise ValueError(f"offline: expected True or False, got {offline!r}")
    sampling = {"batch_size": batch_size, "max_new_tokens": max_new_tokens,
                "temperature": temperature, "seed": seed}  # fmt: skip
    fixed = []  # offline: (rollout, rewards) of every round, drawn from the starting policy
    if offline:
        _check_loop(prompts, rounds, batch_size, lr)
        policy.eval()
        for r in range(rounds):
            rollout, rewards, _ = _measure(
                r, policy, None, tokenizer, prompts, reward_fn, None, **sampling
            )
            fixed.append((rollout, rewards))

    def update(optimizer, rollout, rewards, r):
        if offline:
            rollout, rewards = fixed[r]
        keep = top_k_indicator(rewards, keep_fraction).bool()
        kept = rollout.select(keep.nonzero().squeeze(1))
        for _ in range(epochs):
            loss = rft_loss(generation.response_logprobs(policy, kept, temperature), kept.mask)
            _step(optimizer, loss, r)
        return loss

    name = "offline RFT" if offline else "RFT"
    return _train_rounds(
        name, name, update, policy, ref_policy, tokenizer, prompts, reward_fn, gold_fn,
        rounds=rounds, lr=lr, progress=progress, **sampling,
    )  # fmt: skip


def reinforce_train(
    policy,
    ref_policy,
    tokenizer,
    prompts: list[str],
    reward_fn: RewardFn,
    rounds: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    gold_fn: RewardFn | None = None,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """REINFORCE with the batch-mean reward as baseline: sample, score, one step, repeat.

    Each round: 1. sample ``batch_size`` responses; 2. score them (``R``, one per response);
    3. one Adam step on ``reinforce_loss(logprobs, R, mask, baseline=mean(R))``, whose gradient
    is ``-mean_b((R_b - mean R) * grad log p(y_b))``. Trains ``policy`` in place; history as
    in :func:`rejection_sampling_finetune` (``method`` = ``"REINFORCE"``).

    Taught in notebooks/03_why_rl.ipynb.
    """

    def update(optimizer, rollout, rewards, r):
        logprobs = generation.response_logprobs(policy, rollout, temperature)
        loss = reinforce_loss(logprobs, rewards, rollout.mask, baseline=rewards.mean())
        _step(optimizer, loss, r)
        return loss

    return _train_rounds(
        "REINFORCE", "REINFORCE", update, policy, ref_policy, tokenizer, prompts,
        reward_fn, gold_fn, rounds=rounds, lr=lr, batch_size=batch_size,
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, progress=progress,
    )  # fmt: skip


def _train_rounds(
    method: str,
    desc: str,
    update: Callable,
    policy,
    ref_policy,
    tokenizer,
    prompts,
    reward_fn,
    gold_fn,
    *,
    rounds: int,
    lr: float,
    progress: bool,
    **sampling,
) -> list[dict]:
    """The loop RFT and REINFORCE share: ``rounds`` updates, then one batch more to measure.

    Round ``r`` samples and measures its batch (:func:`_measure`); for ``r < rounds``,
    ``update(optimizer, rollout, rewards, r)`` trains ``policy`` on it and returns the loss of
    its last Adam step.
    """
    _check_loop(prompts, rounds, sampling["batch_size"], lr)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    policy.eval()  # dropout off: train the log-probs of the policy that sampled
    history = []
    bar = tqdm(range(rounds + 1), desc=desc, disable=not progress)
    for r in bar:
        rollout, rewards, point = _measure(
            r, policy, ref_policy, tokenizer, prompts, reward_fn, gold_fn, **sampling
        )
        point.update(method=method, round=r, loss=None)
        if r < rounds:
            point["loss"] = update(optimizer, rollout, rewards, r).item()
        history.append(point)
        bar.set_postfix(reward=f"{point['reward']:.2f}", kl=f"{point['kl']:.2f}")
    return history


def _check_prompts(prompts) -> None:
    if isinstance(prompts, str) or not prompts:
        raise ValueError("prompts: expected a non-empty list of strings")


def _check_loop(prompts, rounds, batch_size, lr) -> None:
    _check_prompts(prompts)
    require_int("rounds", rounds, 0)
    require_int("batch_size", batch_size, 1)
    require_number("lr", lr, 0, low_open=True)


def _score(fn: RewardFn, texts: list[str], name: str, step: int) -> torch.Tensor:
    scores = torch.as_tensor(fn(texts), dtype=torch.float32).detach().cpu()
    if scores.shape != (len(texts),):
        raise ValueError(
            f"{name}: expected one score per text, shape ({len(texts)},), got {tuple(scores.shape)}"
        )
    if not bool(torch.isfinite(scores).all()):
        raise FloatingPointError(f"step {step}: {name} returned NaN or infinite scores")
    return scores


def _measure(
    r,
    policy,
    ref_policy,
    tokenizer,
    prompts,
    reward_fn,
    gold_fn,
    *,
    batch_size,
    max_new_tokens,
    temperature,
    seed,
):
    """Sample round ``r``'s batch and measure it: (rollout, rewards, history point); with
    ``ref_policy=None`` only (rollout, rewards, None)."""
    start = (r * batch_size) % len(prompts)
    batch = [prompts[(start + i) % len(prompts)] for i in range(batch_size)]
    rollout = generation.sample(
        policy, tokenizer, batch, max_new_tokens, temperature, seed=seed + r
    )
    rewards = _score(reward_fn, rollout.texts, "reward_fn", r).to(rollout.logprobs.device)
    if ref_policy is None:  # only the batch and its rewards are wanted
        return rollout, rewards, None
    gold = None if gold_fn is None else _score(gold_fn, rollout.texts, "gold_fn", r).mean().item()
    with torch.no_grad():
        ref_logprobs = generation.response_logprobs(ref_policy, rollout, temperature)
    kl = sequence_kl(rollout.logprobs, ref_logprobs, rollout.mask).mean().item()
    point = {
        "samples": (r + 1) * batch_size,
        "reward": rewards.mean().item(),
        "gold": gold,
        "kl": kl,
        "texts": rollout.texts,
        "responses": rollout.responses,
    }
    return rollout, rewards, point


def _step(optimizer, loss: torch.Tensor, r: int) -> None:
    if not bool(torch.isfinite(loss)):
        raise FloatingPointError(f"step {r}: the loss is {loss.item()} (NaN or infinite)")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
