"""The two worlds of the course, loaded through one code path: ``load_preset``.

| preset | policy / reference | reward model | gold judge | prompts |
|---|---|---|---|---|
| ``tiny`` | a small GPT-2 shipped in ``rlhf_edu/tiny`` | a one-logit GPT-2 trained on noisy pairs | ``judge.GoldJudge`` | cut from the synthetic corpus |
| ``gpt2-imdb`` | ``lvwerra/gpt2-imdb`` | ``lvwerra/distilbert-imdb`` (POSITIVE logit) | ``siebert/sentiment-roberta-large-english`` (``2 P(POSITIVE) - 1``) | IMDB reviews, first 2-8 tokens |

Every model is loaded from a local folder in the hub's layout (``artifact_dir``): the hub's
cache snapshot of a pinned commit (``HUB``), or the same repository's folder in a mirror made
by ``python -m rlhf_edu.download DIR``. ``load_model`` then takes ``model.safetensors`` where
the folder has it and otherwise ``pytorch_model.bin`` through transformers' weights-only
loading (``torch.load(weights_only=True)``, torch >= 2.6). Since ``from_pretrained`` is only
ever given a local folder, transformers' automatic safetensors conversion (which can open a
pull request on the author's repository) is never reached. No remote code runs.

``auto`` picks ``gpt2-imdb`` on a GPU and ``tiny`` otherwise. When the model hub cannot be
reached (``HF_HUB_OFFLINE=1``, or no answer within 3 seconds) and no mirror is given,
``auto`` says so in one line and falls back to ``tiny``.

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

# Every hub artifact of the GPU preset, pinned to a commit: {role: (repo_id, revision)}.
# The commits were read from the hub's public pages (see README, "The two presets").
HUB = {
    # "upload flax model" (2021-05-23): pytorch_model.bin only (safetensors only in refs/pr/1)
    "policy": ("lvwerra/gpt2-imdb", "f1bfd819c6bee6c18fa5f95bfe88d9198839a435"),
    # "Librarian Bot: Add base_model information" (2023-09-11): pytorch_model.bin only
    "reward": ("lvwerra/distilbert-imdb", "588e728f47af75b2ca1b6e711c980bd7e6039a6d"),
    # "Convert dataset to Parquet": plain_text/{train,test,unsupervised}-00000-of-00001.parquet
    "dataset": ("stanfordnlp/imdb", "610bdae015434d0a02e81468da0abb51c2164bc8"),
    # RoBERTa-large fine-tuned on 15 sentiment data sets; "Added contact details"
    # (2021-05-12), after the NEGATIVE/POSITIVE labels; pytorch_model.bin only
    "gold": ("siebert/sentiment-roberta-large-english", "cb37c121623dc457dd779a627aa487ff8e4313f9"),
}
GPT2_IMDB = {role: repo_id for role, (repo_id, _) in HUB.items()}
IMDB_TRAIN = "plain_text/train-00000-of-00001.parquet"  # the reviews, inside the dataset folder
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
BIN_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# What a model folder needs besides its weights (configs, tokenizer files).
MODEL_FILES = ["*.json", "*.txt", "*.model"]
TORCH_FOR_BIN = (2, 6)  # transformers loads .bin only with torch >= 2.6 (CVE-2025-32434)


@dataclass
class Preset:
    """Everything a lesson needs: models, tokenizer, reward, judge, prompts, device.

    Attributes:
        name: ``"tiny"`` or ``"gpt2-imdb"``.
        policy: the causal LM to train.
        ref_policy: a frozen copy of the policy at the start (for KL).
        tokenizer: left-padding tokenizer with a pad token distinct from EOS.
        reward: ``RewardModel``: ``reward(texts) -> (B,)`` learned scores.
        gold: ``gold(texts) -> (B,)`` in [-1, 1] (``GoldJudge`` or ``ClassifierGold``), or
            None where the preset has none (a mirror saved without the gold model).
        prompts: a list of prompt strings.
        device: where the models live.
        max_new_tokens: a response length that suits the preset.
        source: the mirror folder the preset was loaded from (None: package or hub cache).
    """

    name: str
    policy: torch.nn.Module
    ref_policy: torch.nn.Module
    tokenizer: object
    reward: RewardModel
    gold: object | None
    prompts: list[str]
    device: torch.device
    max_new_tokens: int = 24
    notes: list[str] = field(default_factory=list)
    source: Path | None = None

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


class ClassifierGold:
    """``gold(texts) -> (B,)``: ``2 P(POSITIVE | text) - 1`` from a sentiment classifier.

    The GPU preset's gold judge, a larger classifier than the reward model and one the policy
    is never trained on, on the same [-1, 1] scale as the tiny preset's ``GoldJudge``. For a
    two-label classifier it equals ``tanh((z_pos - z_neg) / 2)``.

    Args:
        model: an ``AutoModelForSequenceClassification``.
        tokenizer: its tokenizer.
        positive: the index of the POSITIVE label (``config.label2id["POSITIVE"]``).

    Taught in notebooks/05_kl_penalty.ipynb and notebooks/08_beyond_ppo.ipynb.
    """

    def __init__(self, model, tokenizer, positive: int, max_length: int = 512):
        self._scorer = RewardModel(model, tokenizer, label=positive, max_length=max_length)
        self._load, self._max_length = None, max_length

    @classmethod
    def lazy(cls, load, max_length: int = 512) -> ClassifierGold:
        """A gold judge whose classifier is loaded (from the hub: downloaded) on first use.

        ``load() -> (model, tokenizer, positive)``. The GPU preset's gold is 1.4 GB: a lesson
        that never scores with it never downloads it.
        """
        gold = cls.__new__(cls)
        gold._scorer, gold._load, gold._max_length = None, load, max_length
        return gold

    @property
    def scorer(self) -> RewardModel:
        """The classifier as a ``RewardModel`` on the POSITIVE logit (loaded on first use)."""
        if self._scorer is None:
            model, tokenizer, positive = self._load()
            self._scorer = RewardModel(
                model, tokenizer, label=positive, max_length=self._max_length
            )
        return self._scorer

    @torch.no_grad()
    def __call__(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        if isinstance(texts, str):
            raise ValueError("texts: expected a list of strings, got a single string")
        texts = list(texts)
        model = self.scorer.model.eval()
        out = []
        for i in range(0, len(texts), batch_size):
            logits = model(**self.scorer.encode(texts[i : i + batch_size])).logits.float()
            out.append(2 * logits.softmax(-1)[:, self.scorer.label] - 1)
        return torch.cat(out)

    def __repr__(self) -> str:
        name = "not loaded yet" if self._scorer is None else type(self._scorer.model).__name__
        return f"ClassifierGold({name}, 2 P(POSITIVE) - 1)"


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


def _torch_release() -> tuple[int, ...]:
    return tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])


def _name(role: str) -> str:
    repo_id, revision = HUB[role]
    return (
        f"{role} model {repo_id}@{revision[:7]}"
        if role != "dataset"
        else f"{repo_id}@{revision[:7]}"
    )


def artifact_dir(role: str, source: str | Path | None = None) -> Path:
    """The local folder that holds a GPU-preset artifact's files, in the hub's layout.

    ``source`` given: ``source / repo_id`` (a mirror, see ``rlhf_edu.download``). Otherwise the
    hub's cache snapshot of the pinned commit ``HUB[role]``, downloaded first when the hub can
    be reached (only the configs, the tokenizer and one weights format: safetensors where the
    commit has it, else ``pytorch_model.bin``). Raises ``RuntimeError`` naming the artifact and
    the cause.
    """
    if role not in HUB:
        raise ValueError(f"role: expected one of {tuple(HUB)}, got {role!r}")
    repo_id, revision = HUB[role]
    if source is not None:
        folder = Path(source) / repo_id
        if not folder.is_dir():
            raise RuntimeError(f"{_name(role)}: the mirror {source} has no folder {folder}")
        return folder
    from huggingface_hub import list_repo_files, snapshot_download

    repo_type = "dataset" if role == "dataset" else "model"
    if not hub_reachable():
        try:
            return Path(
                snapshot_download(
                    repo_id, repo_type=repo_type, revision=revision, local_files_only=True
                )
            )
        except Exception as err:  # LocalEntryNotFoundError and kin
            raise RuntimeError(
                f"{_name(role)} is not in the local cache and the model hub cannot be reached "
                "(HF_HUB_OFFLINE=1 or no network); make a mirror with "
                "`python -m rlhf_edu.download DIR` where there is network, or use the 'tiny' "
                f"preset ({err.__class__.__name__})"
            ) from err
    if role == "dataset":
        patterns = [IMDB_TRAIN]
    else:
        files = list_repo_files(repo_id, repo_type=repo_type, revision=revision)
        has_safe = any(
            f.startswith("model") and f.endswith((".safetensors", ".safetensors.index.json"))
            for f in files
        )
        patterns = MODEL_FILES + (["model*.safetensors*"] if has_safe else ["pytorch_model*.bin*"])
    return Path(
        snapshot_download(repo_id, repo_type=repo_type, revision=revision, allow_patterns=patterns)
    )


def weights_format(folder: Path, what: str) -> str:
    """``"safetensors"`` or ``"bin"``: the weights ``load_model`` will take from ``folder``.

    Raises ``RuntimeError`` naming ``what`` when the folder holds no loadable weights (it lists
    what the folder holds) or holds only ``.bin`` weights and torch is older than 2.6.
    """
    names = sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else []
    if any(n in names for n in SAFE_WEIGHTS):
        return "safetensors"
    if any(n in names for n in BIN_WEIGHTS):
        if _torch_release() < TORCH_FOR_BIN:
            raise RuntimeError(
                f"{what}: {folder} holds only pytorch_model.bin, which transformers loads only "
                f"with torch >= 2.6 (weights-only loading); this is torch {torch.__version__}: "
                "upgrade torch, or re-save the model as safetensors"
            )
        return "bin"
    raise RuntimeError(
        f"{what}: no loadable weights file in {folder} (expected model.safetensors or "
        f"pytorch_model.bin); it holds: {', '.join(names) or 'nothing'}"
    )


def load_model(cls, folder: Path, what: str):
    """``cls.from_pretrained(folder)`` on safetensors where present, else the weights-only ``.bin``.

    ``folder`` is always local, so transformers never tries its automatic safetensors
    conversion (that lives on its hub branch only).
    """
    fmt = weights_format(folder, what)
    return cls.from_pretrained(folder, use_safetensors=fmt == "safetensors")


def _load_tiny(device: torch.device, n_prompts: int, seed: int) -> Preset:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR / "policy", padding_side="left")
    policy = load_model(AutoModelForCausalLM, TINY_DIR / "policy", "tiny policy")
    rm = load_model(AutoModelForSequenceClassification, TINY_DIR / "reward_model", "tiny reward")
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


def positive_index(model, what: str) -> int:
    """``model.config.label2id["POSITIVE"]``; a clear error naming ``what`` when it is absent."""
    label2id = dict(getattr(model.config, "label2id", None) or {})
    if "POSITIVE" not in label2id:
        raise RuntimeError(
            f"{what}: its config has no POSITIVE label (label2id = {label2id}); the reward is "
            "the POSITIVE logit"
        )
    return int(label2id["POSITIVE"])


def _load_classifier(role: str, source, device: torch.device):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = artifact_dir(role, source)
    model = load_model(AutoModelForSequenceClassification, folder, _name(role))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer, positive_index(model, _name(role))


def _load_gpt2_imdb(device: torch.device, n_prompts: int, seed: int, source=None) -> Preset:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = artifact_dir("policy", source)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    policy = load_model(AutoModelForCausalLM, folder, _name("policy"))
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # GPT-2 has no pad token. A new one gets the mean embedding (deterministically), so its
        # tied output logit is an average one, far below the likely tokens'.
        n_old = policy.get_input_embeddings().weight.shape[0]
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        policy.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            emb = policy.get_input_embeddings().weight
            emb[n_old:] = emb[:n_old].mean(0)
            out = policy.get_output_embeddings().weight
            out[n_old:] = out[:n_old].mean(0)  # the same row when tied, as in GPT-2
        policy.config.pad_token_id = tokenizer.pad_token_id
    policy.to(device)
    rm_model, rm_tokenizer, label = _load_classifier("reward", source, device)
    notes = []
    if source is not None and not (Path(source) / HUB["gold"][0]).is_dir():
        gold = None  # a mirror saved with --skip-gold
        notes.append(f"no gold judge: the mirror {source} has no {HUB['gold'][0]}")
        print(f"gold judge: none ({HUB['gold'][0]} is not in the mirror {source})")
    else:  # loaded (and downloaded) only when a lesson first scores with it
        gold = ClassifierGold.lazy(lambda: _load_classifier("gold", source, device))
    # Queries of 2-8 tokens from IMDB reviews, as in TRL's gpt2-sentiment example.
    data_file = artifact_dir("dataset", source) / IMDB_TRAIN
    if not data_file.is_file():
        raise RuntimeError(f"{_name('dataset')}: no file {data_file}")
    reviews = Dataset.from_parquet(str(data_file))["text"]
    if len(reviews) < n_prompts:
        raise ValueError(
            f"n_prompts: expected at most {len(reviews)} (the reviews), got {n_prompts}"
        )
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
        gold,
        prompts,
        device,
        max_new_tokens=16,
        notes=notes,
        source=Path(source) if source is not None else None,
    )


def load_preset(
    name: str = "auto",
    device: str | torch.device | None = None,
    n_prompts: int = 2048,
    seed: int = 0,
    verbose: bool = True,
    source: str | Path | None = None,
) -> Preset:
    """Load a preset: policy, frozen reference, tokenizer, reward model, gold judge, prompts.

    Args:
        name: ``"auto"`` (``gpt2-imdb`` on a GPU with hub access or a mirror, else
            ``tiny``), ``"tiny"`` or ``"gpt2-imdb"``.
        device: ``"cpu"``, ``"cuda"``, a ``torch.device``, or None for the default.
        n_prompts: how many prompts to prepare.
        seed: picks the prompts.
        source: a mirror folder made by ``python -m rlhf_edu.download DIR`` (loaded offline,
            through the same code as the hub's cache); None: the hub or its cache.

    Taught in notebooks/01_generating_text.ipynb.
    """
    if name not in PRESETS:
        raise ValueError(f"name: expected one of {PRESETS}, got {name!r}")
    if isinstance(n_prompts, bool) or not (isinstance(n_prompts, int) and n_prompts >= 1):
        raise ValueError(f"n_prompts: expected a positive int, got {n_prompts!r}")
    if source is not None and not Path(source).is_dir():
        raise ValueError(f"source: expected a mirror folder, got {str(source)!r} (not a folder)")
    device = require_device(device) or default_device()  # names `device` and the choices
    if name == "auto":
        name = "gpt2-imdb" if device.type == "cuda" else "tiny"
        if name == "gpt2-imdb" and source is None and not hub_reachable():
            print("model hub unreachable (or HF_HUB_OFFLINE=1): using the offline 'tiny' preset")
            name = "tiny"
    if name == "tiny":
        return _load_tiny(device, n_prompts, seed)
    try:
        return _load_gpt2_imdb(device, n_prompts, seed, source)
    except RuntimeError as err:
        raise RuntimeError(f"name: preset 'gpt2-imdb' could not be loaded: {err}") from err
