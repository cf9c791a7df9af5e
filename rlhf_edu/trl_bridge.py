"""The course's run in TRL: a reward function TRL can call, and our settings in TRL's names.

TRL is optional (``pip install "rlhf-edu[trl]"``, which pins ``trl==1.12.0``, the last
release with ``trl.experimental.ppo``; ``trl.GRPOTrainer`` is in every recent release).

- :func:`trl_status`: which TRL trainers can be imported here, and what to install if not;
- :func:`make_reward_fn`: our reward model as a TRL reward function
  ``reward_fn(prompts, completions, **kwargs) -> list[float]``;
- :func:`grpo_kwargs`, :func:`ppo_kwargs`: a :class:`~rlhf_edu.group_methods.GroupConfig` or
  :class:`~rlhf_edu.trainer.PPOConfig` as keyword arguments of TRL's ``GRPOConfig`` or
  ``trl.experimental.ppo.PPOConfig`` (the run's shape and hyperparameters; add ``output_dir``,
  ``report_to`` and the device yourself);
- :func:`config_table`: our config fields next to TRL's, with the values of a run;
- :func:`grpo_history`: TRL's GRPO ``log_history`` as a history like ours (one dict per batch).

Taught in notebooks/09_scaling_up.ipynb.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata as md
import os
from collections.abc import Callable

from .group_methods import GroupConfig
from .trainer import PPOConfig

TRL_PIN = "1.12.0"
# The newest release this lesson is checked with (tests/test_trl_latest.py): what
# ``pip install trl`` gives learners; it has GRPOTrainer but no trl.experimental.ppo.
TRL_LATEST = "1.16.0"
INSTALL = 'pip install "rlhf-edu[trl]"'

# Our PPOConfig field -> (TRL experimental.ppo PPOConfig field, our GroupConfig field,
# TRL GRPOConfig field, note). None: no counterpart.
FIELD_MAP: dict[str, tuple[str | None, str | None, str | None, str]] = {
    "steps": ("total_episodes", "steps", "max_steps", "TRL PPO counts episodes: steps * batch"),
    "batch_size": (
        "per_device_train_batch_size",
        "prompts_per_step",
        "generation_batch_size",
        "responses per step (GRPO: prompts * num_generations)",
    ),
    "mini_batch_size": (
        "num_mini_batches",
        "mini_batch_size",
        "per_device_train_batch_size",
        "TRL PPO takes the number of minibatches: batch / mini",
    ),
    "ppo_epochs": ("num_ppo_epochs", "epochs", "num_iterations", "passes over each batch"),
    "lr": ("learning_rate", "lr", "learning_rate", "TRL decays it linearly unless told otherwise"),
    "weight_decay": (
        "weight_decay",
        "weight_decay",
        "weight_decay",
        "AdamW's weight decay; 0 in ours and TRL's",
    ),
    "clip_eps": ("cliprange", "clip_eps", "epsilon", "policy clip range"),
    "clip_range_value": (
        "cliprange_value",
        None,
        None,
        "value clip range (no value model in GRPO)",
    ),
    "vf_coef": ("vf_coef", None, None, "value-loss weight"),
    "ent_coef": (None, None, None, "TRL's PPO has no entropy bonus"),
    "beta": (
        "kl_coef",
        "beta",
        "beta",
        "PPO: KL in the reward; GRPO: k3 KL loss term (TRL's default beta is 0)",
    ),
    "kl_target": (None, None, None, "TRL's PPO has no adaptive KL controller"),
    "kl_horizon": (None, None, None, "TRL's PPO has no adaptive KL controller"),
    "kl_kind": ("kl_estimator", None, None, "TRL: 'k1' or 'k3'; GRPO's loss uses k3"),
    "gamma": ("gamma", None, None, "discount"),
    "lam": ("lam", None, None, "GAE lambda"),
    "whiten_advantages": (
        None,
        None,
        "scale_rewards",
        (
            "TRL's PPO always whitens advantages (its whiten_rewards is another switch); "
            "GRPO divides by the group std"
        ),
    ),
    "max_grad_norm": ("max_grad_norm", "max_grad_norm", "max_grad_norm", "gradient clipping"),
    "max_new_tokens": (
        "response_length",
        "max_new_tokens",
        "max_completion_length",
        "response length limit",
    ),
    "min_new_tokens": (None, None, None, "TRL samples up to the limit, no random shorter limit"),
    "temperature": ("temperature", "temperature", "temperature", "sampling temperature"),
    "top_k": (None, "top_k", "top_k", "TRL's PPO samples without filtering"),
    "top_p": (None, "top_p", "top_p", "TRL's PPO samples without filtering"),
    "missing_eos_penalty": (
        "missing_eos_penalty",
        "missing_eos_penalty",
        None,
        "subtracted from the score of a response without EOS (TRL's GRPO: no such field)",
    ),
    "checkpoint_every": ("save_steps", None, "save_steps", "with save_strategy='steps'"),
    "checkpoint_dir": ("output_dir", None, "output_dir", ""),
    "seed": ("seed", "seed", "seed", ""),
}

# Our GroupConfig.loss_aggregation -> TRL GRPOConfig.loss_type, on one device. TRL's "bnpo"
# divides by the tokens of the minibatch, as our token mean; its default "dapo" divides by the
# tokens of the whole generation batch (per minibatch step), the same when a batch is one
# minibatch. "dr_grpo" divides by responses * max_completion_length, as our "constant".
LOSS_TYPES = {"sequence_mean": "grpo", "token_mean": "bnpo", "constant": "dr_grpo"}

# GroupConfig fields with no PPOConfig counterpart -> (TRL GRPOConfig field, note).
GROUP_ONLY_FIELDS = {
    "group_size": ("num_generations", "responses per prompt"),
    "loss_aggregation": (
        "loss_type",
        (
            "sequence_mean = 'grpo', token_mean = 'bnpo' (TRL's default 'dapo' on one "
            "minibatch), constant = 'dr_grpo'"
        ),
    ),
    "scale_rewards": (
        "scale_rewards",
        "True = 'group' (divide by the group's std), False = 'none'",
    ),
    "clip_eps_high": ("epsilon_high", "DAPO's clip-higher; None = clip_eps"),
    "importance_sampling": (
        "importance_sampling_level",
        "'sequence' = GSPO's sequence ratio (TRL warns unless loss_type is 'grpo', GSPO's setup)",
    ),
    "drop_zero_std_groups": (
        None,
        "ours drops the groups whose rewards are all equal; no GRPOConfig field is mapped",
    ),
}


def trl_status() -> dict:
    """Which TRL pieces import here: ``{"version", "grpo", "ppo", "message"}``.

    ``grpo``: ``trl.GRPOTrainer`` imports; ``ppo``: ``trl.experimental.ppo.PPOTrainer`` imports
    (trl 1.12.0; later releases dropped it). ``message`` says what runs, or what to install.

    Taught in notebooks/09_scaling_up.ipynb.
    """
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    try:
        version = md.version("trl")
    except md.PackageNotFoundError:
        version = None
    grpo = ppo = False
    if version is not None:
        try:
            grpo = hasattr(importlib.import_module("trl"), "GRPOTrainer")
        except ImportError:
            grpo = False
        try:
            ppo = hasattr(importlib.import_module("trl.experimental.ppo"), "PPOTrainer")
        except ImportError:
            ppo = False
    if version is None:
        message = f"TRL is not installed: the TRL cells are skipped. To run them: {INSTALL}"
    elif grpo and ppo:
        message = f"TRL {version}: GRPOTrainer and experimental PPOTrainer available"
    else:
        missing = " and ".join(
            name
            for name, ok in (("trl.GRPOTrainer", grpo), ("trl.experimental.ppo", ppo))
            if not ok
        )
        message = (
            f"TRL {version} has no {missing}: those cells are skipped. "
            f"For the version this course uses (trl=={TRL_PIN}): {INSTALL}"
        )
    return {"version": version, "grpo": grpo, "ppo": ppo, "message": message}


def make_reward_fn(reward: Callable, name: str = "reward_model") -> Callable:
    """Wrap ``reward`` (``texts -> (B,)``, e.g. ``preset.reward``) as a TRL reward function.

    Returns ``reward_fn(prompts, completions, **kwargs) -> list[float]``: the score of each
    ``prompt + completion`` (plain-text prompts, as our trainers score them). TRL logs it as
    ``rewards/<name>/mean``.

    Taught in notebooks/09_scaling_up.ipynb.
    """
    if not callable(reward):
        raise ValueError("reward: expected a callable texts -> scores")

    def reward_fn(prompts, completions, **kwargs) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError("completions: expected one per prompt")
        texts = [p + c for p, c in zip(prompts, completions)]
        return [float(s) for s in reward(texts)]

    reward_fn.__name__ = name
    return reward_fn


def grpo_kwargs(config: GroupConfig) -> dict:
    """``config`` as keyword arguments of TRL's ``GRPOConfig`` (one optimizer step per minibatch).

    Each step generates ``prompts_per_step * group_size`` completions
    (``generation_batch_size``), split into minibatches of ``mini_batch_size``
    (``per_device_train_batch_size``), each one optimizer step, ``epochs`` times
    (``num_iterations``). ``max_steps`` counts optimizer steps. The loss is aggregated as
    ``config.loss_aggregation`` says, in TRL's name (:data:`LOSS_TYPES`), and the group's std
    divides or not as ``config.scale_rewards`` says (``"group"`` / ``"none"``); the learning
    rate stays constant and dropout is off (``disable_dropout``: TRL's PPO turns it off, its
    GRPO does not by default), as ours. Checked with trl 1.12.0 and 1.16.0.

    Taught in notebooks/09_scaling_up.ipynb.
    """
    if not isinstance(config, GroupConfig):
        raise ValueError(f"config: expected a GroupConfig, got {type(config).__name__}")
    if config.missing_eos_penalty is not None:
        raise ValueError(
            "config.missing_eos_penalty: TRL's GRPOConfig has no such field; expected None "
            f"here (put the penalty in the reward function instead), got {config.missing_eos_penalty}"
        )
    per_batch = config.batch_size // config.mini_batch_size
    return {
        "num_generations": config.group_size,
        "generation_batch_size": config.batch_size,
        "per_device_train_batch_size": config.mini_batch_size,
        "gradient_accumulation_steps": 1,
        "num_iterations": config.epochs,
        "max_steps": config.steps * per_batch * config.epochs,
        "learning_rate": config.lr,
        "weight_decay": config.weight_decay,
        "lr_scheduler_type": "constant",
        "epsilon": config.clip_eps,
        "epsilon_high": config.clip_eps_high
        if config.clip_eps_high is not None
        else config.clip_eps,
        "importance_sampling_level": config.importance_sampling,
        "beta": config.beta,
        "max_completion_length": config.max_new_tokens,
        "temperature": config.temperature,
        "top_k": config.top_k,
        "top_p": config.top_p,
        "max_grad_norm": config.max_grad_norm,
        "scale_rewards": "group" if config.scale_rewards else "none",
        "loss_type": LOSS_TYPES[config.loss_aggregation],
        "disable_dropout": True,
        "seed": config.seed,
    }


def ppo_kwargs(config: PPOConfig) -> dict:
    """``config`` as keyword arguments of ``trl.experimental.ppo.PPOConfig`` (trl 1.12.0).

    TRL's batch is ``per_device_train_batch_size * gradient_accumulation_steps`` prompts,
    split into ``num_mini_batches`` minibatches. Its optimizer only steps every
    ``gradient_accumulation_steps`` micro-batches, so one optimizer step per minibatch (ours)
    needs ``gradient_accumulation_steps=1`` and the whole batch as
    ``per_device_train_batch_size``. Responses are always ``max_new_tokens`` long at most,
    stopped at EOS.

    Taught in notebooks/09_scaling_up.ipynb.
    """
    if not isinstance(config, PPOConfig):
        raise ValueError(f"config: expected a PPOConfig, got {type(config).__name__}")
    if config.kl_kind not in ("k1", "k3"):
        raise ValueError(f"config: TRL's kl_estimator is 'k1' or 'k3', got {config.kl_kind!r}")
    return {
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": 1,
        "num_mini_batches": config.batch_size // config.mini_batch_size,
        "local_rollout_forward_batch_size": config.batch_size,
        "num_ppo_epochs": config.ppo_epochs,
        "total_episodes": config.steps * config.batch_size,
        "learning_rate": config.lr,
        "lr_scheduler_type": "constant",
        "weight_decay": config.weight_decay,
        "kl_coef": config.beta,
        "kl_estimator": config.kl_kind,
        "cliprange": config.clip_eps,
        "cliprange_value": config.clip_range_value,
        "vf_coef": config.vf_coef,
        "gamma": config.gamma,
        "lam": config.lam,
        "response_length": config.max_new_tokens,
        "temperature": config.temperature,
        "missing_eos_penalty": config.missing_eos_penalty,
        "max_grad_norm": config.max_grad_norm,
        "stop_token": "eos",
        "num_sample_generations": 0,
        "seed": config.seed,
    }


def _trl_defaults() -> dict[str, dict]:
    """TRL's own defaults per config class, where TRL imports (else empty)."""
    out = {}
    for key, module, cls in (
        ("ppo", "trl.experimental.ppo", "PPOConfig"),
        ("grpo", "trl", "GRPOConfig"),
    ):
        try:
            klass = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError):
            continue
        out[key] = {
            f.name: f.default
            for f in dataclasses.fields(klass)
            if f.default is not dataclasses.MISSING
        }
    return out


