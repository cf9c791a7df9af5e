"""Every lesson notebook has the course's frame and is stored without outputs.

(The notebooks themselves are executed by nbval: ``pytest --nbval-lax notebooks``.)
"""

import json
import tomllib
from pathlib import Path

import pytest

from rlhf_edu import notebook
from rlhf_edu.notebook import COLAB_INSTALL_CELL, COLAB_RELEASE, restart_notice

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
class TestNotebookFrame:
    def test_stored_without_outputs(self, path):
        for c in cells(path):
            if c["cell_type"] == "code":
                assert c.get("outputs", []) == [] and c.get("execution_count") is None

    def test_title_and_colab_badge(self, path):
        first = source(cells(path)[0])
        assert first.startswith("# ")
        assert (
            f"colab.research.google.com/github/rlhf-edu/rlhf-edu/blob/main/notebooks/{path.name}"
            in first
        )

    def test_guarded_install_then_setup_cell(self, path):
        code = [source(c) for c in cells(path) if c["cell_type"] == "code"]
        assert '"google.colab" in sys.modules' in code[0] and "pip install" in code[0]
        assert "setup(" in code[1] and "from rlhf_edu.notebook import setup" in code[1]

    def test_second_cell_is_the_one_install_cell(self, path):
        second = cells(path)[1]
        assert second["cell_type"] == "code" and source(second) == COLAB_INSTALL_CELL

    def test_has_an_exercise_with_a_checker(self, path):
        text = "\n".join(source(c) for c in cells(path))
        if path.stem[:2] in {"01", "02", "03", "04", "05", "06"}:
            assert "rlhf_edu.exercises" in text and "check_" in text


def test_the_install_cell_pins_the_release_of_this_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert COLAB_RELEASE == f"v{version}"
    assert f"git+https://github.com/rlhf-edu/rlhf-edu@{COLAB_RELEASE}" in COLAB_INSTALL_CELL
    assert " -q" not in COLAB_INSTALL_CELL  # pip's own restart prompt stays visible


def test_the_install_cell_does_nothing_outside_colab():
    """Transformed as IPython transforms it (``%pip`` in an indented block becomes a call) and
    run outside Colab: nothing is installed."""
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(COLAB_INSTALL_CELL)
    assert "run_line_magic('pip', 'install" in code
    calls = []

    class Shell:
        def run_line_magic(self, *args):
            calls.append(args)

    namespace = {"get_ipython": Shell}
    exec(compile(code, "install-cell", "exec"), namespace)  # noqa: S102 (the cell itself)
    assert calls == [] and "before" not in namespace


COLAB_BEFORE = {"ipywidgets": "7.7.1", "torch": "2.11.0+cu128", "numpy": "2.1.3"}


class TestRestartNotice:
    def test_nothing_changed_no_restart(self, monkeypatch, capsys):
        monkeypatch.setattr(notebook, "installed", lambda: {**COLAB_BEFORE, "rlhf-edu": "0.1.0"})
        assert restart_notice(dict(COLAB_BEFORE)) == []
        out = capsys.readouterr().out.strip().splitlines()
        assert out == ["pip changed none of the packages this runtime had: no restart needed"]

    def test_a_changed_package_asks_for_a_restart_and_names_it(self, monkeypatch, capsys):
        now = {**COLAB_BEFORE, "ipywidgets": "8.1.9", "rlhf-edu": "0.1.0"}
        del now["numpy"]
        monkeypatch.setattr(notebook, "installed", lambda: now)
        assert restart_notice(dict(COLAB_BEFORE)) == ["ipywidgets", "numpy"]
        (line,) = capsys.readouterr().out.strip().splitlines()
        assert line.startswith("Restart the runtime (Runtime > Restart session), then run from")
        assert "ipywidgets 7.7.1 -> 8.1.9" in line and "numpy 2.1.3 -> removed" in line
        assert "torch" not in line and "rlhf-edu" not in line

    def test_against_this_environment(self, capsys):
        assert restart_notice(notebook.installed()) == []

    def test_bad_before(self):
        with pytest.raises(ValueError, match="before"):
            restart_notice(["ipywidgets"])


class TestSetupEnvironment:
    """RLHF_EDU_PRESET and RLHF_EDU_SOURCE switch every notebook's ``setup()``."""

    @pytest.fixture
    def asked(self, monkeypatch):
        from rlhf_edu import presets

        calls = []

        def load_preset(name, device=None, n_prompts=2048, seed=0, source=None):
            calls.append((name, source))
            return presets.Preset(
                "tiny", None, None, None, None, None, [], presets.torch.device("cpu")
            )

        monkeypatch.setattr(presets, "load_preset", load_preset)
        monkeypatch.setattr(notebook, "versions", dict)
        return calls

    def test_auto_yields_to_the_environment(self, asked, monkeypatch):
        monkeypatch.setenv("RLHF_EDU_PRESET", "gpt2-imdb")
        monkeypatch.setenv("RLHF_EDU_SOURCE", "/mirror")
        notebook.setup()
        assert asked == [("gpt2-imdb", "/mirror")]

    def test_a_cell_that_names_its_preset_keeps_it(self, asked, monkeypatch):
        monkeypatch.setenv("RLHF_EDU_PRESET", "gpt2-imdb")
        notebook.setup("tiny", source="/other")
        assert asked == [("tiny", "/other")]

    def test_without_the_variables(self, asked, monkeypatch):
        monkeypatch.delenv("RLHF_EDU_PRESET", raising=False)
        monkeypatch.delenv("RLHF_EDU_SOURCE", raising=False)
        notebook.setup()
        assert asked == [("auto", None)]

    def test_a_bad_preset_variable_is_named(self, asked, monkeypatch):
        monkeypatch.setenv("RLHF_EDU_PRESET", "gpt3")
        with pytest.raises(ValueError, match="RLHF_EDU_PRESET"):
            notebook.setup()
