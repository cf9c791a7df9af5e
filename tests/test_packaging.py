"""The set-up promises: dependencies agree, the wheel ships the tiny models, two commands."""

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def test_torch_is_not_pinned():
    assert pyproject_requirements()["torch"] == "torch>=2.4"


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
