"""The widgets work in a real browser, as a learner uses them.

JupyterLab: open each widget notebook, wait for its kernel, Run > Run All Cells, wait for
the widget, then drag every slider's handle with the mouse and check that its readout
changed and that the widget's Output area redrew (a new plot image, and new text where the
widget prints some). The training lab of lesson 07 redraws only when Train is pressed: its
sliders are checked by their readouts, then it trains a short run and the plot must change.
Notebook 7 and a standalone Voila app do the same on the clip explorer (lesson 04).

Debian's Chromium (/usr/bin/chromium) is driven by Playwright; without either the tests
skip (``.ci/run`` installs Chromium so CI runs them). Screenshots of each widget before and
after go to test-artifacts/ (git-ignored), and a full page on failure.

    .venv/bin/python -m pytest tests/test_browser.py -v
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass

import browser_support as bs
import pytest

HAVE_BROWSER = bs.CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None
needs_browser = pytest.mark.skipif(
    not HAVE_BROWSER, reason="needs /usr/bin/chromium and playwright (.ci/run installs them)"
)


@dataclass(frozen=True)
class Widget:
    redraws: bool = True  # moving a slider redraws the Output area
    prints: bool = False  # the Output area also holds text that changes on a redraw
    train: bool = False  # a Train button that adds a run to the plot


# Every notebook that shows a widget with sliders, and what its widget does.
WIDGETS = {
    "01_generating_text": Widget(prints=True),  # sampling explorer: plot + fresh samples
    "04_ratios_and_clipping": Widget(),  # clip explorer
    "05_kl_penalty": Widget(),  # KL explorer
    "07_ppo": Widget(redraws=False, train=True),  # training lab
}
CLIP = "04_ratios_and_clipping"


def test_every_widget_notebook_is_covered():
    """A notebook that calls a ``show_*`` widget of the package is in WIDGETS."""
    for path in sorted(bs.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        if "rlhf_edu.widgets" in text and re.search(r"\bshow_\w+\(", text):
            assert path.stem in WIDGETS, f"{path.name} shows a widget: add it to WIDGETS"


# --- fixtures: one browser, one JupyterLab, each stopped by its own process group ----------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with bs.chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        context.set_default_timeout(30_000)
        yield context


def _start(app, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(app)
    root = bs.copy_notebooks(tmp / "notebooks")
    server, token = bs.start_jupyter(app, root, tmp / "server")
    return server, token


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server, token = _start("lab", tmp_path_factory)
    try:
        yield server, token
    finally:
        server.stop()


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    server, token = _start("notebook", tmp_path_factory)
    try:
        yield server, token
    finally:
        server.stop()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


# --- what a learner does -----------------------------------------------------------------


def open_and_run(page, url: str) -> None:
    """Open a notebook, wait for its kernel, run all cells, wait until they ran clean."""
    # A busy machine can take long to serve the first page: wait on the page, not the clock.
    page.goto(url, wait_until="commit", timeout=bs.KERNEL_START_MS)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=bs.KERNEL_START_MS)
    bs.wait_kernel_idle(page)
    bs.run_all_cells(page)
    bs.wait_all_cells_ran(page)
    errors = page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
    assert errors.count() == 0, "a cell raised:\n" + errors.first.inner_text()[-3000:]


def find_widget(page):
    """The output that holds the widget, once its first plot is drawn."""
    widget = page.locator(bs.WIDGET).first
    widget.wait_for(state="visible", timeout=bs.RUN_ALL_MS)
    page.wait_for_function(
        "el => !!el.querySelector('.widget-output img')",
        arg=widget.element_handle(),
        timeout=bs.REDRAW_MS,
    )
    widget.scroll_into_view_if_needed()
    return widget


def move_every_slider(page, widget, spec: Widget) -> list[tuple[str, str, str]]:
    """Drag each slider; check its readout changed and, if it redraws, the Output did too."""
    sliders = widget.locator(".widget-slider")
    n = sliders.count()
    assert n >= 1, "the widget has no slider"
    moved = []
    for i in range(n):
        slider = sliders.nth(i)
        name = slider.locator(".widget-label").first.inner_text().strip()
        before_value, before_out = bs.readout(slider), bs.output_state(widget)
        bs.drag_slider(page, slider)
        page.wait_for_function(
            "([el, v]) => el.querySelector('.widget-readout').textContent.trim() !== v",
            arg=[slider.element_handle(), before_value],
            timeout=10_000,
        )
        after_value = bs.readout(slider)
        if spec.redraws:
            after_out = bs.wait_output_changed(widget, before_out, text_too=spec.prints)
            assert after_out["imgs"] != before_out["imgs"], f"{name}: the plot did not change"
            if spec.prints:
                assert after_out["text"] != before_out["text"], f"{name}: the text did not change"
        moved.append((name, before_value, after_value))
    return moved


def press_train(page, widget) -> str:
    """Train a short run (steps slider to its minimum); the plot must gain the new run."""
    steps = widget.locator(".widget-slider", has=page.locator(".widget-label", has_text="steps"))
    bs.drag_slider(page, steps.first, to=-0.1)
    before_out = bs.output_state(widget)
    widget.locator("button", has_text="Train").first.click()
    status = widget.locator(".widget-html", has_text=re.compile(r"done:|stopped:"))
    status.first.wait_for(timeout=bs.RUN_ALL_MS)
    text = status.first.inner_text()
    assert "done:" in text, text
    after_out = bs.wait_output_changed(widget, before_out, text_too=False)
    assert after_out["imgs"] != before_out["imgs"]
    return text


def exercise_widget(page, widget, spec: Widget, name: str) -> list:
    bs.shot(widget, f"{name}-before")
    moved = move_every_slider(page, widget, spec)
    if spec.train:
        moved.append(("Train", "", press_train(page, widget)))
    widget.scroll_into_view_if_needed()
    bs.shot(widget, f"{name}-after")
    return moved


def _on_failure(page, name):
    try:
        bs.shot(page, f"{name}-failure")
    except Exception as err:  # noqa: BLE001 (the page may be gone; the test's error matters)
        print(f"no failure screenshot: {err}")


def exercise_in_app(page, app, url: str, stem: str, name: str) -> list:
    """Open ``url`` in a Jupyter app, run it, exercise ``stem``'s widget; shut its kernels down.

    ``app`` is the ``(server, token)`` of the lab or notebook7 fixture. On failure a screenshot
    ``<name>-failure.png`` is kept.
    """
    server, token = app
    try:
        open_and_run(page, url)
        return exercise_widget(page, find_widget(page), WIDGETS[stem], name)
    except BaseException:
        _on_failure(page, name)
        raise
    finally:
        bs.shutdown_kernels(server, token)


# --- the tests ---------------------------------------------------------------------------


@needs_browser
@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(WIDGETS))
def test_widget_in_jupyterlab(lab, page, stem):
    server, token = lab
    url = f"{server.url}/lab/tree/{stem}.ipynb?reset&token={token}"
    print(stem, exercise_in_app(page, lab, url, stem, f"lab-{stem}"))


@needs_browser
@pytest.mark.slow
def test_clip_explorer_in_notebook7(notebook7, page):
    server, token = notebook7
    url = f"{server.url}/notebooks/{CLIP}.ipynb?token={token}"
    print(exercise_in_app(page, notebook7, url, CLIP, f"notebook7-{CLIP}"))


@needs_browser
@pytest.mark.slow
def test_clip_explorer_as_a_voila_app(page, tmp_path):
    root = bs.copy_notebooks(tmp_path / "notebooks", [f"{CLIP}.ipynb"])
    server = bs.start_voila(root / f"{CLIP}.ipynb", tmp_path / "server")
    name = f"voila-{CLIP}"
    try:
        # Voila runs the notebook while it serves the page: only the response is awaited here.
        page.goto(f"{server.url}/", wait_until="commit", timeout=bs.RUN_ALL_MS)
        widget = find_widget(page)
        # Voila runs every cell before it is done; none may raise (tracebacks are shown).
        # (its "Executing i of n" spinner, #loading, is removed when all cells have run)
        page.wait_for_function("() => !document.getElementById('loading')", timeout=bs.RUN_ALL_MS)
        errors = page.locator(".jp-OutputArea-output", has_text="Traceback")
        assert errors.count() == 0, "a cell raised:\n" + errors.first.inner_text()[-3000:]
        moved = exercise_widget(page, widget, WIDGETS[CLIP], name)
    except BaseException:
        _on_failure(page, name)
        raise
    finally:
        server.stop()
    print(moved)
