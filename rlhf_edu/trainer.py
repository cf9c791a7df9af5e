"""PPO for language models, one step as seven numbered steps (the pseudocode of lesson 07).

Per step, for a batch of prompts:

1. sample responses (batched, KV cache), keeping their log-probs ``old_logprobs``;
2. reference log-probs ``ref_logprobs`` under the frozen reference policy;
3. reward-model scores of prompt + response (optionally a penalty when no EOS was emitted);
4. KL-shaped per-token rewards ``-beta * kl_t`` plus the score on the last token;
5. values ``V(s_t)`` from the value head, GAE advantages and returns, whitened advantages;
6. ``ppo_epochs`` epochs of shuffled minibatches: clipped policy loss + ``vf_coef`` times the
   clipped value loss - ``ent_coef`` times the entropy, one AdamW step per minibatch;
7. metrics (named as TRL names them), KL-controller update, checkpoint.

The value head sits on the policy's last hidden state (one shared body, as in the
original ``AutoModelForCausalLMWithValueHead``), so an update costs one forward pass, and
step 5 reads the values off the hidden states that sampling already computed.

How it runs, not what it computes: the forward passes of steps 2 and 6 pack each batch's
sequences without their padding (:mod:`rlhf_edu.packing`), steps 1-6 run the policy and the
reference with GPT-2's activation as one fused kernel, and AdamW is fused
(:mod:`rlhf_edu.fused`). Each gives the same numbers up to float rounding
(tests/test_packing.py, tests/test_fused.py).

Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from . import advantages as adv
from . import fused, kl, packing, ppo
from ._checks import require_callable, require_choice, require_int, require_number, require_texts
from .checkpoint import load_checkpoint, save_checkpoint
from .generation import (
    Rollout,
    encode_prompts,
    require_prompts_fit,
    sample,
)
from .scoring import check_scores
from .value_head import ValueHead

# TRL's classic gpt2-sentiment example (lvwerra/gpt2-imdb, adaptive KL): the GPU settings of lesson 07.
GPT2_SENTIMENT = {
    "batch_size": 128,
    "mini_batch_size": 32,
    "ppo_epochs": 4,
    "lr": 1.41e-5,
    "beta": 0.2,
    "kl_target": 6.0,
    "kl_horizon": 10_000,
    "min_new_tokens": 4,
    "max_new_tokens": 16,
}


@dataclass
class PPOConfig:
    """Settings of a PPO run. Defaults suit the tiny preset on a CPU."""

    steps: int = 40
    """Number of PPO steps (one batch of fresh samples each)."""
    batch_size: int = 64
    """Prompts (and responses) per step. TRL's gpt2-sentiment example: 128."""
    mini_batch_size: int = 16
    """Responses per gradient step; ``batch_size`` must be a multiple of it."""
    ppo_epochs: int = 4
    """Passes over each batch. Usually 1-4: more reuses samples, but ratios drift further."""
    lr: float = 3e-4
    """AdamW learning rate. GPT-2 small: 1.41e-5; the tiny policy tolerates ~1e-4 to 1e-3."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay on the policy and the value head. 0 as in TRL (torch's
    AdamW alone would use 0.01, which pulls every weight toward 0, also away from the reference)."""
    clip_eps: float = 0.2
    """Policy clip range eps in clip(r, 1-eps, 1+eps). Usually 0.1 to 0.3."""
    clip_range_value: float = 0.2
    """Value clip range c: V is kept within old V +- c. Usually 0.1 to 0.4 (scale of returns)."""
    vf_coef: float = 0.1
    """Weight of the value loss. Usually 0.1 to 1."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus. Usually 0 to 0.01 for language models."""
    beta: float = 0.05
    """KL penalty weight (the initial one with an adaptive controller). 0 turns it off: watch
    the reward model get hacked. Usually 0.01 to 0.2."""
    kl_target: float | None = None
    """Adaptive KL (Ziegler et al. 2019): the per-sequence KL to aim for; None keeps beta fixed."""
    kl_horizon: int = 10_000
    """Adaptive KL horizon in samples: larger adapts beta more slowly."""
    kl_kind: str = "k1"
    """Per-token KL estimator in the shaped reward: "k1", "k2" or "k3" (lesson 05)."""
    gamma: float = 1.0
    """Discount. 1 for short responses (the score arrives at the end anyway)."""
    lam: float = 0.95
    """GAE lambda: 0 = one-step TD (low variance, biased), 1 = Monte Carlo. Usually 0.9 to 1."""
    whiten_advantages: bool = True
    """Normalise advantages to mean 0, variance 1 over the batch's valid tokens."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm. Usually 0.5 to 1."""
    max_new_tokens: int = 24
    """Response length limit (tokens): every response may run this long, as in TRL's PPO."""
    min_new_tokens: int | None = None
    """None (default): no random cap, every step samples up to ``max_new_tokens``. An int asks
    for a random cap: each step's length limit is drawn uniformly from [min_new_tokens,
    max_new_tokens] (TRL's old gpt2-sentiment example drew 4-16 on purpose, for varied lengths;
    ``GPT2_SENTIMENT`` keeps it). Not a minimum response length: EOS may still come earlier."""
    temperature: float = 1.0
    """Sampling temperature; the log-probs are of logits / temperature."""
    top_k: int = 0
    """Top-k filtering while sampling (0: off). Keep off for on-policy PPO."""
    top_p: float = 1.0
    """Nucleus filtering while sampling (1: off). Keep off for on-policy PPO."""
    missing_eos_penalty: float | None = None
    """Subtract this from the score of a response that hit the length limit (TRL's name)."""
    checkpoint_every: int = 0
    """Write a checkpoint every N steps (0: never). Needs ``checkpoint_dir``."""
    checkpoint_dir: str | None = None
    """Where checkpoints go (written atomically: a temp dir, then a rename)."""
    seed: int = 0
    """Seeds the prompt order, sampling and minibatch shuffling."""

    def __post_init__(self):
        for name in (
            "steps",
            "batch_size",
            "mini_batch_size",
            "ppo_epochs",
            "max_new_tokens",
            "kl_horizon",
        ):
            require_int(name, getattr(self, name), 1)
        if self.min_new_tokens is not None:
            require_int("min_new_tokens", self.min_new_tokens, 1)
        for name in ("top_k", "checkpoint_every", "seed"):
            require_int(name, getattr(self, name), 0)
        if self.batch_size % self.mini_batch_size:
            raise ValueError(
                f"mini_batch_size: expected a divisor of batch_size={self.batch_size}, "
                f"got {self.mini_batch_size}"
            )
        if self.min_new_tokens is not None and self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens: expected <= max_new_tokens={self.max_new_tokens}, "
                f"got {self.min_new_tokens}"
            )
        require_number("clip_eps", self.clip_eps, 0, 1, low_open=True, high_open=True)
        for name in ("clip_range_value", "lr", "temperature"):
            require_number(name, getattr(self, name), 0, low_open=True)
        for name in ("beta", "vf_coef", "ent_coef", "max_grad_norm", "weight_decay"):
            require_number(name, getattr(self, name), 0)
        for name in ("gamma", "lam"):
            require_number(name, getattr(self, name), 0, 1)
        require_number("top_p", self.top_p, 0, 1, low_open=True)
        if self.kl_target is not None:
            require_number("kl_target", self.kl_target, 0, low_open=True)
        if self.missing_eos_penalty is not None:
            require_number("missing_eos_penalty", self.missing_eos_penalty)
        require_choice("kl_kind", self.kl_kind, ("k1", "k2", "k3"))
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ValueError("checkpoint_dir: expected a directory when checkpoint_every > 0")


