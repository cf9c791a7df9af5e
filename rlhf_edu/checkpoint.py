"""Checkpoints of a PPO run, written atomically and resumed with nothing lost.

Layout of ``checkpoint_dir``::

    step-000010/policy.safetensors        the policy's weights
    step-000010/value_head.safetensors    the value head's weights
    step-000010/trainer_state.pt          optimizer, KL controller, RNG states, history
    latest                                the name of the newest complete checkpoint

A checkpoint is written into a temporary directory and renamed into place, and ``latest``
is replaced by a rename too, so an interrupted write never leaves a half checkpoint that
``resume`` would read. Weights are safetensors; the trainer state is loaded with
``weights_only=True``. Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

KEEP = 2  # checkpoints kept on disk (the newest ones)


def save_checkpoint(trainer, checkpoint_dir: str | os.PathLike) -> Path:
    """Write ``trainer``'s models and state for its current step; return the directory."""
    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{trainer.step:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(trainer.policy, str(tmp / "policy.safetensors"))
    save_model(trainer.value_head, str(tmp / "value_head.safetensors"))
    torch.save(trainer.state_dict(), tmp / "trainer_state.pt")
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest_tmp = root / f".latest-{os.getpid()}"
    latest_tmp.write_text(name)
    os.replace(latest_tmp, root / "latest")
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``checkpoint_dir``, or None."""
    pointer = Path(checkpoint_dir) / "latest"
    if not pointer.exists():
        return None
    path = Path(checkpoint_dir) / pointer.read_text().strip()
    return path if (path / "trainer_state.pt").exists() else None


def load_checkpoint(trainer, checkpoint_dir: str | os.PathLike) -> bool:
    """Restore ``trainer`` from the newest checkpoint; return False when there is none."""
    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        return False
    device = trainer.device
    load_model(trainer.policy, str(path / "policy.safetensors"), device=str(device))
    load_model(trainer.value_head, str(path / "value_head.safetensors"), device=str(device))
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)
    trainer.load_state_dict(state)
    return True
