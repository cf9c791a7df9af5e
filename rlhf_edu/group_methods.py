"""GRPO and RLOO: PPO's clipped update with a group baseline instead of a value model.

Each prompt is sampled ``group_size`` times; a response's advantage is its reward relative
to the other responses to the same prompt (:func:`rlhf_edu.beyond.group_advantages`), one
number per sequence, broadcast to all its tokens. No value head, no GAE. One step:

1. draw ``prompts_per_step`` prompts, each repeated ``group_size`` times (consecutive groups);
2. sample the responses (at most ``max_new_tokens``, or a length limit drawn from
   ``min_new_tokens..max_new_tokens`` as :class:`rlhf_edu.trainer.PPOConfig` draws it),
   keeping their log-probs ``old_logprobs``;
3. reference log-probs ``ref_logprobs`` under the frozen reference policy;
4. reward-model scores; RLOO puts the KL in the reward, ``r = score - beta * sum_t k1_t``
   (Ahmadian et al. 2024); GRPO keeps ``r = score``;
5. sequence advantages within each group (GRPO: ``(r - mean) / (std + 1e-4)``, or
   ``r - mean`` with ``scale_rewards=False``; RLOO: ``r - mean of the others``), broadcast over
   the valid tokens; with ``drop_zero_std_groups`` the groups whose rewards are all equal are
   left out of step 6 (DAPO's dynamic sampling);
6. ``epochs`` epochs of shuffled minibatches: the per-token loss is minus PPO's clipped
   surrogate (:func:`rlhf_edu.ppo.clipped_surrogate`; ``clip_eps_high`` for DAPO's clip-higher;
   GSPO's sequence ratio with ``importance_sampling="sequence"``), plus ``beta * k3`` for GRPO,
   the KL as a loss term (Shao et al. 2024, DeepSeekMath, eq. 3-4); it is reduced to one number by
   ``loss_aggregation`` (:func:`rlhf_edu.advantages.masked_aggregate`: GRPO's per-sequence mean
   by default, PPO's token mean, or Dr. GRPO's constant); one AdamW step per minibatch;
7. metrics (named as TRL names PPO's).

Taught in notebooks/08_beyond_ppo.ipynb; the knobs one at a time in notebooks/10_after_ppo.ipynb.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from . import kl, ppo
from ._checks import require_choice, require_int, require_number
from .advantages import LOSS_AGGREGATIONS, masked_aggregate
from .beyond import GROUP_KINDS, group_advantages
from .generation import response_logprobs, sample
from .scoring import check_scores
from .trainer import _check_finite

IMPORTANCE_SAMPLING = ("token", "sequence")


@dataclass
class GroupConfig:
    """Settings of a GRPO or RLOO run. Defaults suit the tiny preset on a CPU.

    Taught in notebooks/08_beyond_ppo.ipynb.
    """

    steps: int = 30
    """Number of steps (one batch of fresh samples each)."""
    prompts_per_step: int = 16
    """Distinct prompts per step; the batch is ``prompts_per_step * group_size`` responses."""
    group_size: int = 4
    """Responses per prompt, G. DeepSeekMath: 64; RLOO: 2 to 4; here 4 to 8."""
    epochs: int = 4
    """Passes over each batch (PPO's ``ppo_epochs``). TRL's GRPO default is 1 (ratio stays 1)."""
    mini_batch_size: int = 16
    """Responses per gradient step; must divide ``prompts_per_step * group_size``."""
    lr: float = 3e-4
    """AdamW learning rate. The tiny policy tolerates ~1e-4 to 1e-3."""
    clip_eps: float = 0.2
    """Policy clip range eps in clip(r, 1-eps, 1+eps). Usually 0.1 to 0.3."""
    clip_eps_high: float | None = None
    """None: the upper range is ``clip_eps``. A number: clip(r, 1-eps, 1+eps_high), DAPO's
    clip-higher (Yu et al. 2025: 0.28 with eps = 0.2); see :func:`rlhf_edu.ppo.clipped_surrogate`."""
    importance_sampling: str = "token"
    """``"token"``: PPO's per-token ratio (GRPO). ``"sequence"``: GSPO's one ratio per response,
    the geometric mean of its token ratios (Zheng et al. 2025, :func:`rlhf_edu.ppo.sequence_ratio`;
    GSPO clips it at eps ~ 3e-4 to 4e-4)."""
    drop_zero_std_groups: bool = False
    """True: groups whose responses all got the same reward (advantage 0 for each) are left out
    of the update, the part of DAPO's dynamic sampling that fits a fixed budget (DAPO also draws
    more prompts to refill the batch; here the batch just shrinks). ``objective/frac_zero_std``
    is logged either way."""
    beta: float = 0.05
    """KL weight: a k3 loss term (GRPO) or a penalty in the reward (RLOO). Usually 0 to 0.1."""
    max_new_tokens: int = 24
    """Response length limit (tokens)."""
    min_new_tokens: int | None = None
    """None (the default): every step samples up to ``max_new_tokens``. An int: each step draws
    its length limit uniformly from ``min_new_tokens..max_new_tokens``, as
    :class:`rlhf_edu.trainer.PPOConfig` does with the same field; set both configs alike when
    comparing methods."""
    loss_aggregation: str = "sequence_mean"
    """How the per-token loss becomes one number (:func:`rlhf_edu.advantages.masked_aggregate`):
    ``"sequence_mean"`` (the default: each response's token mean, then the mean over responses,
    as the original GRPO, Shao et al. 2024), ``"token_mean"`` (one mean over all tokens, as PPO
    and DAPO) or ``"constant"`` (sum over tokens / (responses * max_new_tokens), Dr. GRPO, Liu et
    al. 2025)."""
    scale_rewards: bool = True
    """GRPO only: divide by the group's std (True, the original GRPO) or only subtract the group
    mean (False, Dr. GRPO). RLOO never divides (must stay True)."""
    temperature: float = 1.0
    """Sampling temperature; the log-probs are of logits / temperature."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm. Usually 0.5 to 1."""
    seed: int = 0
    """Seeds the prompt order, sampling and minibatch shuffling."""

    def __post_init__(self):
        for name in ("steps", "prompts_per_step", "epochs", "mini_batch_size", "max_new_tokens"):
            require_int(name, getattr(self, name), 1)
        if self.min_new_tokens is not None:
            require_int("min_new_tokens", self.min_new_tokens, 1)
            if self.min_new_tokens > self.max_new_tokens:
                raise ValueError(
                    f"min_new_tokens: expected <= max_new_tokens={self.max_new_tokens}, "
                    f"got {self.min_new_tokens}"
                )
        require_choice("loss_aggregation", self.loss_aggregation, LOSS_AGGREGATIONS)
        if not isinstance(self.scale_rewards, bool):
            raise ValueError(f"scale_rewards: expected True or False, got {self.scale_rewards!r}")
        require_int("group_size", self.group_size, 2)
        if self.batch_size % self.mini_batch_size:
            raise ValueError(
                f"mini_batch_size: expected a divisor of prompts_per_step * group_size = "
                f"{self.batch_size}, got {self.mini_batch_size}"
            )
        require_number("clip_eps", self.clip_eps, 0, 1, low_open=True, high_open=True)
        if self.clip_eps_high is not None:
            require_number("clip_eps_high", self.clip_eps_high, 0, low_open=True)
        require_choice("importance_sampling", self.importance_sampling, IMPORTANCE_SAMPLING)
        if not isinstance(self.drop_zero_std_groups, bool):
            raise ValueError(
                f"drop_zero_std_groups: expected True or False, got {self.drop_zero_std_groups!r}"
            )
        for name in ("lr", "temperature"):
            require_number(name, getattr(self, name), 0, low_open=True)
        for name in ("beta", "max_grad_norm"):
            require_number(name, getattr(self, name), 0)

    @property
    def batch_size(self) -> int:
        """Responses per step: ``prompts_per_step * group_size``."""
        return self.prompts_per_step * self.group_size


