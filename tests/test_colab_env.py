"""The course installed into an imitation of Colab's GPU runtime, as its install cell does.

A fresh virtual environment gets Colab's versions (tests/colab/pip-freeze.gpu.txt, applied
as pip constraints) of every package the course imports, except torch, which comes from the
CPU wheel at hand (``torch==2.13.0``; Colab has 2.11.0+cu128). Then the course's wheel is
installed with its dependencies, as ``%pip install "rlhf-edu @ git+...@vX"`` would, and:

- pip, asked first with ``--dry-run --report``, would install none of Colab's packages in
  another version, and after the install none of them has changed;
- ``restart_notice`` there says no restart is needed;
- the package imports, the tiny preset samples, and the widget unit tests pass on Colab's
  ipywidgets 7.7.1;
- every lesson runs there, one pass each, in a kernel of that environment (Colab's ipykernel
  and IPython), alone in an empty folder: on the tiny preset, and on the GPU preset's stand-in
  mirror (tests/standin.py) through the GPU preset's code path. The two sequences run side by
  side, one kernel each. TRL is not installed there (the install cell does not install it),
  so lesson 09 runs without its TRL cells, as on a Colab runtime without the ``[trl]`` extra.

This machine's Python is 3.11 while Colab's is 3.13, so the environment is built on 3.11
(every pinned package used here has a 3.11 wheel). It needs the package index (or a local
mirror of it); it runs with ``RLHF_EDU_COLAB=1``. On 2 cores it took 33 minutes beside a
standalone lesson run (about 7 to build the environment, the rest the lessons):

    RLHF_EDU_COLAB=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_colab_env.py
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import standalone_runs as sr

ROOT = Path(__file__).resolve().parents[1]
FREEZE = Path(__file__).parent / "colab" / "pip-freeze.gpu.txt"
# What the course and its lessons import (and the kernel they run in), in Colab's versions.
COURSE_IMPORTS = [
    "transformers", "huggingface_hub", "datasets", "tokenizers", "safetensors", "matplotlib",
    "numpy", "pandas", "scipy", "tqdm", "ipywidgets", "widgetsnbextension",
    "jupyterlab_widgets", "ipython", "ipykernel",
]  # fmt: skip
TEST_TOOLS = ["pytest", "hypothesis"]
NOT_PINNED = {"torch", "setuptools"}  # see the constraints in ``colab`` below
# The install cell's own snapshot of the runtime, taken just before %pip install.
CELL_BEFORE = (
    "import json, importlib.metadata as md;"
    "print(json.dumps({d.metadata['Name'].lower(): d.version for d in md.distributions()}))"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("RLHF_EDU_COLAB") != "1",
        reason="the Colab-like environment: RLHF_EDU_COLAB=1",
    ),
]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_pins() -> dict[str, str]:
    pins = [ln.split("==") for ln in FREEZE.read_text().splitlines() if "==" in ln]
    return {_norm(n): v for n, v in pins}


def _run(*cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("cwd", Path(sys.executable).anchor)  # not the checkout: its egg-info would show
    proc = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _installed(python: Path) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as md, re;"
        "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version"
        " for d in md.distributions()}))"
    )
    return json.loads(_run(python, "-c", code).stdout)


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """A Colab-like environment before and after the course's install."""
    tmp = tmp_path_factory.mktemp("colab")
    venv, python = tmp / "venv", tmp / "venv" / "bin" / "python"
    _run(sys.executable, "-m", "venv", venv)
    pip = [python, "-m", "pip", "install", "-q"]
    pins = colab_pins()
    constraints = tmp / "colab-constraints.txt"
    # Colab's version of everything pip may pull, but torch: the CPU wheel at hand, and
    # setuptools: that torch 2.13.0 needs setuptools >= 77.0.3 where Colab's 2.11 lives with 75.2.0.
    constraints.write_text(
        "\n".join(f"{n}=={v}" for n, v in pins.items() if n not in NOT_PINNED and "+" not in v)
        + "\n"
    )
    _run(*pip, "torch==2.13.0")
    _run(*pip, "-c", constraints, *COURSE_IMPORTS, *TEST_TOOLS)
    before = _installed(python)
    cell_before = json.loads(_run(python, "-c", CELL_BEFORE).stdout)
    for name in COURSE_IMPORTS:
        assert before[_norm(name)] == pins[_norm(name)], name
    wheel_dir = tmp / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheel_dir, ROOT)
    (wheel,) = wheel_dir.glob("rlhf_edu-*.whl")
    report = tmp / "report.json"
    _run(*pip, "--dry-run", "--report", report, wheel)
    _run(*pip, wheel)  # as the install cell: the course with its dependencies, no constraints
    after = _installed(python)
    return {
        "python": python,
        "before": before,
        "after": after,
        "would_install": {
            _norm(i["metadata"]["name"]): i["metadata"]["version"]
            for i in json.loads(report.read_text())["install"]
        },
        "pins": pins,
        "cell_before": cell_before,
    }


