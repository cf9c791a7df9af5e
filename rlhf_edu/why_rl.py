"""Ways to get more reward out of a policy, on the same sample budget (lesson 03).

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
4. **PPO** (:func:`ppo_train`), lesson 07's trainer on batches drawn as REINFORCE's are (same
   prompts and sampling seeds): what lessons 04-07 add to REINFORCE, seen early.

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
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from rlhf_edu import generation
from rlhf_edu._checks import require_int, require_number
from rlhf_edu.advantages import masked_mean, masked_sum
from rlhf_edu.kl import kl_estimate
from rlhf_edu.reinforce import reinforce_loss
from rlhf_edu.trainer import PPOConfig, PPOTrainer

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
    draws: list[Draw] | None = None,
) -> list[dict]:
    """Best-of-N sampling, for every N from 1 to ``n``, on one set of draws.

    Draw ``n`` responses for each prompt (``n * len(prompts)`` samples), then for each
    ``N <= n`` keep, per prompt, the highest-reward one among the first ``N``. The model is not
    trained: ``policy`` is only sampled from. Returns ``n`` dicts with ``n``,
    ``samples = N * len(prompts)``, ``reward`` and ``gold`` (means over prompts of the kept
    responses), ``kl`` = :func:`kl_best_of_n` (an upper bound on the KL), ``texts`` (the
    kept prompt + response texts) and ``responses`` (the kept responses alone).

    The draws are :func:`start_draws` with ``batch_size = len(prompts)``: draw ``i`` is every
    prompt once, sampling seed ``seed + i``. ``draws``: those draws, already made (the first
    ``n`` are used), instead of drawing them again.

    Taught in notebooks/03_why_rl.ipynb.
    """
    _check_prompts(prompts)
    n = require_int("n", n, 1)
    if draws is None:
        draws = start_draws(
            policy, tokenizer, prompts, reward_fn, n, gold_fn=gold_fn,
            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, progress=progress,
        )  # fmt: skip
    draws = _check_draws(draws, n, prompts, len(prompts), seed, gold_fn)
    rewards = torch.stack([d.rewards for d in draws])  # (n, B): draw i for prompt b
    golds = None if gold_fn is None else torch.stack([d.golds for d in draws])
    texts = [d.rollout.texts for d in draws]
    responses = [d.rollout.responses for d in draws]
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
    draws: list[Draw] | None = None,
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

    ``draws``: :func:`start_draws` of this ``policy`` with the same prompts, ``batch_size``,
    sampling settings and ``seed``, already made: round 0 (and, offline, every training
    round) takes its batch from them instead of drawing it again.

    Taught in notebooks/03_why_rl.ipynb.
    """
    require_number("keep_fraction", keep_fraction, 0, 1, low_open=True)
    require_int("epochs", epochs, 1)
    if not isinstance(offline, bool):
        raise ValueError(f"offline: expected True or False, got {offline!r}")
    sampling = {"batch_size": batch_size, "max_new_tokens": max_new_tokens,
                "temperature": temperature, "seed": seed}  # fmt: skip
    _check_loop(prompts, rounds, batch_size, lr)
    fixed = []  # offline: the batch of every round, drawn from the starting policy
    if offline and rounds:
        if draws is None:
            draws = start_draws(
                policy, tokenizer, prompts, reward_fn, rounds, gold_fn=gold_fn, progress=False,
                **sampling,
            )  # fmt: skip
        fixed = _check_draws(draws, rounds, prompts, batch_size, seed, None)

    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)

    def update(rollout, rewards, r):
        if offline:
            rollout, rewards = fixed[r].rollout, fixed[r].rewards
        keep = top_k_indicator(rewards, keep_fraction).bool()
        kept = rollout.select(keep.nonzero().squeeze(1))
        for _ in range(epochs):
            loss = rft_loss(generation.response_logprobs(policy, kept, temperature), kept.mask)
            _step(optimizer, loss, r)
        return loss

    name = "offline RFT" if offline else "RFT"
    return _train_rounds(
        name, name, update, policy, ref_policy, tokenizer, prompts, reward_fn, gold_fn,
        rounds=rounds, lr=lr, progress=progress, draws=draws, **sampling,
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
    draws: list[Draw] | None = None,
) -> list[dict]:
    """REINFORCE with the batch-mean reward as baseline: sample, score, one step, repeat.

    Each round: 1. sample ``batch_size`` responses; 2. score them (``R``, one per response);
    3. one Adam step on ``reinforce_loss(logprobs, R, mask, baseline=mean(R))``, whose gradient
    is ``-mean_b((R_b - mean R) * grad log p(y_b))``. Trains ``policy`` in place; history as
    in :func:`rejection_sampling_finetune` (``method`` = ``"REINFORCE"``), ``draws`` too.

    Taught in notebooks/03_why_rl.ipynb.
    """

    _check_loop(prompts, rounds, batch_size, lr)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)

    def update(rollout, rewards, r):
        logprobs = generation.response_logprobs(policy, rollout, temperature)
        loss = reinforce_loss(logprobs, rewards, rollout.mask, baseline=rewards.mean())
        _step(optimizer, loss, r)
        return loss

    return _train_rounds(
        "REINFORCE", "REINFORCE", update, policy, ref_policy, tokenizer, prompts,
        reward_fn, gold_fn, rounds=rounds, lr=lr, batch_size=batch_size,
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, progress=progress,
        draws=draws,
    )  # fmt: skip


