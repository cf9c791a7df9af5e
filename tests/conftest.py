"""Shared fixtures and hooks. Tests run offline (HF_HUB_OFFLINE=1), on the shipped tiny preset
or, for the lessons under nbval while their standalone runs are on, the GPU preset's stand-in
mirror (tests/standin.py)."""

import os
import shutil
import tempfile
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


def _standin_mirror(config) -> Path:
    """The GPU preset's stand-in mirror (tests/standin.py), built on first use, once a session.

    Read-only for its users: the tests that alter a mirror copy it first.
    """
    root = getattr(config, "_rlhf_edu_mirror", None)
    if root is None:
        from standin import build_mirror

        root = Path(tempfile.mkdtemp(prefix="rlhf-standin-")) / "mirror"
        build_mirror(root)
        config._rlhf_edu_mirror = root
    return root


@pytest.fixture(scope="session")
def standin_mirror(request):
    """The GPU preset's stand-in mirror in the hub's layout (tests/standin.py), built once."""
    return _standin_mirror(request.config)


@pytest.fixture(scope="session")
def standin_mirror_env(request) -> dict[str, str]:
    """The variables that start a lesson's kernel on the stand-in mirror (see _mirror_env)."""
    return _mirror_env(request.config)


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
    # These lessons run on the tiny preset there, twice; here (nbval) they run on the GPU
    # preset's stand-in mirror instead, so the suite covers both presets at no extra cost.
    # Registered as a plugin: a conftest's own hooks reach only the tests below its folder,
    # and the lessons are in notebooks/.
    config.pluginmanager.register(LessonsOnTheMirror({path.stem for path in lessons}))


# What a lesson's kernel gets to run on the GPU preset's stand-in mirror: setup() reads these
# (notebook.setup), and one torch thread leaves the other core to the standalone runs.
def _mirror_env(config) -> dict[str, str]:
    return {
        "RLHF_EDU_PRESET": "gpt2-imdb",
        "RLHF_EDU_SOURCE": str(_standin_mirror(config)),
        "OMP_NUM_THREADS": "1",
    }


class LessonsOnTheMirror:
    """Start these lessons' nbval kernels on the stand-in mirror (their tiny runs are elsewhere).

    nbval starts a notebook's kernel while its first cell is set up, and the kernel copies
    this process's environment then; the variables are set for that moment only, so no other
    test sees them. Lessons with no standalone run this session stay on the tiny preset.
    """

    def __init__(self, stems: set[str]):
        self.stems = stems

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item):
        stem = item.path.stem if item.path.suffix == ".ipynb" else None
        notebook = item.parent
        if (
            stem not in self.stems
            or getattr(notebook, "kernel", None) is not None  # started by an earlier cell
        ):
            yield
            return
        mirror_env = _mirror_env(item.config)
        saved = {k: os.environ.get(k) for k in mirror_env}
        os.environ.update(mirror_env)
        try:
            outcome = yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        if outcome.excinfo is None and getattr(notebook, "kernel", None) is None:
            raise RuntimeError(
                f"{stem}: nbval did not start the kernel while its first cell was set up, so "
                "it would not run on the stand-in mirror (tests/conftest.py)"
            )


def pytest_sessionfinish(session, exitstatus):
    runs = getattr(session.config, "_rlhf_edu_standalone", None)
    if runs is not None:
        runs.stop()
    mirror = getattr(session.config, "_rlhf_edu_mirror", None)
    if mirror is not None:
        shutil.rmtree(mirror.parent, ignore_errors=True)
