"""Save the GPU preset for offline use: ``python -m rlhf_edu.download DIR [--skip-gold]``.

A classroom without reliable network downloads once and loads offline after::

    python -m rlhf_edu.download mirror/             # about 2 GB with the gold model
    RLHF_EDU_PRESET=gpt2-imdb RLHF_EDU_SOURCE=mirror/ jupyter lab   # every notebook uses it

``DIR`` gets one folder per hub id, in the hub's layout:

| folder | what |
|---|---|
| ``DIR/lvwerra/gpt2-imdb`` | the policy, re-saved as ``model.safetensors`` with its tokenizer |
| ``DIR/lvwerra/distilbert-imdb`` | the reward model, the same |
| ``DIR/siebert/sentiment-roberta-large-english`` | the gold judge (left out by ``--skip-gold``) |
| ``DIR/stanfordnlp/imdb/plain_text/train-00000-of-00001.parquet`` | the reviews (``text``, ``label``) |
| ``DIR/manifest.json`` | each artifact's repository, pinned revision, and the sha256 of every file |

Each artifact is fetched at the revision pinned in ``presets.HUB`` and read through the same
loader the preset uses (``presets.artifact_dir``, ``presets.load_model``), so a mirror holds
what the hub path would load. ``load_preset("gpt2-imdb", source=DIR)`` reads it back.

Taught in notebooks/07_ppo.ipynb (the GPU run) and the README's "The two presets".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from . import presets
from .presets import HUB, IMDB_TRAIN, artifact_dir, load_model

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save_model(role: str, src: Path, dst: Path) -> None:
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    cls = AutoModelForCausalLM if role == "policy" else AutoModelForSequenceClassification
    model = load_model(cls, src, f"{role} model {HUB[role][0]}")
    model.save_pretrained(dst)  # safetensors (transformers 5 writes nothing else)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)


def _save_reviews(src: Path, dst: Path) -> None:
    from datasets import Dataset

    reviews = Dataset.from_parquet(str(src / IMDB_TRAIN)).select_columns(["text", "label"])
    (dst / IMDB_TRAIN).parent.mkdir(parents=True, exist_ok=True)
    reviews.to_parquet(str(dst / IMDB_TRAIN))


def download(root: str | Path, skip_gold: bool = False) -> dict:
    """Save every GPU-preset artifact under ``root``; write and return the manifest.

    Args:
        root: the mirror folder (created if missing).
        skip_gold: leave out the gold judge (1.4 GB); the preset then loads with gold None.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"root: expected a folder, got the file {str(root)!r}")
    roles = [r for r in HUB if not (skip_gold and r == "gold")]
    manifest = {"preset": "gpt2-imdb", "artifacts": {}}
    for role in tqdm(roles, desc="gpt2-imdb mirror", unit="artifact"):
        repo_id, revision = HUB[role]
        src, dst = artifact_dir(role), root / repo_id
        dst.mkdir(parents=True, exist_ok=True)
        if role == "dataset":
            _save_reviews(src, dst)
        else:
            _save_model(role, src, dst)
        files = sorted(p for p in dst.rglob("*") if p.is_file())
        manifest["artifacts"][role] = {
            "repo_id": repo_id,
            "revision": revision,
            "files": {p.relative_to(dst).as_posix(): sha256(p) for p in files},
        }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlhf_edu.download",
        description="Save the GPU preset (gpt2-imdb) for offline use, in a folder that "
        'load_preset("gpt2-imdb", source=DIR) and RLHF_EDU_SOURCE=DIR read.',
    )
    parser.add_argument("dir", help="the mirror folder to write")
    parser.add_argument(
        "--skip-gold", action="store_true", help="leave out the gold judge (1.4 GB)"
    )
    args = parser.parse_args(argv)
    if not presets.hub_reachable():
        print("the model hub cannot be reached (or HF_HUB_OFFLINE=1): nothing downloaded")
        return 1
    manifest = download(args.dir, skip_gold=args.skip_gold)
    n = sum(len(a["files"]) for a in manifest["artifacts"].values())
    print(f"saved {len(manifest['artifacts'])} artifacts ({n} files) under {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
