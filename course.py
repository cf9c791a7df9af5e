"""The course's two commands, each of which builds its own environment first.

    python3 course.py lab     # open the course: JupyterLab on notebooks/
    python3 course.py test    # run every test, offline (HF_HUB_OFFLINE=1)

Extra arguments go to pytest (``python3 course.py test tests/test_ppo.py -x``); paths given
there replace the default ``tests notebooks``.

The environment is a virtual environment in ``.venv``. Torch is installed before
the package so that a machine without a GPU never downloads CUDA packages:

1. a CPU wheel of ``torch==2.13.0`` already at hand (pip's find-links) is taken;
2. otherwise, with no GPU, the CPU build from download.pytorch.org;
3. with a GPU (``nvidia-smi`` present), the default build from PyPI.

Then ``pip install -e .[lab,dev,trl]`` (the apps, the test tools, TRL); since ``torch>=2.6``
is already satisfied, nothing more of torch is pulled. The install is redone when pyproject.toml changes.
Only the standard library is used here, so it runs with a bare ``python3``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".rlhf-edu-installed"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def pip(*args: str, check: bool = True) -> int:
    cmd = [str(venv_python()), "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=check).returncode


def has_torch() -> bool:
    code = "import torch"
    return (
        subprocess.run(
            [str(venv_python()), "-c", code], capture_output=True, check=False
        ).returncode
        == 0
    )


def install_torch() -> None:
    """Install torch without ever pulling CUDA packages onto a CPU-only machine."""
    if has_torch():
        return
    if shutil.which("nvidia-smi"):
        pip("install", "torch>=2.6")
        return
    # 1. A CPU wheel at hand (find-links): no index, so nothing else can be picked.
    if pip("install", "--no-deps", "--no-index", "torch==2.13.0", check=False) == 0:
        pip("install", "torch==2.13.0")  # already installed: only fetches its small deps
        return
    # 2. The CPU-only build from PyTorch's own index (macOS and Windows wheels are CPU anyway).
    if sys.platform.startswith("linux"):
        pip(
            "install",
            "torch",
            "--index-url",
            TORCH_CPU_INDEX,
            "--extra-index-url",
            "https://pypi.org/simple",
        )
    else:
        pip("install", "torch>=2.6")


def ensure_env() -> Path:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest and venv_python().exists():
        return venv_python()
    if not venv_python().exists():
        print(f"creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip("install", "--quiet", "--upgrade", "pip")
    install_torch()
    pip("install", "-e", f"{ROOT}[lab,dev,trl]")
    STAMP.write_text(digest)
    return venv_python()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"lab", "test"}:
        print(__doc__)
        return 2
    python = str(ensure_env())
    env = dict(os.environ)
    if argv[0] == "lab":
        cmd = [python, "-m", "jupyter", "lab", str(ROOT / "notebooks"), *argv[1:]]
    else:
        env["HF_HUB_OFFLINE"] = "1"
        env.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        extra = argv[1:]
        # Paths given on the command line replace the default "tests notebooks".
        paths = [] if any(not a.startswith("-") for a in extra) else ["tests", "notebooks"]
        cmd = [python, "-m", "pytest", "--nbval-lax", *paths, *extra]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
