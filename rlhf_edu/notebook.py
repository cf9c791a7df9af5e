"""The one-line setup cell of every lesson: ``p = setup()``.

It silences load progress bars, seeds everything, picks the preset and the device, and
prints them with the versions of the packages a lesson uses (so a learner's report of a
problem says what they ran). Taught in every notebook's first code cell.
"""

from __future__ import annotations

import os
import platform
import random

COLAB_INSTALL = 'pip install -q "rlhf-edu @ git+https://github.com/rlhf-edu/rlhf-edu"'


def quiet() -> None:
    """Silence transformers' load progress bars and info logs, and TRL's experimental warning."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    """The versions of the packages the course uses."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("rlhf-edu", "torch", "transformers", "datasets", "ipywidgets", "matplotlib"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def setup(preset: str = "auto", device=None, seed: int = 0, n_prompts: int = 2048):
    """Load the preset for a lesson and print preset, device and versions; return the preset.

    Args:
        preset: ``"auto"``, ``"tiny"`` or ``"gpt2-imdb"`` (see ``presets.load_preset``).
        device: None picks CUDA when available.
        seed: seeds Python, NumPy and torch.
    """
    quiet()
    seed_everything(seed)
    from .presets import load_preset

    p = load_preset(preset, device=device, n_prompts=n_prompts, seed=seed)
    if p.name == "tiny" and p.device.type == "cpu":
        # A 1M-parameter model gains nothing from more threads, and on a busy machine extra
        # threads cost several times the CPU time; one thread also makes runs reproducible
        # across machines with different core counts.
        import torch

        torch.set_num_threads(1)
    v = versions()
    print(
        f"preset: {p.name} | device: {p.device} | " + " | ".join(f"{k} {x}" for k, x in v.items())
    )
    return p
