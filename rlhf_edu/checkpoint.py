"""Checkpoints of a PPO run, written atomically and durably, resumed with nothing lost.

Layout of ``checkpoint_dir``::

    step-000010/policy.safetensors        the policy's weights
    step-000010/value_head.safetensors    the value head's weights
    step-000010/trainer_state.pt          optimizer, KL controller, RNG states, history, config
    latest                                the name of the newest checkpoint (for people)

A checkpoint is written into a temporary directory, each file flushed and ``fsync``-ed, the
directory ``fsync``-ed, and only then renamed into place (and the parent directory
``fsync``-ed), so neither an interrupted write nor a power cut leaves a half checkpoint
under a ``step-*`` name. Weights are safetensors; the trainer state is loaded with
``weights_only=True``.

Resuming reads the newest checkpoint. If one of its files is damaged anyway (truncated,
overwritten), it falls back to the previous checkpoint with a warning naming both; if no
checkpoint can be read it stops naming the damaged files. A checkpoint written with
another config (batch size, lr, beta, ...) is refused, naming each differing field with its
old and new value: only ``steps`` and the checkpoint settings may change on resume.

Taught in notebooks/07_ppo.ipynb.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_model

KEEP = 2  # checkpoints kept on disk (the newest ones)
FILES = ("policy.safetensors", "value_head.safetensors", "trainer_state.pt")
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "checkpoint_dir")  # may differ on resume


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a directory on POSIX) from the OS cache to the disk."""
    if path.is_dir() and os.name != "posix":
        return  # directories cannot be opened for fsync on Windows
    fd = os.open(path, os.O_RDONLY if path.is_dir() else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    with open(tmp / "trainer_state.pt", "wb") as f:
        torch.save(trainer.state_dict(), f)
    for file in FILES:
        _fsync(tmp / file)
    _fsync(tmp)
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest_tmp = root / f".latest-{os.getpid()}"
    with open(latest_tmp, "w") as f:
        f.write(name)
        f.flush()
        os.fsync(f.fileno())
    os.replace(latest_tmp, root / "latest")
    _fsync(root)
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints in ``checkpoint_dir`` that hold all their files, newest first."""
    found = sorted(Path(checkpoint_dir).glob("step-*"), reverse=True)
    return [path for path in found if all((path / file).is_file() for file in FILES)]


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint in ``checkpoint_dir`` that holds all its files, or None."""
    found = checkpoints(checkpoint_dir)
    return found[0] if found else None


def _read_state(path: Path) -> dict:
    """Check that the checkpoint at ``path`` reads back whole; return its trainer state.

    Raises ``ValueError`` naming the damaged file.
    """
    for file in FILES[:2]:
        try:
            load_file(path / file)  # parses the header and every tensor
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path / file} is damaged ({err})") from err
    try:
        return torch.load(path / FILES[2], map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated pickle raises EOFError, RuntimeError or others
        why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise ValueError(f"{path / FILES[2]} is damaged ({why})") from err


def _require_same_config(path: Path, saved: dict | None, config) -> None:
    """Refuse to resume with a config that differs from the one the checkpoint was written with."""
    if saved is None:
        return
    current = asdict(config)
    changed = [
        f"{k}: {saved[k]!r} -> {current[k]!r}"
        for k in current
        if k in saved and k not in RESUMABLE_CHANGES and saved[k] != current[k]
    ]
    if changed:
        raise ValueError(
            f"resume: {path} was written with another config ({'; '.join(changed)}). "
            "Resume with the checkpoint's values, or give a new checkpoint_dir to start afresh; "
            f"only {', '.join(RESUMABLE_CHANGES)} may change on resume"
        )


def load_checkpoint(trainer, checkpoint_dir: str | os.PathLike) -> bool:
    """Restore ``trainer`` from the newest readable checkpoint; return False when there is none.

    A damaged newest checkpoint is skipped with a warning naming it and the one used instead;
    a checkpoint written with another config raises ``ValueError`` naming the fields.
    """
    damaged = []
    for path in checkpoints(checkpoint_dir):
        try:
            state = _read_state(path)
        except ValueError as err:
            damaged.append(str(err))
            continue
        _require_same_config(path, state.get("config"), trainer.config)
        if damaged:
            warnings.warn(
                f"resume: {'; '.join(damaged)}; resuming from the previous checkpoint {path}",
                stacklevel=2,
            )
        device = str(trainer.device)
        load_model(trainer.policy, str(path / "policy.safetensors"), device=device)
        load_model(trainer.value_head, str(path / "value_head.safetensors"), device=device)
        trainer.load_state_dict(state)
        return True
    if damaged:
        raise ValueError(
            f"checkpoint_dir: no checkpoint in {checkpoint_dir} can be read: {'; '.join(damaged)}. "
            "Delete the damaged checkpoints, or give a new checkpoint_dir, to start afresh"
        )
    return False
