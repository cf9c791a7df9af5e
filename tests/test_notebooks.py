"""Every lesson notebook has the course's frame and is stored without outputs.

(The notebooks themselves are executed by nbval: ``pytest --nbval-lax notebooks``.)
"""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


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

    def test_has_an_exercise_with_a_checker(self, path):
        text = "\n".join(source(c) for c in cells(path))
        if path.stem[:2] in {"01", "02", "03", "04", "05", "06"}:
            assert "rlhf_edu.exercises" in text and "check_" in text