def ppo_train(
    policy,
    ref_policy,
    tokenizer,
    prompts: list[str],
    reward_fn: RewardFn,
    rounds: int,
    batch_size: int = 64,
    lr: float = 3e-4,
    gold_fn: RewardFn | None = None,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    draws: list[Draw] | None = None,
    **ppo_settings,
) -> list[dict]:
    """PPO (lesson 07) on the same rounds as RFT and REINFORCE: one PPO step per round.

    Each round's batch, drawn and measured exactly as in :func:`reinforce_train` (same
    prompts, same sampling seeds), is the batch of one :meth:`PPOTrainer.ppo_step
    <rlhf_edu.trainer.PPOTrainer.ppo_step>`: a KL-shaped reward (``beta``, lesson 05), a value
    head and GAE (lesson 06), ``ppo_epochs`` passes of clipped updates on minibatches (lesson
    04), with the trainer's own AdamW at ``lr``. ``ppo_settings``: any other
    :class:`~rlhf_edu.trainer.PPOConfig` field (``beta``, ``ppo_epochs``, ``mini_batch_size``,
    ...). Trains ``policy`` in place; history as in :func:`rejection_sampling_finetune`
    (``method`` = ``"PPO"``, ``loss`` the step's mean policy loss), ``draws`` too.

    Taught in notebooks/03_why_rl.ipynb.
    """
    _check_loop(prompts, rounds, batch_size, lr)
    config = PPOConfig(
        steps=max(rounds, 1), batch_size=batch_size, lr=lr, max_new_tokens=max_new_tokens,
        temperature=temperature, seed=seed, **ppo_settings,
    )  # fmt: skip
    trainer = PPOTrainer(config, policy, ref_policy, tokenizer, reward_fn, prompts)

    def update(rollout, rewards, r):  # the trainer steps with its own AdamW
        return torch.tensor(trainer.ppo_step(rollout)["loss/policy_avg"])

    return _train_rounds(
        "PPO", "PPO", update, policy, ref_policy, tokenizer, prompts, reward_fn, gold_fn,
        rounds=rounds, lr=lr, batch_size=batch_size, max_new_tokens=max_new_tokens,
        temperature=temperature, seed=seed, progress=progress, draws=draws,
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
    draws: list[Draw] | None = None,
    **sampling,
) -> list[dict]:
    """The loop RFT, REINFORCE and PPO share: ``rounds`` updates, then one batch more to measure.

    Round ``r`` samples and measures its batch (:func:`_measure`); for ``r < rounds``,
    ``update(rollout, rewards, r)`` trains ``policy`` on it with the method's own optimizer and
    returns the loss of its last step (PPO: its step's mean policy loss). Round 0 takes its batch from
    ``draws[0]`` when given (the policy has not changed yet).
    """
    _check_loop(prompts, rounds, sampling["batch_size"], lr)
    if draws is not None:
        draws = _check_draws(draws, 1, prompts, sampling["batch_size"], sampling["seed"], gold_fn)
    policy.eval()  # dropout off: train the log-probs of the policy that sampled
    history = []
    bar = tqdm(range(rounds + 1), desc=desc, disable=not progress)
    for r in bar:
        drawn = draws[0] if draws is not None and r == 0 else None
        rollout, rewards, point = _measure(
            r, policy, ref_policy, tokenizer, prompts, reward_fn, gold_fn, drawn, **sampling
        )
        point.update(method=method, round=r, loss=None)
        if r < rounds:
            point["loss"] = update(rollout, rewards, r).item()
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


