"""The set-up promises: dependencies agree, the wheel ships the tiny models, two commands."""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
COLAB_FREEZE = Path(__file__).parent / "colab" / "pip-freeze.gpu.txt"
COLAB_PYTHON = "3.13.15"  # Colab's GPU runtime, 2026-08 (googlecolab/backend-info os-info-gpu.txt)


def _name(req: str) -> str:
    return re.split(r"[<>=!\[ ]", req.strip(), maxsplit=1)[0].lower()


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def environment_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    reqs = [ln.strip()[2:] for ln in lines[start + 1 :] if ln.strip().startswith("- ")]
    return {_name(r): r.replace(" ", "") for r in reqs if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_torch_is_a_floor_that_loads_the_hubs_bin_files():
    assert pyproject_requirements()["torch"] == "torch>=2.6"


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _colab() -> dict[str, str]:
    pins = [ln.split("==") for ln in COLAB_FREEZE.read_text().splitlines() if "==" in ln]
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_colabs_runtime_already_satisfies_every_core_dependency():
    """Installing the course on Colab changes none of the packages Colab has (ipywidgets
    7.7.1 above all: Colab renders ipywidgets 7), and Colab's Python is allowed."""
    colab = _colab()
    for req in map(Requirement, _project()["dependencies"]):
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in colab, f"{name} is not on Colab: the install cell would add it"
        assert req.specifier.contains(colab[name], prereleases=True), (str(req), colab[name])
    assert colab["ipywidgets"] == "7.7.1"
    assert Requirement(f"x{_project()['requires-python']}").specifier.contains(COLAB_PYTHON)
    assert Version(colab["torch"]).release >= (2, 6)


def test_the_apps_are_an_extra_that_course_py_lab_installs():
    core = {_name(r) for r in _project()["dependencies"]}
    lab = {_name(r) for r in _project()["optional-dependencies"]["lab"]}
    assert {"jupyterlab", "notebook", "voila"} <= lab and not lab & core
    assert "[lab,dev,trl]" in (ROOT / "course.py").read_text()
    assert Requirement(pyproject_requirements()["ipywidgets"]).specifier.contains("8.1.9")


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "python3 course.py lab" in readme and "python3 course.py test" in readme
    assert "python3 course.py test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_wheel_contains_the_tiny_models(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("rlhf_edu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for sub in ("policy", "reward_model"):
        for f in ("model.safetensors", "config.json", "tokenizer.json"):
            assert f"rlhf_edu/tiny/{sub}/{f}" in names
