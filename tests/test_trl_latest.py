"""Lesson 09 under the TRL a learner gets today (``pip install trl``), not only the pinned one.

The suite's own environment has ``trl==1.12.0`` (the ``[trl]`` extra: the last release with
PPO, the reference for our PPO math). Learners who ``pip install trl`` get a newer release
(``trl_bridge.TRL_LATEST``) with ``GRPOTrainer`` but no ``trl.experimental.ppo``. Here a
new virtual environment gets that release in its own site-packages, in front of this
environment's packages (a ``.pth`` file with plain path lines, as in test_standalone.py),
and lesson 09 runs there from an empty folder: its GRPO cells must run with TRL, its PPO
cells must say they are skipped, and every cell must pass.

The release is downloaded from PyPI once (pip's cache); ``RLHF_EDU_TRL_LATEST=0`` skips the
test for a quick offline run.

    .venv/bin/python -m pytest tests/test_trl_latest.py -v -s
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from rlhf_edu.trl_bridge import TRL_LATEST, TRL_PIN

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "09_scaling_up.ipynb"
KERNEL = "rlhf-edu-trl-latest"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("RLHF_EDU_TRL_LATEST") == "0",
        reason="TRL-latest run skipped: RLHF_EDU_TRL_LATEST=0",
    ),
]


def _run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def latest_env(tmp_path_factory):
    """A venv whose own site-packages hold ``trl==TRL_LATEST``; the rest comes from ours."""
    tmp = tmp_path_factory.mktemp("trl_latest")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}  # pip may use PyPI
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "-q",
            "--no-deps",
            f"trl=={TRL_LATEST}",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if result.returncode != 0:
        pytest.fail(
            f"could not install trl=={TRL_LATEST} from PyPI into a new venv (set "
            f"RLHF_EDU_TRL_LATEST=0 to skip this test offline):\n{result.stderr[-2000:]}",
            pytrace=False,
        )
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    )
    # This environment's packages after the venv's own, and the repo for rlhf_edu (plain path
    # lines: the editable install's finder is not needed).
    deps = dict.fromkeys([str(ROOT), *(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))])
    (site / "_rlhf_edu_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))

    jupyter_path = tmp / "jupyter"
    spec_dir = jupyter_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"rlhf-edu (trl {TRL_LATEST})",
        "language": "python",
        "env": {"HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return {"python": python, "jupyter_path": jupyter_path}


def test_the_venv_has_the_latest_trl_without_ppo(latest_env, tmp_path):
    code = (
        "import json, trl; from rlhf_edu import trl_bridge; "
        "print(json.dumps({'file': trl.__file__, **trl_bridge.trl_status()}))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    status = json.loads(_run([latest_env["python"], "-c", code], cwd=tmp_path, env=env))
    assert status["version"] == TRL_LATEST != TRL_PIN
    assert status["grpo"] and not status["ppo"], status
    assert (
        Path(status["file"])
        .resolve()
        .is_relative_to(Path(latest_env["python"]).parents[1].resolve())
    ), status["file"]


def test_lesson_09_runs_with_the_latest_trl(latest_env, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    workdir = tmp_path / "empty"
    workdir.mkdir()
    shutil.copy(LESSON, workdir / LESSON.name)
    nb = nbformat.read(workdir / LESSON.name, as_version=4)
    monkeypatch.setenv("JUPYTER_PATH", str(latest_env["jupyter_path"]))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=600,
        startup_timeout=180,
        allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # a raising cell raises CellExecutionError, naming the cell

    def text_of(cell) -> str:
        return "".join(o.get("text", "") for o in cell.get("outputs", []))

    grpo_cells = [c for c in nb.cells if c.cell_type == "code" and "GRPOTrainer(" in c.source]
    ppo_cells = [c for c in nb.cells if c.cell_type == "code" and "TRLPPOTrainer(" in c.source]
    assert grpo_cells and ppo_cells
    for cell in grpo_cells:  # TRL's GRPO really trained here ...
        assert "skipped" not in text_of(cell), text_of(cell)
    for cell in ppo_cells:  # ... and its PPO, gone after 1.12, says so
        assert "skipped" in text_of(cell) and "trl.experimental.ppo" in text_of(cell), text_of(cell)