def test_pip_would_change_none_of_colabs_packages(colab):
    changed = {
        n: (colab["before"][n], v)
        for n, v in colab["would_install"].items()
        if n in colab["before"] and colab["before"][n] != v
    }
    assert changed == {}
    assert set(colab["would_install"]) == {"rlhf-edu"}, colab["would_install"]


def test_after_the_install_nothing_colab_had_has_changed(colab):
    before, after = colab["before"], colab["after"]
    assert {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v} == {}
    assert after["ipywidgets"] == "7.7.1" and after["rlhf-edu"] == "0.1.0"


def test_restart_notice_there_says_no_restart(colab):
    """``before`` as the install cell takes it, then ``restart_notice`` as the cell calls it."""
    code = (
        "import json, sys; from rlhf_edu.notebook import restart_notice;"
        f"sys.exit(len(restart_notice(json.loads({json.dumps(json.dumps(colab['cell_before']))}))))"
    )
    out = _run(colab["python"], "-c", code).stdout
    assert "no restart needed" in out
    assert colab["cell_before"]["ipywidgets"] == "7.7.1"


def test_the_course_runs_there(colab):
    code = (
        "import ipywidgets, torch; from rlhf_edu.notebook import setup;"
        "from rlhf_edu.generation import sample;"
        "p = setup('tiny', n_prompts=8);"
        "r = sample(p.policy, p.tokenizer, p.prompts, max_new_tokens=8, seed=0);"
        "print(ipywidgets.__version__, len(r.texts), p.reward(r.texts).shape)"
    )
    out = _run(colab["python"], "-c", code, env={**os.environ, "HF_HUB_OFFLINE": "1"}).stdout
    assert out.strip().splitlines()[-1].startswith("7.7.1 8 torch.Size([8])")


def test_the_widget_unit_tests_pass_on_ipywidgets_7(colab):
    tests = sorted(str(p) for p in (ROOT / "tests").glob("test_widgets_*.py"))
    tests.append(str(ROOT / "tests" / "test_training_lab.py"))
    _run(
        colab["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests,
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def colab_kernel(colab, tmp_path_factory) -> dict:
    """The Colab-like environment as the standalone runs take one: python, site, kernelspec."""
    python = colab["python"]
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return {
        "python": python,
        "site": Path(_run(python, "-c", code).stdout.strip()),
        "kernels": sr.write_kernelspec(tmp_path_factory.mktemp("colab-kernels"), python),
        "kernel_env": sr.kernel_env(),  # offline, on the tiny preset, no PYTHONPATH
    }


PRESETS = ("tiny", "standin")  # standin: gpt2-imdb from the stand-in mirror


@pytest.fixture(scope="module")
def lessons_there(request, colab_kernel, standin_mirror_env) -> dict:
    """The selected lessons once in the Colab-like environment: ``{preset: {stem: Result}}``.

    Only the (preset, lesson) pairs of the session's selected tests run (``-k 01_`` runs
    one lesson on both presets). The two presets' sequences run side by side, each in a
    thread of its own with one kernel at a time (the tiny preset's setup() takes one torch
    thread; the mirror's kernels get OMP_NUM_THREADS=1). Leaving early (Ctrl-C, an error)
    stops the running lessons at their next watch and runs no more.
    """
    wanted = {
        (item.callspec.params["preset"], item.callspec.params["path"].stem)
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_every_lesson_runs_there"
    }
    # A short folder for the kernels' ipc sockets: macOS allows 103 bytes per socket path.
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-colab-"))
    envs = {
        "tiny": colab_kernel,
        "standin": {
            **colab_kernel,
            "kernel_env": {**colab_kernel["kernel_env"], **standin_mirror_env},
        },
    }
    stop = threading.Event()

    def every_lesson(preset: str) -> dict:
        results = {}
        for path in sr.NOTEBOOKS:
            if (preset, path.stem) not in wanted:
                continue
            if stop.is_set():
                results[path.stem] = sr.Result("not run: the session ended first")
                continue
            run = sr.run_lesson(
                path, envs[preset], tmp / preset, stop, passes=1, label=f"colab-{preset}"
            )
            try:
                results[path.stem] = asyncio.run(run)
            except BaseException as err:  # noqa: BLE001 (the lesson's test reports it)
                results[path.stem] = sr.Result(sr.runner_failure(err))
        return results

    pool = ThreadPoolExecutor(len(PRESETS))
    try:
        futures = {preset: pool.submit(every_lesson, preset) for preset in PRESETS}
        return {preset: future.result() for preset, future in futures.items()}
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("path", sr.NOTEBOOKS, ids=lambda p: p.stem)
def test_every_lesson_runs_there(lessons_there, preset, path):
    result = lessons_there[preset][path.stem]
    if result.failure is not None:
        pytest.fail(f"{path.name} on {preset}: {result.failure}", pytrace=False)
    print(f"\n{path.stem} on {preset}: {result.seconds:.0f} s")