def config_table(ppo_config: PPOConfig, group_config: GroupConfig | None = None) -> list[dict]:
    """One row per field of our :class:`PPOConfig`: its value, TRL's name and value for this run.

    Columns: ``ours``, ``our value``, ``TRL PPOConfig``, ``TRL value`` (from :func:`ppo_kwargs`),
    ``TRL default`` (TRL's own default, when TRL imports), ``GroupConfig`` and
    ``TRL GRPOConfig`` (the GRPO names; with ``group_config``, the GRPO value follows in
    ``GRPO value``), ``note``. Built from the dataclass fields, so a new field shows up; the
    GroupConfig-only knobs (:data:`GROUP_ONLY_FIELDS`: group size, loss aggregation, std
    scaling) follow as the last rows.

    Taught in notebooks/09_scaling_up.ipynb.
    """
    trl_ppo = ppo_kwargs(ppo_config)
    trl_grpo = grpo_kwargs(group_config) if group_config is not None else {}
    defaults = _trl_defaults()
    rows = []
    for f in dataclasses.fields(PPOConfig):
        ppo_name, group_name, grpo_name, note = FIELD_MAP.get(f.name, (None, None, None, ""))
        row = {
            "ours": f.name,
            "our value": getattr(ppo_config, f.name),
            "TRL PPOConfig": ppo_name or "-",
            "TRL value": trl_ppo.get(ppo_name, "-") if ppo_name else "-",
            "TRL default": defaults.get("ppo", {}).get(ppo_name, "-") if ppo_name else "-",
            "GroupConfig": group_name or "-",
            "TRL GRPOConfig": grpo_name or "-",
        }
        if group_config is not None:
            row["GRPO value"] = trl_grpo.get(grpo_name, "-") if grpo_name else "-"
        row["note"] = note
        rows.append(row)
    for name, (grpo_name, note) in GROUP_ONLY_FIELDS.items():  # GRPO's own knobs
        row = {
            "ours": name,
            "our value": "-",
            "TRL PPOConfig": "-",
            "TRL value": "-",
            "TRL default": "-",
            "GroupConfig": name,
            "TRL GRPOConfig": grpo_name or "-",
        }
        if group_config is not None:
            row["GRPO value"] = trl_grpo[grpo_name] if grpo_name else "-"
        row["note"] = note
        rows.append(row)
    return rows


