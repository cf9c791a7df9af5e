"""Shared fixtures. Everything runs offline on the shipped tiny preset (HF_HUB_OFFLINE=1)."""

import os
from pathlib import Path

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


STANDALONE = Path(__file__).with_name("test_standalone.py")


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """Move the standalone tests to the end and start their runs now, in a thread.

    The runs (tests/standalone_runs.py) use one core for about 41 minutes; started here,
    on the final list of tests (after -k, -m, --lf), they go on while the other tests use
    the other core, and their tests, last, wait for them.
    """
    config = session.config
    if session.testsfailed and not config.option.continue_on_collection_errors:
        return  # pytest stops with the collection errors
    if config.option.collectonly or config.option.setuponly or config.option.setupplan:
        return
    standalone = [item for item in session.items if item.path == STANDALONE]
    session.items[:] = [item for item in session.items if item.path != STANDALONE] + standalone
    lessons = [item.callspec.params["path"] for item in standalone if hasattr(item, "callspec")]
    wheel = any(item.name == "test_the_wheel_not_the_repo_is_imported" for item in standalone)
    if not (lessons or wheel) or os.environ.get("RLHF_EDU_STANDALONE") == "0":
        return
    import standalone_runs

    config._rlhf_edu_standalone = standalone_runs.Runs(lessons).start()


def pytest_sessionfinish(session, exitstatus):
    runs = getattr(session.config, "_rlhf_edu_standalone", None)
    if runs is not None:
        runs.stop()