class GroupTrainer:
    """Train ``policy`` with GRPO or RLOO (``kind``) against ``reward_fn``, near ``ref_policy``.

    The same arguments as :class:`rlhf_edu.trainer.PPOTrainer` (without a value head), and the
    same interface: ``train()``, ``history`` (one metric dict per step), ``callbacks`` (each
    called as ``fn(trainer, metrics)`` after every step), ``step``, ``policy``.

    Taught in notebooks/08_beyond_ppo.ipynb.
    """

    def __init__(
        self,
        kind: str,
        config: GroupConfig,
        policy,
        ref_policy,
        tokenizer,
        reward_fn: Callable,
        prompts: list[str],
        gold_fn: Callable | None = None,
    ):
        if kind not in GROUP_KINDS:
            raise ValueError(f"kind: expected one of {GROUP_KINDS}, got {kind!r}")
        if not isinstance(config, GroupConfig):
            raise ValueError(f"config: expected a GroupConfig, got {type(config).__name__}")
        if not prompts or isinstance(prompts, str):
            raise ValueError("prompts: expected a non-empty list of strings")
        self.kind = kind
        self.config = config
        self.policy = policy
        self.ref_policy = ref_policy
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.gold_fn = gold_fn
        self.prompts = list(prompts)
        self.device = next(policy.parameters()).device
        # Dropout off: the old and new log-probs must come from the same function (ratio 1).
        self.policy.eval()
        self.ref_policy.eval()
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.callbacks: list[Callable[[GroupTrainer, dict], None]] = []
        torch.manual_seed(config.seed)

    def group_step(self) -> dict[str, float]:
        """Run steps 1-7 once; return this step's metrics."""
        c, G = self.config, self.config.group_size
        t0 = time.perf_counter()
        step = self.step + 1
        # 1. prompts, each repeated G times in a row: rows [g*G, (g+1)*G) share a prompt
        idx = torch.randint(len(self.prompts), (c.prompts_per_step,), generator=self.generator)
        prompts = [self.prompts[i] for i in idx.tolist() for _ in range(G)]
        # 2. sample, keeping the log-probs (the "old" policy is the current one)
        length = c.max_new_tokens
        if c.min_new_tokens is not None:  # a random length limit, drawn as PPOTrainer draws it
            length = int(
                torch.randint(
                    c.min_new_tokens, c.max_new_tokens + 1, (1,), generator=self.generator
                )
            )
        roll = sample(
            self.policy,
            self.tokenizer,
            prompts,
            max_new_tokens=length,
            temperature=c.temperature,
        )
        old_logprobs, mask = roll.logprobs, roll.mask.float()
        t_gen = time.perf_counter()
        with torch.no_grad():
            # 3. reference log-probs
            ref_logprobs = response_logprobs(self.ref_policy, roll, temperature=c.temperature)
            seq_kl = (kl.kl_estimate(old_logprobs, ref_logprobs, "k1") * mask).sum(1)  # (B,)
            # 4. scores; RLOO puts the KL penalty in the reward, GRPO in the loss (step 6)
            scores = check_scores(self.reward_fn(roll.texts), len(roll), step=step).to(self.device)
            _check_finite(step, "reward score", scores)
            rewards = scores - c.beta * seq_kl if self.kind == "rloo" else scores
            gold = self.gold_fn(roll.texts) if self.gold_fn is not None else None
            # 5. one advantage per sequence, relative to its group, broadcast to its tokens
            seq_advantages = group_advantages(rewards, G, self.kind, c.scale_rewards)  # (B,)
            advantages = seq_advantages[:, None] * mask  # (B, T)
            zero_std = rewards.view(-1, G).std(1) == 0  # (prompts,): no signal in these groups
            # DAPO's dynamic sampling: train only on the rows of groups with a signal
            keep = (~zero_std).repeat_interleave(G) if c.drop_zero_std_groups else None
        t_reward = time.perf_counter()
        # 6. epochs of shuffled minibatches: minus the clipped objective (+ beta * k3 for GRPO)
        #    per token, aggregated by c.loss_aggregation
        stats = []
        rows = torch.arange(len(roll)) if keep is None else keep.nonzero().view(-1).cpu()
        for _ in range(c.epochs if len(rows) else 0):
            order = rows[torch.randperm(len(rows), generator=self.generator)]
            for start in range(0, len(rows), c.mini_batch_size):
                i = order[start : start + c.mini_batch_size].to(self.device)
                mb = roll.select(i)
                T = int(mb.mask.sum(1).max())  # trim the padding this minibatch doesn't need
                mb.response_ids, mb.mask = mb.response_ids[:, :T], mb.mask[:, :T]
                m = mask[i, :T]
                logprobs = response_logprobs(self.policy, mb, temperature=c.temperature)
                if c.importance_sampling == "sequence":  # GSPO: one ratio per response
                    ratio = ppo.sequence_ratio(logprobs, old_logprobs[i, :T], m)
                else:
                    ratio = ppo.probability_ratio(logprobs, old_logprobs[i, :T])
                pg_losses = -ppo.clipped_surrogate(
                    ratio, advantages[i, :T], c.clip_eps, c.clip_eps_high
                )
                pg_loss = masked_aggregate(pg_losses, m, c.loss_aggregation, c.max_new_tokens)
                loss = pg_loss
                kl_loss = torch.zeros(())
                if self.kind == "grpo":
                    k3 = kl.kl_estimate(logprobs, ref_logprobs[i, :T], "k3")
                    kl_loss = masked_aggregate(k3, m, c.loss_aggregation, c.max_new_tokens)
                    loss = pg_loss + c.beta * kl_loss
                with torch.no_grad():  # clipfrac, approx_kl, ratio_mean over the valid tokens
                    _, pg_stats = ppo.policy_loss(  # per-token ratio stats, also under GSPO
                        logprobs.detach(),
                        old_logprobs[i, :T],
                        advantages[i, :T],
                        m,
                        c.clip_eps,
                        c.clip_eps_high,
                    )
                _check_finite(step, "loss", loss.detach())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), c.max_grad_norm)
                self.optimizer.step()
                stats.append({**pg_stats, "pg_loss": pg_loss.item(), "kl_loss": kl_loss.item()})
        t_opt = time.perf_counter()

        # 7. metrics (TRL's PPO names where they exist)
        if not stats:  # every group dropped: no update this step, nothing moved
            stats = [{"clipfrac": 0.0, "approx_kl": 0.0, "ratio_mean": 1.0, "pg_loss": 0.0,
                      "kl_loss": 0.0}]  # fmt: skip

        def avg(key):
            return sum(s[key] for s in stats) / len(stats)

        metrics = {
            "step": step,
            "episode": step * c.batch_size,
            "objective/kl": seq_kl.mean().item(),
            "objective/entropy": (-old_logprobs * mask).sum(1).mean().item(),
            "objective/scores": scores.mean().item(),
            "objective/rlhf_reward": (scores - c.beta * seq_kl).mean().item(),
            "objective/frac_zero_std": zero_std.float().mean().item(),
            "policy/approxkl_avg": avg("approx_kl"),
            "policy/clipfrac_avg": avg("clipfrac"),
            "loss/policy_avg": avg("pg_loss"),
            "loss/kl_avg": avg("kl_loss"),
            "val/ratio": avg("ratio_mean"),
            "val/response_length": mask.sum(1).mean().item(),
            "beta": c.beta,
            "time/generate": t_gen - t0,
            "time/reward": t_reward - t_gen,
            "time/optimize": t_opt - t_reward,
            "time/step": time.perf_counter() - t0,
        }
        if gold is not None:
            metrics["objective/gold"] = float(torch.as_tensor(gold).float().mean())
        self.last_rollout = roll
        self.step = step
        self.history.append(metrics)
        return metrics

    def train(self, progress: bool = True) -> list[dict[str, float]]:
        """Run steps until ``config.steps``; return the history (one metric dict per step)."""
        bar = tqdm(
            total=self.config.steps, initial=self.step, desc=self.kind.upper(), disable=not progress
        )
        while self.step < self.config.steps:
            metrics = self.group_step()
            bar.update(1)
            post = {"score": metrics["objective/scores"], "kl": metrics["objective/kl"]}
            if "objective/gold" in metrics:
                post["gold"] = metrics["objective/gold"]
            bar.set_postfix({k: f"{v:.3f}" for k, v in post.items()})
            for callback in self.callbacks:
                callback(self, metrics)
        bar.close()
        return self.history


def train_group_method(
    kind: str,
    config: GroupConfig,
    policy,
    ref_policy,
    tokenizer,
    reward_fn: Callable,
    prompts: list[str],
    gold_fn: Callable | None = None,
    callbacks: list[Callable] | tuple = (),
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``policy`` in place with ``kind`` = ``"grpo"`` or ``"rloo"``; return the history.

    A shortcut for ``GroupTrainer(...)`` with ``callbacks`` (each ``fn(trainer, metrics)``),
    then ``.train()``. Pass a fresh copy of the policy (``preset.fresh_policy()``). The
    history's keys follow the PPO trainer's (``objective/scores``, ``objective/gold``,
    ``objective/kl``, ``policy/clipfrac_avg``, ...), so :func:`rlhf_edu.plots.plot_runs`
    overlays all three.

    Taught in notebooks/08_beyond_ppo.ipynb.
    """
    trainer = GroupTrainer(
        kind, config, policy, ref_policy, tokenizer, reward_fn, prompts, gold_fn=gold_fn
    )
    trainer.callbacks.extend(callbacks)
    return trainer.train(progress=progress)
