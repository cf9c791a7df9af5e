"""A stand-in for the GPU preset's hub artifacts, in the hub's exact layout, for the tests.

``build_mirror(DIR)`` writes what ``python -m rlhf_edu.download DIR`` would, but small and
in the layout the hub itself has (``.bin`` weights only, no safetensors):

- ``DIR/lvwerra/gpt2-imdb``: a 2-layer ``GPT2LMHeadModel`` with its own byte-level BPE
  tokenizer and NO pad token (as the hub's), trained briefly as a language model on the tiny
  corpus (``rlhf_edu.corpus``);
- ``DIR/lvwerra/distilbert-imdb``: a 2-layer ``DistilBertForSequenceClassification`` with
  NEGATIVE/POSITIVE labels and its own WordPiece tokenizer, trained briefly on the sign of the
  rule-based gold judge (``rlhf_edu.judge``);
- ``DIR/siebert/sentiment-roberta-large-english``: the stand-in gold, a wider DistilBERT
  classifier trained the same way from another seed (``gold=False`` leaves it out);
- ``DIR/stanfordnlp/imdb/plain_text/train-00000-of-00001.parquet``: IMDB's schema
  (``text``, ``label``; 1 = positive by the gold judge's sign).

The whole build takes seconds on 2 CPU cores. Used by tests/test_presets.py and
tests/test_download.py (``from standin import build_mirror``).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from rlhf_edu import corpus
from rlhf_edu.judge import gold_scores
from rlhf_edu.presets import HUB, IMDB_TRAIN

LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


def _texts(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Reviews and review prefixes (what a reward model scores), labelled by the gold sign."""
    rng = random.Random(seed)
    texts = []
    for review in corpus.generate_reviews(n, seed=seed):
        words = review.split()
        texts.append(
            " ".join(words[: rng.randint(3, len(words))]) if rng.random() < 0.5 else review
        )
    scores = gold_scores(texts)
    kept = [(t, int(s > 0)) for t, s in zip(texts, scores) if s != 0]
    return [t for t, _ in kept], [y for _, y in kept]


def _save_bin_only(model, tokenizer, folder: Path) -> None:
    """Save as the hub holds these repositories: ``pytorch_model.bin``, no safetensors.

    transformers 5 writes only safetensors, so the ``.bin`` is written as the old
    ``save_pretrained`` wrote it: a pickled ``state_dict`` (``torch.save``).
    """
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for f in folder.glob("*.safetensors*"):
        f.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def _policy(folder: Path, reviews: list[str], steps: int, seed: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        reviews,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    # As lvwerra/gpt2-imdb: bos = eos = unk = <|endoftext|>, and no pad token.
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    eos = tokenizer.eos_token
    rng = random.Random(seed)
    for _ in range(steps):
        batch = [r + eos for r in rng.sample(reviews, 16)]
        ids = torch.tensor(tokenizer("".join(batch))["input_ids"])
        n = (len(ids) // 64) * 64
        ids = ids[:n].view(-1, 64)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    _save_bin_only(model, tokenizer, folder)


def _wordpiece(texts: list[str], vocab_size: int = 600):
    """A WordPiece tokenizer with a vocabulary built here, deterministically.

    tokenizers' ``WordPieceTrainer`` numbers its vocabulary in a different order from one
    process to the next (so the classifiers trained on it, and every score the lessons assert
    on, would change from run to run); here the vocabulary is the special tokens, every
    character alone and as a ``##`` continuation, then the most frequent lower-cased words
    (ties broken alphabetically), up to ``vocab_size``.
    """
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import DistilBertTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in words for c in w})
    vocab = special + chars + [f"##{c}" for c in chars]
    by_count = sorted(words, key=lambda w: (-words[w], w))
    vocab += [w for w in by_count if w not in set(vocab)][: max(0, vocab_size - len(vocab))]
    wp = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    wp.normalizer = normalizer
    wp.pre_tokenizer = pre
    cls_id, sep_id = wp.token_to_id("[CLS]"), wp.token_to_id("[SEP]")
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return DistilBertTokenizerFast(
        tokenizer_object=wp,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


def _classifier(folder: Path, texts, labels, tokenizer, dim: int, steps: int, seed: int) -> float:
    """Train a DistilBERT sentiment classifier on the gold sign; return held-out accuracy."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        n_layers=2,
        n_heads=2,
        dim=dim,
        hidden_dim=2 * dim,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        pad_token_id=tokenizer.pad_token_id,
    )
    model = DistilBertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n_train = len(texts) - 200
    rng = random.Random(seed)
    for _ in range(steps):
        idx = rng.sample(range(n_train), 32)
        enc = tokenizer(
            [texts[i] for i in idx],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=64,
        )
        loss = model(**enc, labels=torch.tensor([labels[i] for i in idx])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        enc = tokenizer(
            texts[n_train:], return_tensors="pt", padding=True, truncation=True, max_length=64
        )
        pred = model(**enc).logits.argmax(-1)
    accuracy = (pred == torch.tensor(labels[n_train:])).float().mean().item()
    _save_bin_only(model, tokenizer, folder)
    return accuracy


def build_mirror(root: str | Path, gold: bool = True, steps: int = 80, seed: int = 0) -> dict:
    """Write the stand-in GPU-preset mirror under ``root``; return the classifiers' accuracies.

    ``gold=False`` leaves out the gold model (as ``download --skip-gold`` does).
    """
    from datasets import Dataset

    root = Path(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is fastest on a busy machine
    try:
        reviews = corpus.generate_reviews(2000, seed=seed)
        _policy(root / HUB["policy"][0], reviews, steps, seed)
        texts, labels = _texts(3000, seed + 1)
        tokenizer = _wordpiece(texts)
        report = {
            "reward_accuracy": _classifier(
                root / HUB["reward"][0], texts, labels, tokenizer, 64, steps, seed
            )
        }
        if gold:
            report["gold_accuracy"] = _classifier(
                root / HUB["gold"][0], texts, labels, tokenizer, 96, steps, seed + 1
            )
        imdb_texts, imdb_labels = _texts(3000, seed + 2)  # >= 2048: setup()'s n_prompts
        data = root / HUB["dataset"][0] / IMDB_TRAIN
        data.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict({"text": imdb_texts, "label": imdb_labels}).to_parquet(str(data))
    finally:
        torch.set_num_threads(threads)
    return report


if __name__ == "__main__":  # python tests/standin.py DIR: a stand-in mirror to try lessons on
    import sys

    print(build_mirror(sys.argv[1]))
