"""The two worlds of the course, loaded through one code path: ``load_preset``.

| preset | policy / reference | reward model | gold judge | prompts |
|---|---|---|---|---|
| ``tiny`` | a small GPT-2 shipped in ``rlhf_edu/tiny`` | a one-logit GPT-2 trained on noisy pairs | ``judge.GoldJudge`` | cut from the synthetic corpus |
| ``gpt2-imdb`` | ``lvwerra/gpt2-imdb`` | ``lvwerra/distilbert-imdb`` (POSITIVE logit) | none | IMDB reviews, first 2-8 tokens |

``auto`` picks ``gpt2-imdb`` on a GPU and ``tiny`` otherwise. When the model hub cannot be
reached (``HF_HUB_OFFLINE=1``, or no answer within 3 seconds) ``auto`` says so in one line
and falls back to ``tiny``. Only safetensors are loaded; no remote code runs.

Taught in notebooks/01_generating_text.ipynb.
"""

from __future__ import annotations

import copy
import os
import random
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import corpus
from ._checks import require_device
from .judge import GoldJudge
from .scoring import RewardModel

TINY_DIR = Path(__file__).parent / "tiny"
PRESETS = ("auto", "tiny", "gpt2-imdb")
HUB_HOST = "huggingface.co"
GPT2_IMDB = {
    "policy": "lvwerra/gpt2-imdb",
    "reward": "lvwerra/distilbert-imdb",
    "dataset": "stanfordnlp/imdb",
}


@dataclass
class Preset:
    """Everything a lesson needs: models, tokenizer, reward, judge, prompts, device.

    Attributes:
        name: ``"tiny"`` or ``"gpt2-imdb"``.
        policy: the causal LM to train.
        ref_policy: a frozen copy of the policy at the start (for KL).
        tokenizer: left-padding tokenizer with a pad token distinct from EOS.
        reward: ``RewardModel``: ``reward(texts) -> (B,)`` learned scores.
        gold: ``GoldJudge`` (``gold(texts) -> (B,)``), or None where the preset has none.
        prompts: a list of prompt strings.
        device: where the models live.
        max_new_tokens: a response length that suits the preset.
    """

    name: str
    policy: torch.nn.Module
    ref_policy: torch.nn.Module
    tokenizer: object
    reward: RewardModel
    gold: GoldJudge | None
    prompts: list[str]
    device: torch.device
    max_new_tokens: int = 24
    notes: list[str] = field(default_factory=list)

    def fresh_policy(self) -> torch.nn.Module:
        """A trainable copy of the reference policy (start a new run from the same point)."""
        model = copy.deepcopy(self.ref_policy)
        for p in model.parameters():
            p.requires_grad_(True)
        return model.train()

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.policy.parameters())
        return (
            f"Preset({self.name!r}, device={self.device}, policy={n / 1e6:.2f}M params, "
            f"{len(self.prompts)} prompts, gold={'yes' if self.gold else 'no'})"
        )


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the model hub answers within ``timeout`` seconds and offline mode is off.

    The DNS lookup runs in a thread, so a machine without network answers in ``timeout``
    seconds instead of hanging for a minute.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    result = []

    def probe():
        try:
            socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def _load_tiny(device: torch.device, n_prompts: int, seed: int) -> Preset:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR / "policy", padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(TINY_DIR / "policy", use_safetensors=True)
    rm = AutoModelForSequenceClassification.from_pretrained(
        TINY_DIR / "reward_model", use_safetensors=True
    )
    rm_tokenizer = AutoTokenizer.from_pretrained(TINY_DIR / "reward_model")
    policy.to(device)
    rm.to(device).eval()
    for p in rm.parameters():
        p.requires_grad_(False)
    # Prompts from reviews the policy never saw (the corpus was drawn with seed 0).
    prompts = corpus.make_prompts(corpus.generate_reviews(n_prompts, seed=1000 + seed), seed=seed)
    return Preset(
        "tiny",
        policy,
        _frozen_copy(policy),
        tokenizer,
        RewardModel(rm, rm_tokenizer),
        GoldJudge(),
        prompts,
        device,
        max_new_tokens=24,
    )


def _load_gpt2_imdb(device: torch.device, n_prompts: int, seed: int) -> Preset:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(GPT2_IMDB["policy"], padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(GPT2_IMDB["policy"], use_safetensors=True)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        policy.resize_token_embeddings(len(tokenizer))
        policy.config.pad_token_id = tokenizer.pad_token_id
    rm_model = AutoModelForSequenceClassification.from_pretrained(
        GPT2_IMDB["reward"], use_safetensors=True
    )
    rm_tokenizer = AutoTokenizer.from_pretrained(GPT2_IMDB["reward"])
    label = rm_model.config.label2id.get("POSITIVE", 1)
    rm_model.to(device).eval()
    policy.to(device)
    # Queries of 2-8 tokens from IMDB reviews, as in TRL's gpt2-sentiment example.
    reviews = load_dataset(GPT2_IMDB["dataset"], split="train")["text"]
    rng = random.Random(seed)
    picked = rng.sample(range(len(reviews)), n_prompts)
    prompts = []
    for i in picked:
        ids = tokenizer(reviews[i].replace("<br />", " "))["input_ids"][: rng.randint(2, 8)]
        prompts.append(tokenizer.decode(ids))
    return Preset(
        "gpt2-imdb",
        policy,
        _frozen_copy(policy),
        tokenizer,
        RewardModel(rm_model, rm_tokenizer, label=label, max_length=512),
        None,
        prompts,
        device,
        max_new_tokens=16,
    )


def load_preset(
    name: str = "auto",
    device: str | torch.device | None = None,
    n_prompts: int = 2048,
    seed: int = 0,
    verbose: bool = True,
) -> Preset:
    """Load a preset: policy, frozen reference, tokenizer, reward model, gold judge, prompts.

    Args:
        name: ``"auto"`` (``gpt2-imdb`` on a GPU with hub access, else ``tiny``), ``"tiny"``
            or ``"gpt2-imdb"``.
        device: ``"cpu"``, ``"cuda"``, a ``torch.device``, or None for the default.
        n_prompts: how many prompts to prepare.
        seed: picks the prompts.

    Taught in notebooks/01_generating_text.ipynb.
    """
    if name not in PRESETS:
        raise ValueError(f"name: expected one of {PRESETS}, got {name!r}")
    if not (isinstance(n_prompts, int) and n_prompts >= 1):
        raise ValueError(f"n_prompts: expected a positive int, got {n_prompts!r}")
    device = require_device(device) or default_device()  # names `device` and the choices
    if name == "auto":
        name = "gpt2-imdb" if device.type == "cuda" else "tiny"
        if name == "gpt2-imdb" and not hub_reachable():
            print("model hub unreachable (or HF_HUB_OFFLINE=1): using the offline 'tiny' preset")
            name = "tiny"
    if name == "tiny":
        return _load_tiny(device, n_prompts, seed)
    if not hub_reachable():  # only a local cache can serve: never wait on the network
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return _load_gpt2_imdb(device, n_prompts, seed)
    except OSError as err:  # not cached and no hub
        raise RuntimeError(
            f"name: preset 'gpt2-imdb' needs {GPT2_IMDB['policy']}, {GPT2_IMDB['reward']} and "
            f"{GPT2_IMDB['dataset']} from the model hub or its cache ({err.__class__.__name__}); "
            "use load_preset('tiny') offline"
        ) from err
