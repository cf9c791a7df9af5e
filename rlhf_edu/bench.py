"""Time the phases of a PPO (or GRPO) step, ours against TRL's, in one process run.

    python -m rlhf_edu.bench --preset tiny --vs-trl --json bench.json
    python -m rlhf_edu.bench --shape gpt2 --batch 128 --response-length 16 --vs-trl
    python -m rlhf_edu.bench --preset tiny --method grpo --epochs 1 --vs-trl

``--preset tiny`` uses the shipped tiny world. ``--shape gpt2`` uses random-init models of
GPT-2 small's shape (policy, reward model, and TRL's value model), so no hub is needed.
Both trainers get identical models, batch, minibatch, epochs and response length; each
runs warm-up steps first, then the timed steps. ``ratio`` is ours / TRL (below 1: faster).
``--method grpo`` times our ``GroupTrainer("grpo")`` against TRL's ``GRPOTrainer`` (any TRL
with it; settings through ``trl_bridge.grpo_kwargs``): ``--batch`` responses per step in groups
of ``--group-size``, ``--epochs`` passes (TRL's ``num_iterations``), both scoring with the same
reward model through the same text function, beta 0.05 (so both run the reference).

Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time

import torch

from .group_methods import GroupConfig, GroupTrainer
from .trainer import PPOConfig, PPOTrainer
from .trl_bridge import grpo_kwargs, make_reward_fn, ppo_kwargs

GPT2_VOCAB = 50257


def _tiny_world(device):
    from .presets import load_preset

    p = load_preset("tiny", device=device, n_prompts=1024)
    return p.ref_policy, p.reward.model, p.tokenizer, p.prompts


def _gpt2_world(device, seed: int = 0):
    """Random-init GPT-2-small-shaped policy and reward model, a tokenizer with GPT-2's vocab size."""
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    from .presets import load_preset

    p = load_preset("tiny", device="cpu", n_prompts=1024)
    tok = copy.deepcopy(p.tokenizer)
    # Pad the tiny tokenizer's vocabulary to GPT-2's size, so texts round-trip exactly.
    tok.add_tokens([f"<x{i}>" for i in range(GPT2_VOCAB - len(tok))])
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tok),
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    policy = GPT2LMHeadModel(cfg).to(device).eval()
    rm = GPT2ForSequenceClassification(GPT2Config(**cfg.to_dict(), num_labels=1)).to(device).eval()
    return policy, rm, tok, p.prompts


def _trainable(model):
    """A trainable copy (the worlds hand out frozen models)."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(True)
    return model.train()


def _reward_fn(rm, tokenizer):
    from .scoring import RewardModel

    return RewardModel(rm, tokenizer, max_length=1024)


def bench_ours(
    policy, rm, tokenizer, prompts, cfg: PPOConfig | GroupConfig, warmup: int, steps: int
) -> dict:
    """Run ``warmup + steps`` steps (PPO, or GRPO for a GroupConfig); return the mean
    per-phase times of the timed ones."""
    cfg = type(cfg)(**{**cfg.__dict__, "steps": warmup + steps})
    args = (_trainable(policy), copy.deepcopy(policy).eval(), tokenizer, _reward_fn(rm, tokenizer))
    if isinstance(cfg, GroupConfig):
        tr = GroupTrainer("grpo", cfg, *args, prompts)
    else:
        tr = PPOTrainer(cfg, *args, prompts)
    if tr.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tr.train(progress=False)
    timed = tr.history[warmup:]
    keys = [k for k in timed[0] if k.startswith("time/")]
    out = {k.split("/")[1] + "_seconds": statistics.mean(m[k] for m in timed) for k in keys}
    out["step_seconds"] = out.pop("step_seconds")
    out["response_length_mean"] = statistics.mean(m["val/response_length"] for m in timed)
    if tr.device.type == "cuda":
        out["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _time_trl(make_trainer, use_cuda: bool, warmup: int, steps: int) -> dict:
    """Time a TRL trainer: ``make_trainer(run_args, n_steps)`` builds one for ``n_steps`` of
    ours, given the ``TrainingArguments`` fields every run shares; a warm-up run first, then
    the timed run (construction not timed). Returns ``trl_step_seconds`` (and peak GPU memory)."""

    def run(n_steps: int) -> float:
        with tempfile.TemporaryDirectory() as out:
            run_args = {
                "output_dir": out,
                "report_to": "none",
                "save_strategy": "no",
                "logging_strategy": "no",
                "disable_tqdm": True,
                "use_cpu": not use_cuda,
                "bf16": use_cuda and torch.cuda.is_bf16_supported(),
                "dataloader_num_workers": 0,
            }
            trainer = make_trainer(run_args, n_steps)
            if use_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.train()
            if use_cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

    run(warmup)
    if use_cuda:
        torch.cuda.reset_peak_memory_stats()
    total = run(steps)
    out = {"trl_step_seconds": total / steps}
    if use_cuda:
        out["trl_peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def bench_trl(policy, rm, tokenizer, prompts, cfg: PPOConfig, warmup: int, steps: int) -> dict:
    """Time ``trl==1.12.0``'s ``trl.experimental.ppo.PPOTrainer`` on the same models and sizes."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig as TRLConfig
    from trl.experimental.ppo import PPOTrainer as TRLTrainer

    ids = [tokenizer(p)["input_ids"] for p in prompts]
    dataset = Dataset.from_dict({"input_ids": ids})

    def make_trainer(run_args: dict, n_steps: int):
        # The same batch, minibatches and epochs in TRL's terms (one optimizer step per
        # minibatch, as ours): see trl_bridge.ppo_kwargs.
        kwargs = {**ppo_kwargs(cfg), "total_episodes": n_steps * cfg.batch_size}
        return TRLTrainer(
            args=TRLConfig(**run_args, **kwargs),
            processing_class=tokenizer,
            model=_trainable(policy),
            ref_model=copy.deepcopy(policy).eval(),
            reward_model=rm,
            train_dataset=dataset,
            value_model=_trainable(rm),
        )

    use_cuda = next(policy.parameters()).device.type == "cuda"
    return _time_trl(make_trainer, use_cuda, warmup, steps)


