"""Rebuild the offline ``tiny`` world from nothing: ``python -m rlhf_edu.build_tiny``.

Steps (about 3-4 minutes on 2 CPU cores):

1. generate 20,000 synthetic reviews (``corpus``), seed 0;
2. train a byte-level BPE tokenizer on them (``tokenizers``), with ``<|endoftext|>`` as
   EOS and a distinct ``<|pad|>``;
3. train a small GPT-2 (4 layers, 128 wide) on the reviews for one epoch: the policy
   and reference;
4. sample two responses per prompt from it, score them with the gold judge, and label
   pairs like a noisy annotator (Bradley-Terry, ``tau``);
5. train a one-logit GPT-2 sequence classifier, initialised from the policy, with the
   pairwise loss: the reward model;
6. measure held-out pair accuracy and Spearman correlation with gold on fresh samples,
   and write everything (safetensors, tokenizer, configs, ``build_report.json``) under
   ``rlhf_edu/tiny/``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import corpus
from .generation import sample
from .judge import gold_scores
from .preferences import evaluate_pairs, label_pairs, train_reward_model
from .scoring import RewardModel

TINY_DIR = Path(__file__).parent / "tiny"
EOS, PAD = "<|endoftext|>", "<|pad|>"


def build_tokenizer(texts: list[str], vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer and wrap it for transformers (left padding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        unk_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=128,
    )


def gpt2_config(tokenizer, n_layer: int = 4, n_embd: int = 128, **kw):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=4,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **kw,
    )


def train_policy(
    tokenizer,
    texts: list[str],
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
):
    """Train a small GPT-2 language model on ``texts`` (each followed by EOS)."""
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(gpt2_config(tokenizer))
    ids = tokenizer([t + EOS for t in texts])["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    n_steps = epochs * math.ceil(len(ids) / batch_size)
    warmup = 50
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / n_steps))
    )
    rng = random.Random(seed)
    model.train()
    bar = tqdm(total=n_steps, desc="policy LM")
    for _ in range(epochs):
        order = list(range(len(ids)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            batch = [ids[j] for j in order[i : i + batch_size]]
            T = max(len(b) for b in batch)
            x = torch.full((len(batch), T), tokenizer.pad_token_id)
            att = torch.zeros_like(x)
            for r, b in enumerate(batch):
                x[r, : len(b)] = torch.tensor(b)
                att[r, : len(b)] = 1
            labels = x.masked_fill(att == 0, -100)
            loss = model(input_ids=x, attention_mask=att, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model


def sample_texts(
    model,
    tokenizer,
    prompts: list[str],
    batch_size: int = 256,
    seed: int = 0,
    max_new_tokens: int = 24,
) -> list[str]:
    """Sample one continuation per prompt; return prompt + response texts."""
    out = []
    for i in range(0, len(prompts), batch_size):
        roll = sample(
            model,
            tokenizer,
            prompts[i : i + batch_size],
            max_new_tokens=max_new_tokens,
            seed=seed + i,
        )
        out.extend(roll.texts)
    return out


def reward_model_from_policy(policy, tokenizer):
    """A one-logit GPT-2 classifier whose transformer starts as a copy of the policy's."""
    from transformers import GPT2ForSequenceClassification

    rm = GPT2ForSequenceClassification(gpt2_config(tokenizer, num_labels=1))
    rm.transformer.load_state_dict(policy.transformer.state_dict())
    return rm


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def build(
    out: Path = TINY_DIR,
    n_reviews: int = 20_000,
    n_pairs: int = 5000,
    tau: float = 0.1,
    seed: int = 0,
) -> dict:
    """Run steps 1-6 and write the tiny world to ``out``; return the build report."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    reviews = corpus.generate_reviews(n_reviews, seed=seed)
    tokenizer = build_tokenizer(reviews)
    policy = train_policy(tokenizer, reviews, seed=seed)
    t_policy = time.perf_counter() - t0

    # Preference data: two samples per prompt, prompts cut from fresh reviews.
    prompt_reviews = corpus.generate_reviews(n_pairs + 1000, seed=seed + 1)
    prompts = corpus.make_prompts(prompt_reviews, seed=seed + 1)
    texts_a = sample_texts(policy, tokenizer, prompts, seed=seed + 10)
    texts_b = sample_texts(policy, tokenizer, prompts, seed=seed + 20)
    gold_a, gold_b = gold_scores(texts_a), gold_scores(texts_b)
    pairs = label_pairs(texts_a, texts_b, gold_a, gold_b, tau=tau, seed=seed)
    train, test = pairs.split(1000)
    # The same held-out pairs labelled by a noiseless annotator (gold ordering).
    clean = label_pairs(texts_a[-1000:], texts_b[-1000:], gold_a[-1000:], gold_b[-1000:], tau=0)

    rm = RewardModel(reward_model_from_policy(policy, tokenizer), tokenizer)
    train_reward_model(rm, train, epochs=3, lr=5e-4, batch_size=32, seed=seed)

    fresh = sample_texts(
        policy,
        tokenizer,
        corpus.make_prompts(corpus.generate_reviews(1000, seed=seed + 2), seed=seed + 2),
        seed=seed + 30,
    )
    fresh_gold = gold_scores(fresh)
    report = {
        "policy_parameters": sum(p.numel() for p in policy.parameters()),
        "reward_model_parameters": sum(p.numel() for p in rm.model.parameters()),
        "vocab_size": len(tokenizer),
        "corpus_vocabulary_words": len(corpus.vocabulary(reviews)),
        "n_reviews": n_reviews,
        "n_train_pairs": len(train),
        "annotator_tau": tau,
        "rm_pair_accuracy_heldout": evaluate_pairs(rm, test),
        "rm_pair_accuracy_vs_gold_order": evaluate_pairs(rm, clean),
        "rm_spearman_vs_gold_fresh_samples": spearman(rm(fresh).tolist(), fresh_gold),
        "policy_gold_mean": float(torch.tensor(fresh_gold).mean()),
        "policy_gold_std": float(torch.tensor(fresh_gold).std()),
        "corpus_gold_mean": float(torch.tensor(gold_scores(reviews)).mean()),
        "policy_train_seconds": round(t_policy, 1),
        "build_seconds": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__,
    }
    out = Path(out)
    for sub, model in (("policy", policy), ("reward_model", rm.model)):
        (out / sub).mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out / sub)  # safetensors
        tokenizer.save_pretrained(out / sub)
    (out / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--out", type=Path, default=TINY_DIR, help="where to write (default: the package)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = build(args.out, seed=args.seed)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
