"""Shared fixtures. Everything runs offline on the shipped tiny preset (HF_HUB_OFFLINE=1)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import pytest
import torch

# One thread per test process, whatever runs first: the suite runs in two pytest-xdist
# workers on two cores, and the tiny preset is fastest on one (notebook.setup() does the same).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    """The shipped tiny preset on CPU, loaded once per test session."""
    from rlhf_edu.presets import load_preset

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


def pytest_collection_modifyitems(config, items):
    """Group the tests for pytest-xdist's ``--dist loadgroup`` (how course.py runs the suite).

    A group runs in order on one worker. The group is the test's file: a notebook's nbval
    cells share one kernel and must run in order, and a module's fixtures (a JupyterLab
    server, a wheel's venv, a TRL venv) are built once. The standalone test is the exception:
    each lesson is its own group, so that the longest runs (lessons 08, 09, 10, each run
    twice in one kernel) spread over the workers instead of queueing behind one another.
    """
    for item in items:
        group = str(item.path.relative_to(config.rootpath))
        callspec = getattr(item, "callspec", None)
        if item.path.name == "test_standalone.py" and callspec and "path" in callspec.params:
            group += "::" + callspec.id
        item.add_marker(pytest.mark.xdist_group(group))