class Draw(NamedTuple):
    """One batch drawn by a policy before training changes it (:func:`start_draws`)."""

    rollout: generation.Rollout
    rewards: torch.Tensor
    """``(B,)`` reward-model scores."""
    golds: torch.Tensor | None
    """``(B,)`` gold scores, or None (no ``gold_fn``)."""
    seed: int
    """The sampling seed it was drawn with (``seed + r`` for round ``r``)."""


def start_draws(
    policy,
    tokenizer,
    prompts: list[str],
    reward_fn: RewardFn,
    n: int,
    batch_size: int | None = None,
    gold_fn: RewardFn | None = None,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[Draw]:
    """The batches of rounds ``0 .. n-1`` as ``policy``, unchanged, draws them: ``n`` Draws.

    Round ``r``'s batch is the next ``batch_size`` prompts of ``prompts`` (cycling; default:
    all of them) sampled with seed ``seed + r`` in eval mode (dropout off), scored by
    ``reward_fn`` (and ``gold_fn``).
    These are best-of-N's draws and, while the policy is still the starting one, the batches
    the training loops draw: lesson 03 draws them once per seed and hands them to every
    method (``draws=``), instead of sampling the same batches again.

    Taught in notebooks/03_why_rl.ipynb.
    """
    _check_prompts(prompts)
    n = require_int("n", n, 1)
    batch_size = len(prompts) if batch_size is None else require_int("batch_size", batch_size, 1)
    policy.eval()  # dropout off, as the training loops sample
    draws = []
    for r in tqdm(range(n), desc="drawing", disable=not progress):
        draws.append(_draw(r, policy, tokenizer, prompts, reward_fn, gold_fn, batch_size,
                           max_new_tokens, temperature, seed))  # fmt: skip
    return draws


def _round_prompts(prompts, r, batch_size) -> list[str]:
    start = (r * batch_size) % len(prompts)
    return [prompts[(start + i) % len(prompts)] for i in range(batch_size)]


def _draw(r, policy, tokenizer, prompts, reward_fn, gold_fn, batch_size, max_new_tokens,
          temperature, seed) -> Draw:  # fmt: skip
    rollout = generation.sample(
        policy, tokenizer, _round_prompts(prompts, r, batch_size), max_new_tokens, temperature,
        seed=seed + r,
    )  # fmt: skip
    rewards = _score(reward_fn, rollout.texts, "reward_fn", r).to(rollout.logprobs.device)
    golds = None if gold_fn is None else _score(gold_fn, rollout.texts, "gold_fn", r)
    return Draw(rollout, rewards, golds, seed + r)


def _check_draws(draws, n, prompts, batch_size, seed, gold_fn) -> list[Draw]:
    """The first ``n`` of ``draws``, after checking they are this run's rounds 0 .. n-1."""
    if not isinstance(draws, (list, tuple)) or len(draws) < n:
        got = len(draws) if isinstance(draws, (list, tuple)) else type(draws).__name__
        raise ValueError(f"draws: expected a list of at least {n} Draws (start_draws), got {got}")
    for r, d in enumerate(draws[:n]):
        if not isinstance(d, Draw):
            raise ValueError(f"draws[{r}]: expected a Draw (start_draws), got {type(d).__name__}")
        if d.seed != seed + r or d.rollout.prompts != _round_prompts(prompts, r, batch_size):
            raise ValueError(
                f"draws[{r}]: drawn with seed {d.seed} for other prompts or another batch size; "
                f"expected round {r}'s batch of {batch_size} prompts, seed {seed + r} "
                "(start_draws with this run's prompts, batch_size and seed)"
            )
        if gold_fn is not None and d.golds is None:
            raise ValueError(f"draws[{r}]: has no gold scores; pass gold_fn to start_draws")
    return list(draws[:n])


def _measure(
    r,
    policy,
    ref_policy,
    tokenizer,
    prompts,
    reward_fn,
    gold_fn,
    drawn=None,
    *,
    batch_size,
    max_new_tokens,
    temperature,
    seed,
):
    """Sample round ``r``'s batch (or take ``drawn``, a :class:`Draw`) and measure it:
    (rollout, rewards, history point)."""
    if drawn is None:
        drawn = _draw(r, policy, tokenizer, prompts, reward_fn, gold_fn, batch_size,
                      max_new_tokens, temperature, seed)  # fmt: skip
    rollout, rewards = drawn.rollout, drawn.rewards
    gold = None if gold_fn is None else drawn.golds.mean().item()
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
