"""Shared fixtures. Everything runs offline on the shipped tiny preset (HF_HUB_OFFLINE=1)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import pytest
import torch


@pytest.fixture(scope="session")
def tiny():
    """The shipped tiny preset on CPU, loaded once per test session."""
    from rlhf_edu.presets import load_preset

    torch.set_num_threads(1)  # as notebook.setup() does for the tiny preset
    return load_preset("tiny", device="cpu", n_prompts=256, verbose=False)


@pytest.fixture(scope="session")
def trl_ppo():
    """``trl.experimental.ppo.ppo_trainer`` of trl==1.12.0, the reference our PPO math is
    tested against; the tests that use it skip when TRL (the ``[trl]`` extra) is missing."""
    pytest.importorskip("trl.experimental.ppo")
    from trl.experimental.ppo import ppo_trainer

    return ppo_trainer


@pytest.fixture(scope="session")
def standin_mirror(tmp_path_factory):
    """The GPU preset's stand-in mirror in the hub's layout (tests/standin.py), built once."""
    from standin import build_mirror

    root = tmp_path_factory.mktemp("standin") / "mirror"
    build_mirror(root)
    return root