def _check_finite(step: int, name: str, x: torch.Tensor) -> None:
    """Stop training with a clear error when ``x`` holds a NaN or an infinity."""
    if not torch.isfinite(x).all():
        bad = x[~torch.isfinite(x)].flatten()[0].item()
        raise FloatingPointError(
            f"step {step}: {name} is {bad} (not finite); training stopped before the update. "
            "Lower lr, raise beta, or check reward_fn."
        )


class PPOTrainer:
    """Train ``policy`` against ``reward_fn`` with PPO, staying near ``ref_policy``.

    Args:
        config: a :class:`PPOConfig`.
        policy: a causal LM (trained in place).
        ref_policy: a frozen causal LM (the KL anchor).
        tokenizer: left-padding tokenizer with a pad token distinct from EOS.
        reward_fn: ``texts -> (B,)`` scores (e.g. ``preset.reward``).
        prompts: the prompts to draw batches from.
        gold_fn: optional ``texts -> (B,)`` judge, logged as ``objective/gold``.
        value_head: optional :class:`ValueHead`; a fresh zero-initialised one by default.

    ``train()`` runs to ``config.steps``; ``history`` is a list of metric dicts (one per
    step). Taught in notebooks/07_ppo.ipynb.
    """

    def __init__(
        self,
        config: PPOConfig,
        policy,
        ref_policy,
        tokenizer,
        reward_fn: Callable,
        prompts: list[str],
        gold_fn: Callable | None = None,
        value_head: ValueHead | None = None,
    ):
        prompts = require_texts("prompts", prompts)
        require_callable("reward_fn", reward_fn, "a function texts -> scores")
        if gold_fn is not None:
            require_callable("gold_fn", gold_fn, "a function texts -> scores, or None")
        require_prompts_fit(  # the longest prompt plus max_new_tokens must fit the context
            policy,
            encode_prompts(tokenizer, prompts)["attention_mask"],
            config.max_new_tokens,
            name="max_new_tokens (with the longest prompt, prompts[{i}])",
        )
        self.config = config
        self.policy = policy
        self.ref_policy = ref_policy
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.gold_fn = gold_fn
        self.prompts = prompts
        if not any(p.requires_grad for p in policy.parameters()):
            raise ValueError(
                "policy: no parameter requires grad (a frozen model?); "
                "pass a trainable copy such as preset.fresh_policy()"
            )
        self.device = next(policy.parameters()).device
        self.value_head = self.make_value_head(value_head)
        # Dropout off: the old and new log-probs must come from the same function (ratio 1).
        self.policy.eval()
        self.ref_policy.eval()
        self.optimizer = fused.adamw(
            self.trainable_parameters(),
            self.device,
            lr=config.lr,
            eps=1e-5,
            weight_decay=config.weight_decay,
        )
        self.kl_ctl = self.make_kl_controller()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.callbacks: list[Callable[[PPOTrainer, dict], None]] = []
        torch.manual_seed(config.seed)

    # -- what a subclass may replace (group_methods.GroupTrainer: GRPO and RLOO) --------------
    name = "PPO"
    """The progress bar's label."""

    def make_value_head(self, value_head: ValueHead | None) -> ValueHead | None:
        """The value model: ``value_head``, or a fresh zero-initialised head on the policy's body."""
        return (value_head or ValueHead(self.policy.config.hidden_size)).to(self.device)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """What AdamW updates and the gradient norm is clipped over: policy, then value head."""
        return list(self.policy.parameters()) + list(self.value_head.parameters())

    def make_kl_controller(self):
        """Adaptive KL (``kl_target``) or a fixed ``beta``."""
        c = self.config
        if c.kl_target is not None:
            return kl.AdaptiveKLController(c.beta, c.kl_target, c.kl_horizon)
        return kl.FixedKLController(c.beta)

    @property
    def epochs(self) -> int:
        """Passes over each batch in step 6."""
        return self.config.ppo_epochs

    @property
    def kl_kind(self) -> str:
        """The per-token KL estimator of step 4 (penalised and logged as ``objective/kl``)."""
        return self.config.kl_kind

    def next_prompts(self) -> list[str]:
        """Step 1's prompts: ``batch_size`` drawn with replacement."""
        idx = torch.randint(len(self.prompts), (self.config.batch_size,), generator=self.generator)
        return [self.prompts[i] for i in idx.tolist()]

    def advantages(self, roll: Rollout, scores, old_logprobs, ref_logprobs, kl_t, mask) -> dict:
        """Steps 4-5: KL-shaped per-token rewards, values, GAE and whitening.

        Returns what step 6 needs: ``advantages`` ``(B, T)``, ``returns`` and ``old_values``
        ``(B, T)``, and ``rows`` (the rows to train on; None: all of them).
        """
        c = self.config
        rewards = kl.shaped_rewards(
            scores, old_logprobs, ref_logprobs, mask, self.kl_ctl.beta, kind=c.kl_kind
        )
        old_values = self.values(roll) * mask
        advantages, returns = adv.gae(rewards, old_values, mask, gamma=c.gamma, lam=c.lam)
        if c.whiten_advantages:
            advantages = adv.whiten(advantages, mask)
        return {
            "advantages": advantages,
            "returns": returns,
            "old_values": old_values,
            "rows": None,
        }

    def minibatch_loss(self, mb: Rollout, i, m, old_logprobs, batch: dict):
        """Step 6 on one minibatch (rows ``i``, trimmed to ``m.shape[1]`` tokens): the clipped
        policy loss + ``vf_coef`` times the clipped value loss - ``ent_coef`` times the entropy.
        Returns ``(loss, stats)``."""
        c, T = self.config, m.shape[1]
        logprobs, values, entropy = self.forward(mb)
        pg_loss, pg_stats = ppo.policy_loss(
            logprobs, old_logprobs[i, :T], batch["advantages"][i, :T], m, c.clip_eps
        )
        vf_loss, vf_stats = ppo.value_loss(
            values, batch["old_values"][i, :T], batch["returns"][i, :T], m, c.clip_range_value
        )
        ent = adv.masked_mean(entropy, m)
        loss = pg_loss + c.vf_coef * vf_loss - c.ent_coef * ent
        stats = {**pg_stats, **vf_stats, "vf_loss": vf_loss.item(), "entropy": ent.item()}
        return loss, {**stats, "pg_loss": pg_loss.item()}

    def extra_metrics(self, batch: dict, avg: Callable[[str], float]) -> dict[str, float]:
        """Step 7's metrics of this method only (PPO: the value loss and the entropy)."""
        return {
            "loss/value_avg": avg("vf_loss"),
            "val/clipfrac_avg": avg("vf_clipfrac"),
            "policy/entropy_avg": avg("entropy"),
        }

    def resume_from_checkpoint(self) -> None:
        if not self.config.checkpoint_dir:
            raise ValueError("resume: needs config.checkpoint_dir")
        load_checkpoint(self, self.config.checkpoint_dir)

    def checkpoint_due(self) -> bool:
        c = self.config
        return bool(c.checkpoint_every) and self.step % c.checkpoint_every == 0

    # -- helpers ---------------------------------------------------------------------------
    def fused_kernels(self) -> contextlib.ExitStack:
        """Run the policy and the reference with GPT-2's GELU as one fused kernel (the same
        function, :func:`rlhf_edu.fused.fused_gelu`), given back as they were on exit."""
        stack = contextlib.ExitStack()
        for model in (self.policy, self.ref_policy):
            stack.enter_context(fused.fused_gelu(model))
        return stack

    def autocast(self):
        """bf16 autocast on a GPU that supports it; plain fp32 elsewhere."""
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, roll: Rollout):
        """Return ``(logprobs, values, entropy)``, each ``(B, T)``, from one policy forward pass.

        The entropy carries a gradient only when ``ent_coef > 0`` (otherwise it is a metric).
        """
        with self.autocast():
            hidden, logits = packing.response_outputs(self.policy, roll, logits=True)
        # log p once, for the sampled tokens' log-probs and for the entropy
        logp = torch.log_softmax(logits.float() / self.config.temperature, dim=-1)
        logprobs = logp.gather(-1, roll.response_ids.unsqueeze(-1)).squeeze(-1)
        values = self.value_head(hidden.float())
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.ent_coef > 0):
            entropy = ppo.entropy_from_logprobs(logp)
        return logprobs, values, entropy

    @torch.no_grad()
    def values(self, roll: Rollout) -> torch.Tensor:
        """``V(s_t)``, ``(B, T)``, for a whole rollout (no gradient): read off the hidden
        states sampling kept (``roll.hidden``), or from a forward pass without the LM head."""
        hidden = roll.hidden
        if hidden is None:  # a rollout sampled elsewhere (lesson 03 hands PPO its batches)
            with self.autocast():
                hidden = packing.response_outputs(self.policy, roll)
        return self.value_head(hidden.float())

    def sample_batch(self) -> Rollout:
        """Step 1: ``batch_size`` responses to :meth:`next_prompts`, with their log-probs."""
        c = self.config
        length = c.max_new_tokens
        if c.min_new_tokens is not None:  # a random length cap, only when asked for
            length = int(
                torch.randint(c.min_new_tokens, length + 1, (1,), generator=self.generator)
            )
        return sample(
            self.policy,
            self.tokenizer,
            self.next_prompts(),
            max_new_tokens=length,
            temperature=c.temperature,
            top_k=c.top_k,
            top_p=c.top_p,
            keep_hidden=self.value_head is not None,  # step 5's values come from these
        )

    # -- one PPO step ------------------------------------------------------------------------
    def ppo_step(self, roll: Rollout | None = None) -> dict[str, float]:
        """Run steps 1-7 once; return this step's metrics.

        ``roll``: None (the default) lets step 1 sample. A :class:`Rollout` replaces step 1's
        draw: responses the *current* policy has just sampled (``generation.sample`` at
        ``config.temperature``), whose ``logprobs`` are then pi_old's. Lesson 03 hands PPO
        batches drawn as the methods it is compared with draw theirs (same prompts and seeds).
        Its ``hidden`` is set to None: step 5 computes the values with a forward pass.
        """
        c = self.config
        t0 = time.perf_counter()
        step = self.step + 1
        with self.fused_kernels():  # steps 1-6: the same functions, faster (fused.py)
            # 1. sample responses, keeping their log-probs (the "old" policy is the current one)
            if roll is None:
                roll = self.sample_batch()
            elif not isinstance(roll, Rollout):
                raise ValueError(
                    f"roll: expected a generation.Rollout or None, got {type(roll).__name__}"
                )
            else:  # step 5 reads values only off hidden states this step's sampling kept
                roll.hidden = None
            old_logprobs, mask = roll.logprobs, roll.mask.float()
            t_gen = time.perf_counter()
            with torch.no_grad():
                # 2. reference log-probs
                with self.autocast():
                    ref_logprobs = packing.response_logprobs(self.ref_policy, roll, c.temperature)
                t_ref = time.perf_counter()
                # 3. reward-model scores (and the gold judge, for the record)
                scores = check_scores(self.reward_fn(roll.texts), len(roll), step=step)
                scores = scores.to(self.device)
                no_eos = roll.mask.sum(1) == roll.mask.shape[1]  # hit the limit without EOS
                if c.missing_eos_penalty is not None:
                    scores = scores - c.missing_eos_penalty * no_eos.float()
                _check_finite(step, "reward score", scores)
                gold = None
                if self.gold_fn is not None:
                    gold = check_scores(self.gold_fn(roll.texts), len(roll), "gold_fn", step)
                t_reward = time.perf_counter()
                # 4.-5. the per-token KL estimate (kl_kind, computed once), then the advantages
                beta = self.kl_ctl.beta
                kl_t = kl.kl_estimate(old_logprobs, ref_logprobs, kind=self.kl_kind) * mask
                batch = self.advantages(roll, scores, old_logprobs, ref_logprobs, kl_t, mask)
                roll.hidden = None  # read; after the update they would be stale
            # 6. several epochs of shuffled minibatches (all rows, or the ones step 5 kept)
            stats = []
            rows = batch["rows"] if batch["rows"] is not None else torch.arange(len(roll))
            for _ in range(self.epochs if len(rows) else 0):
                order = rows[torch.randperm(len(rows), generator=self.generator)]
                for start in range(0, len(rows), c.mini_batch_size):
                    i = order[start : start + c.mini_batch_size].to(self.device)
                    mb = roll.select(i)
                    T = int(mb.mask.sum(1).max())  # trim the padding this minibatch doesn't need
                    mb.response_ids, mb.mask = mb.response_ids[:, :T], mb.mask[:, :T]
                    loss, mb_stats = self.minibatch_loss(mb, i, mask[i, :T], old_logprobs, batch)
                    _check_finite(step, "loss", loss.detach())
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), c.max_grad_norm)
                    self.optimizer.step()
                    stats.append(mb_stats)
        t_opt = time.perf_counter()
        # 7. metrics (TRL's names), KL controller update
        seq_kl = kl_t.sum(1)  # the penalised estimator summed over each response
        non_score = -beta * seq_kl
        log_ratio = ((old_logprobs - ref_logprobs) * mask).sum(1)  # k1's sum: log pi(y)/pi_ref(y)

        def avg(key):  # over the minibatches; no update at all (every row dropped): ratio 1, 0
            if not stats:
                return 1.0 if key == "ratio_mean" else 0.0
            return sum(s[key] for s in stats) / len(stats)

        metrics = {
            "step": step,
            "episode": step * c.batch_size,
            "objective/kl": seq_kl.mean().item(),
            "objective/kl_k1": log_ratio.mean().item(),
            "objective/entropy": (-old_logprobs * mask).sum(1).mean().item(),
            "objective/non_score_reward": non_score.mean().item(),
            "objective/rlhf_reward": (scores + non_score).mean().item(),
            "objective/scores": scores.mean().item(),
            "policy/approxkl_avg": avg("approx_kl"),
            "policy/clipfrac_avg": avg("clipfrac"),
            "loss/policy_avg": avg("pg_loss"),
            **self.extra_metrics(batch, avg),
            "val/ratio": avg("ratio_mean"),
            "val/num_eos_tokens": float((~no_eos).sum()),
            "val/response_length": mask.sum(1).mean().item(),
            "beta": beta,
            "lr": self.optimizer.param_groups[0]["lr"],
            "time/generate": t_gen - t0,
            "time/reference": t_ref - t_gen,
            "time/reward": t_reward - t_ref,
            "time/optimize": t_opt - t_reward,
            "time/step": time.perf_counter() - t0,
        }
        if gold is not None:
            metrics["objective/gold"] = gold.mean().item()
        self.kl_ctl.update(metrics["objective/kl"], c.batch_size)
        self.last_rollout = roll
        self.step = step
        self.history.append(metrics)
        return metrics

    # -- the loop ------------------------------------------------------------------------------
    def train(self, resume: bool = False, progress: bool = True) -> list[dict[str, float]]:
        """Run PPO steps until ``config.steps``; with ``resume=True`` continue from the last
        checkpoint in ``config.checkpoint_dir`` (the same final step count, nothing lost).

        Resuming refuses a config that differs from the checkpoint's (naming each field, old
        and new value; only ``steps`` and the checkpoint settings may change), and skips a
        damaged newest checkpoint with a warning (see :mod:`rlhf_edu.checkpoint`)."""
        c = self.config
        if resume:
            self.resume_from_checkpoint()
        bar = tqdm(total=c.steps, initial=self.step, desc=self.name, disable=not progress)
        while self.step < c.steps:
            metrics = self.ppo_step()
            bar.update(1)
            post = {"score": metrics["objective/scores"], "kl": metrics["objective/kl"]}
            if "objective/gold" in metrics:
                post["gold"] = metrics["objective/gold"]
            bar.set_postfix({k: f"{v:.3f}" for k, v in post.items()})
            if self.checkpoint_due():
                save_checkpoint(self, c.checkpoint_dir)
            for callback in self.callbacks:
                callback(self, metrics)
        bar.close()
        return self.history

    def state_dict(self) -> dict:
        """Everything a checkpoint needs besides the model weights."""
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "kl_ctl": self.kl_ctl.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "history": self.history,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        fused_adamw = [group["fused"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, flag in zip(self.optimizer.param_groups, fused_adamw):
            group["fused"] = flag  # as built here, also from a checkpoint of an unfused AdamW
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history = list(state["history"])
