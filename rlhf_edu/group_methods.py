"""GRPO and RLOO: PPO's clipped update with a group baseline instead of a value model.

Each prompt is sampled ``group_size`` times; a response's advantage is its reward relative
to the other responses to the same prompt (:func:`rlhf_edu.beyond.group_advantages`), one
number per sequence, broadcast to all its tokens. No value head, no GAE. One step:

1. draw ``prompts_per_step`` prompts, each repeated ``group_size`` times (consecutive groups);
2. sample the responses (at most ``max_new_tokens``, or a length limit drawn from
   ``min_new_tokens..max_new_tokens``), keeping their log-probs ``old_logprobs``;
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

:class:`GroupTrainer` is a :class:`rlhf_edu.trainer.PPOTrainer` with steps 5 and 6's loss
replaced (and no value model): steps 1-4 and the loop of step 6 are PPO's own code.

Taught in notebooks/08_beyond_ppo.ipynb; the knobs one at a time in notebooks/10_after_ppo.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import kl, packing, ppo
from ._checks import require_choice, require_int, require_number
from .advantages import LOSS_AGGREGATIONS, masked_aggregate
from .beyond import GROUP_KINDS, group_advantages
from .trainer import PPOTrainer

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
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay, as :class:`rlhf_edu.trainer.PPOConfig`'s (0, as in TRL)."""
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
    top_k: int = 0
    """Top-k filtering while sampling (0: off). Keep off: filtering makes the run off-policy."""
    top_p: float = 1.0
    """Nucleus filtering while sampling (1: off). Keep off, as ``top_k``."""
    missing_eos_penalty: float | None = None
    """Subtract this from the score of a response that hit the length limit (TRL's name)."""
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
        for name in ("beta", "max_grad_norm", "weight_decay"):
            require_number(name, getattr(self, name), 0)
        require_int("top_k", self.top_k, 0)
        require_number("top_p", self.top_p, 0, 1, low_open=True)
        if self.missing_eos_penalty is not None:
            require_number("missing_eos_penalty", self.missing_eos_penalty)

    @property
    def batch_size(self) -> int:
        """Responses per step: ``prompts_per_step * group_size``."""
        return self.prompts_per_step * self.group_size


class GroupTrainer(PPOTrainer):
    """Train ``policy`` with GRPO or RLOO (``kind``) against ``reward_fn``, near ``ref_policy``.

    A :class:`rlhf_edu.trainer.PPOTrainer` that replaces only what differs: no value model
    (:meth:`make_value_head`, :meth:`trainable_parameters`), prompts repeated ``group_size``
    times (:meth:`next_prompts`), sequence advantages from the sibling responses instead of
    GAE (:meth:`advantages`), and the loss of one minibatch (:meth:`minibatch_loss`: the KL as
    a k3 loss term for GRPO, aggregated by ``loss_aggregation``; no value loss). Sampling,
    scoring, the epochs of minibatches, the optimiser step and the loop are PPO's. The same
    arguments as ``PPOTrainer`` (without a value head) and the same interface: ``train()``,
    ``history``, ``callbacks`` (each called as ``fn(trainer, metrics)`` after every step),
    ``step``, ``policy``. No checkpoints (``train(resume=True)`` is refused).

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
        self.kind = kind
        self.name = kind.upper()
        super().__init__(config, policy, ref_policy, tokenizer, reward_fn, prompts, gold_fn)

    def make_value_head(self, value_head):
        return None  # the group is the baseline: no value model

    def trainable_parameters(self):
        return list(self.policy.parameters())

    def make_kl_controller(self):
        return kl.FixedKLController(self.config.beta)

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def kl_kind(self) -> str:
        return "k1"  # RLOO's penalty in the reward; logged as objective/kl for both kinds

    def next_prompts(self) -> list[str]:
        """``prompts_per_step`` prompts, each repeated G times: rows [g*G, (g+1)*G) share one."""
        c = self.config
        idx = torch.randint(len(self.prompts), (c.prompts_per_step,), generator=self.generator)
        return [self.prompts[i] for i in idx.tolist() for _ in range(c.group_size)]

    def advantages(self, roll, scores, old_logprobs, ref_logprobs, kl_t, mask) -> dict:
        """Step 5: one advantage per sequence, relative to its group, broadcast to its tokens.

        RLOO puts the KL penalty in the reward, ``r = score - beta * sum_t k1_t``; GRPO keeps
        ``r = score`` (its KL is a loss term, :meth:`minibatch_loss`). With
        ``drop_zero_std_groups`` only the rows of groups whose rewards differ are trained on."""
        c, G = self.config, self.config.group_size
        rewards = scores - c.beta * kl_t.sum(1) if self.kind == "rloo" else scores
        seq_advantages = group_advantages(rewards, G, self.kind, c.scale_rewards)  # (B,)
        zero_std = rewards.view(-1, G).std(1) == 0  # (prompts,): no signal in these groups
        rows = None  # DAPO's dynamic sampling: train only on the rows of groups with a signal
        if c.drop_zero_std_groups:
            rows = (~zero_std).repeat_interleave(G).nonzero().view(-1).cpu()
        return {
            "advantages": seq_advantages[:, None] * mask,  # (B, T)
            "ref_logprobs": ref_logprobs,
            "zero_std": zero_std,
            "rows": rows,
        }

    def minibatch_loss(self, mb, i, m, old_logprobs, batch):
        """Minus the clipped objective per token (+ ``beta * k3`` for GRPO), aggregated by
        ``loss_aggregation``. Returns ``(loss, stats)``."""
        c, T = self.config, m.shape[1]
        logprobs = packing.response_logprobs(self.policy, mb, c.temperature)
        if c.importance_sampling == "sequence":  # GSPO: one ratio per response
            ratio = ppo.sequence_ratio(logprobs, old_logprobs[i, :T], m)
        else:
            ratio = ppo.probability_ratio(logprobs, old_logprobs[i, :T])
        advantages = batch["advantages"][i, :T]
        pg_losses = -ppo.clipped_surrogate(ratio, advantages, c.clip_eps, c.clip_eps_high)
        pg_loss = masked_aggregate(pg_losses, m, c.loss_aggregation, c.max_new_tokens)
        loss = pg_loss
        kl_loss = torch.zeros(())
        if self.kind == "grpo":
            k3 = kl.kl_estimate(logprobs, batch["ref_logprobs"][i, :T], "k3")
            kl_loss = masked_aggregate(k3, m, c.loss_aggregation, c.max_new_tokens)
            loss = pg_loss + c.beta * kl_loss
        with torch.no_grad():  # clipfrac, approx_kl, ratio_mean over the valid tokens
            _, pg_stats = ppo.policy_loss(  # per-token ratio stats, also under GSPO
                logprobs.detach(), old_logprobs[i, :T], advantages, m, c.clip_eps, c.clip_eps_high
            )
        return loss, {**pg_stats, "pg_loss": pg_loss.item(), "kl_loss": kl_loss.item()}

    def extra_metrics(self, batch, avg):
        return {
            "objective/frac_zero_std": batch["zero_std"].float().mean().item(),
            "loss/kl_avg": avg("kl_loss"),
        }

    def resume_from_checkpoint(self):
        raise ValueError("resume: GroupTrainer writes no checkpoints; use PPOTrainer for that")

    def checkpoint_due(self) -> bool:
        return False

    group_step = PPOTrainer.ppo_step  # the same seven steps, with the parts above replaced


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
