"""The first two code cells of every lesson: the Colab install cell and ``p = setup()``.

``setup()`` silences load progress bars, seeds everything, picks the preset and the device,
and prints them with the versions of the packages a lesson uses (so a learner's report of a
problem says what they ran). Two environment variables switch every notebook at once,
without editing a cell (an instructor's mirror, see ``rlhf_edu.download``):

- ``RLHF_EDU_PRESET``: the preset a notebook's ``setup()`` loads where the cell leaves it at
  ``"auto"``; a cell that names a preset (``setup("tiny")``, a lesson that needs the tiny
  world) keeps it.
- ``RLHF_EDU_SOURCE``: the mirror folder ``gpt2-imdb`` is loaded from (``source=``), where
  the cell gives none.

``COLAB_INSTALL_CELL`` is the install cell, the same in every notebook: on Colab only, it
installs the course at its pinned release ``COLAB_RELEASE`` and then ``restart_notice`` says
in one line whether pip changed a package Colab already had (then the runtime must be
restarted). Taught in every notebook's first two code cells.
"""

from __future__ import annotations

import os
import platform
import random

COLAB_REPO = "https://github.com/rlhf-edu/rlhf-edu"
# The release the Colab install cell installs; tests/test_notebooks.py checks that it is
# "v" + the package version, so a version bump without a new tag fails the tests.
COLAB_RELEASE = "v0.1.0"
COLAB_REQUIREMENT = f"rlhf-edu @ git+{COLAB_REPO}@{COLAB_RELEASE}"
COLAB_INSTALL_CELL = f"""import sys
if "google.colab" in sys.modules:  # on Colab only: install the course at its pinned release
    import importlib.metadata as md
    before = {{d.metadata["Name"].lower(): d.version for d in md.distributions()}}
    %pip install "{COLAB_REQUIREMENT}"
    from rlhf_edu.notebook import restart_notice; restart_notice(before)"""


def installed() -> dict[str, str]:
    """``{name: version}`` of every installed distribution, names lower-cased (as the cell)."""
    import importlib.metadata as md

    return {d.metadata["Name"].lower(): d.version for d in md.distributions()}


def restart_notice(before: dict[str, str]) -> list[str]:
    """Print one line: must the runtime be restarted after the install? Return what changed.

    Compares the installed distributions now against ``before`` (taken by the install cell
    just before ``%pip install``). A package the runtime already had that pip upgraded,
    downgraded or removed is stale in a running kernel, so the runtime must be restarted;
    packages pip only added are not.

    Args:
        before: ``{name: version}`` as ``installed()`` returns it.

    Taught in every notebook's install cell.
    """
    if not isinstance(before, dict):
        raise ValueError(f"before: expected a dict of name -> version, got {type(before).__name__}")
    now = installed()
    changed = sorted(name for name, version in before.items() if now.get(name) != version)
    if not changed:
        print("pip changed none of the packages this runtime had: no restart needed")
        return []
    what = ", ".join(f"{n} {before[n]} -> {now.get(n, 'removed')}" for n in changed)
    print(
        "Restart the runtime (Runtime > Restart session), then run from the next cell: "
        f"pip changed {what}"
    )
    return changed


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


def setup(preset: str = "auto", device=None, seed: int = 0, n_prompts: int = 2048, source=None):
    """Load the preset for a lesson and print preset, device and versions; return the preset.

    Args:
        preset: ``"auto"``, ``"tiny"`` or ``"gpt2-imdb"`` (see ``presets.load_preset``);
            ``"auto"`` yields to ``RLHF_EDU_PRESET`` where that is set.
        device: None picks CUDA when available.
        seed: seeds Python, NumPy and torch.
        source: a mirror folder for ``gpt2-imdb``; None yields to ``RLHF_EDU_SOURCE``.
    """
    quiet()
    seed_everything(seed)
    from .presets import PRESETS, load_preset

    env_preset = os.environ.get("RLHF_EDU_PRESET") or None
    if env_preset is not None and env_preset not in PRESETS:
        raise ValueError(f"RLHF_EDU_PRESET: expected one of {PRESETS}, got {env_preset!r}")
    if preset == "auto" and env_preset is not None:
        preset = env_preset
    if source is None:
        source = os.environ.get("RLHF_EDU_SOURCE") or None
    p = load_preset(preset, device=device, n_prompts=n_prompts, seed=seed, source=source)
    if p.name == "tiny" and p.device.type == "cpu":
        # A 1M-parameter model gains nothing from more threads, and on a busy machine extra
        # threads cost several times the CPU time; one thread also makes runs reproducible
        # across machines with different core counts.
        import torch

        torch.set_num_threads(1)
    v = versions()
    where = f" | from: {p.source}" if p.source is not None else ""
    print(
        f"preset: {p.name}{where} | device: {p.device} | "
        + " | ".join(f"{k} {x}" for k, x in v.items())
    )
    return p