def grpo_history(log_history: list[dict], config: GroupConfig) -> list[dict]:
    """TRL GRPO's ``trainer.state.log_history`` as one dict per generation batch, like ours.

    Optimizer steps that share a batch are averaged. Keys: ``step`` (batch number),
    ``episode`` (completions so far), ``objective/scores`` (TRL's ``reward``: the mean reward
    of the batch), ``kl/token_mean`` (TRL's ``kl``: mean per-token k3, when ``beta > 0``),
    ``loss`` and ``completions/mean_length``. Needs ``logging_steps=1``.

    Taught in notebooks/09_scaling_up.ipynb.
    """
    per_batch = (config.batch_size // config.mini_batch_size) * config.epochs
    keys = {
        "reward": "objective/scores",
        "kl": "kl/token_mean",
        "loss": "loss",
        "completions/mean_length": "completions/mean_length",
    }
    grouped: dict[int, list[dict]] = {}
    for entry in log_history:
        if "reward" not in entry or "step" not in entry:
            continue  # the final summary, or a log without metrics
        grouped.setdefault((entry["step"] - 1) // per_batch + 1, []).append(entry)
    out = []
    for step in sorted(grouped):
        entries = grouped[step]
        row = {"step": step, "episode": step * config.batch_size}
        for theirs, ours in keys.items():
            vals = [float(e[theirs]) for e in entries if theirs in e]
            if vals:
                row[ours] = sum(vals) / len(vals)
        out.append(row)
    return out