def bench_trl_grpo(
    policy, rm, tokenizer, prompts, cfg: GroupConfig, warmup: int, steps: int
) -> dict:
    """Time TRL's ``GRPOTrainer`` on the same models, batch, groups and epochs as ours."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    dataset = Dataset.from_dict({"prompt": list(prompts)})
    reward_fn = make_reward_fn(_reward_fn(rm, tokenizer))

    def make_trainer(run_args: dict, n_steps: int):
        kwargs = grpo_kwargs(GroupConfig(**{**cfg.__dict__, "steps": n_steps}))
        return GRPOTrainer(
            model=_trainable(policy),
            reward_funcs=reward_fn,
            args=GRPOConfig(**run_args, **kwargs),
            train_dataset=dataset,
            processing_class=copy.deepcopy(tokenizer),
        )

    use_cuda = next(policy.parameters()).device.type == "cuda"
    return _time_trl(make_trainer, use_cuda, warmup, steps)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    world = ap.add_mutually_exclusive_group()
    world.add_argument("--preset", choices=["tiny"], default=None, help="the shipped tiny world")
    world.add_argument("--shape", choices=["gpt2"], default=None, help="random-init GPT-2 small")
    ap.add_argument("--method", choices=["ppo", "grpo"], default="ppo", help="which trainers")
    ap.add_argument("--batch", type=int, default=64, help="responses per step")
    ap.add_argument("--group-size", type=int, default=4, help="grpo: responses per prompt")
    ap.add_argument("--mini-batch", type=int, default=None, help="default: batch / 4")
    ap.add_argument("--response-length", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=4, help="PPO epochs per step")
    ap.add_argument("--steps", type=int, default=3, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--vs-trl", action="store_true", help="also time TRL's trainer")
    ap.add_argument("--device", default=None, help="default: cuda when available")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from .notebook import quiet

    quiet()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.shape == "gpt2":
        policy, rm, tok, prompts = _gpt2_world(device)
    else:
        policy, rm, tok, prompts = _tiny_world(device)
    mini = args.mini_batch or max(1, args.batch // 4)
    lr = 1.41e-5 if args.shape else 3e-4
    if args.method == "grpo":
        if args.batch % args.group_size:
            ap.error(f"--batch: expected a multiple of --group-size={args.group_size}")
        cfg = GroupConfig(
            prompts_per_step=args.batch // args.group_size,
            group_size=args.group_size,
            epochs=args.epochs,
            mini_batch_size=mini,
            max_new_tokens=args.response_length,
            lr=lr,
            beta=0.05,
        )
    else:
        cfg = PPOConfig(
            batch_size=args.batch,
            mini_batch_size=mini,
            ppo_epochs=args.epochs,
            max_new_tokens=args.response_length,
            min_new_tokens=args.response_length,
            lr=lr,
        )
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "world": args.shape or "tiny",
        "method": args.method,
        "batch": args.batch,
        "mini_batch": mini,
        "epochs": args.epochs,  # PPO's ppo_epochs, or GRPO's epochs (TRL: num_iterations)
        "response_length": args.response_length,
        "timed_steps": args.steps,
        "torch": torch.__version__,
    }
    result.update(bench_ours(policy, rm, tok, prompts, cfg, args.warmup, args.steps))
    if args.vs_trl:
        bench_theirs = bench_trl_grpo if args.method == "grpo" else bench_trl
        result.update(bench_theirs(policy, rm, tok, prompts, cfg, args.warmup, args.steps))
        result["ratio"] = result["step_seconds"] / result["trl_step_seconds"]
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
