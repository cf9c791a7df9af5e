"""Helpers for the real-browser widget tests: servers, the browser, and what a learner does.

Servers (JupyterLab, Notebook 7, Voila) run on 127.0.0.1 with a random token and their own
temporary config, data, runtime, settings and workspace folders, each in its own process
group so that teardown stops it and everything it started (kernels included). The browser
is Debian's Chromium driven by Playwright (``playwright install`` is never run).

Nothing here sleeps for a fixed time: every wait is on a state of the page or the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 120  # JupyterLab's first start on a busy 2-core machine can be slow
KERNEL_START_MS = 120_000
RUN_ALL_MS = 300_000  # a whole lesson (the tiny preset) in a browser kernel
REDRAW_MS = 90_000

# JupyterLab's news and update checks would reach the network; a learner's lab has them
# off after one click, so the settings say so up front.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Keep every cell in the page (no virtual scrolling), so that waits can see them all.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jupyter_env(tmp: Path) -> dict[str, str]:
    """The environment of a server: temporary Jupyter folders, offline hub."""
    env = dict(os.environ)
    for name in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTERLAB_SETTINGS_DIR",
        "JUPYTERLAB_WORKSPACES_DIR",
        "IPYTHONDIR",
    ):
        path = tmp / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"])
    for rel, values in LAB_SETTINGS.items():
        target = settings / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def copy_notebooks(dest: Path, names: list[str] | None = None) -> Path:
    """Copy notebooks/ (or only ``names``) into ``dest``: the servers never touch the repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        if names is None or path.name in names:
            shutil.copy(path, dest / path.name)
    return dest


class Server:
    """A Jupyter server process in its own process group; ``stop()`` ends the whole group."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path, url: str):
        self.url = url
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_until_up(
        self, probe: str, timeout: float = SERVER_START_S, any_status: bool = False
    ) -> None:
        """Poll ``probe`` (a URL) until it answers 200 (any HTTP answer with ``any_status``).

        Fails early, with the server's log, if the server exits.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(probe, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError:
                if any_status:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            # Poll again once the process has had a moment; wait on the process itself
            # rather than sleeping, so an early exit is seen at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.5)
        raise TimeoutError(f"server did not answer {probe} in {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left of it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # Kernels are in the same group; make sure none outlives its server.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._log.close()


def _root_flag() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def start_jupyter(app: str, root_dir: Path, tmp: Path) -> tuple[Server, str]:
    """Start ``jupyter lab`` or ``jupyter notebook`` (Notebook 7) on ``root_dir``.

    Returns the server and its token. Waits until ``/api`` answers.
    """
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.open_browser=False",
        *_root_flag(),
    ]
    url = f"http://127.0.0.1:{port}"
    server = Server(cmd, root_dir, jupyter_env(tmp), tmp / f"{app}.log", url)
    try:
        server.wait_until_up(f"{url}/api?token={token}")
    except BaseException:
        server.stop()
        raise
    return server, token


def start_voila(notebook: Path, tmp: Path) -> Server:
    """Serve one notebook with Voila as a standalone app; waits until its page answers.

    The page itself runs the notebook, so the wait probes another path (a 404 is an answer).
    """
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "voila",
        notebook.name,
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        f"--Voila.connection_dir_root={tmp}",
        "--VoilaConfiguration.show_tracebacks=True",  # so that a failing cell shows why
        # A per-cell timeout bounds a stall: Voila's executor (nbclient) waits for each cell's
        # reply on a zmq.asyncio socket with no timeout by default, and after a widget cell it
        # can sleep for good with the reply already there (jupyter/nbclient#312; the stall of
        # issue 12, which failed CI once; here the kernel sat idle after cell 12). What drops
        # the wake-up is not known. With a timeout, the poll's final check at the deadline
        # finds the reply and the cell passes: three of these tests at once took 81, 82 and
        # 196 s (a stall, recovered). Lesson 04's cells take seconds, so 120 s never cuts one short.
        "--VoilaExecutor.timeout=120",
    ]
    url = f"http://127.0.0.1:{port}"
    server = Server(cmd, notebook.parent, jupyter_env(tmp), tmp / "voila.log", url)
    try:
        server.wait_until_up(f"{url}/voila/api/no-such-path", any_status=True)
    except BaseException:
        server.stop()
        raise
    return server


def shutdown_kernels(server: Server, token: str) -> None:
    """Shut down every kernel of a Jupyter server through its REST API (frees CPU and RAM)."""
    headers = {"Authorization": f"token {token}"}
    try:
        req = urllib.request.Request(f"{server.url}/api/kernels", headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            kernels = json.load(resp)
        for k in kernels:
            req = urllib.request.Request(
                f"{server.url}/api/kernels/{k['id']}", headers=headers, method="DELETE"
            )
            with contextlib.suppress(urllib.error.URLError):
                urllib.request.urlopen(req, timeout=30).close()
    except (urllib.error.URLError, OSError):
        pass


@contextlib.contextmanager
def chromium_context(user_data_dir: Path):
    """A fresh headless Chromium profile (Debian's /usr/bin/chromium) under Playwright."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(user_data_dir),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
    finally:
        pw.stop()


# --- what a learner does in the page ------------------------------------------------------

# The cell output that holds an interactive widget with sliders (the outer one only: the
# widget's own Output area nested inside it holds no slider).
WIDGET = ".jp-OutputArea-output:has(.widget-slider)"


def run_all_cells(page, timeout_ms: int = KERNEL_START_MS) -> None:
    """Run > Run All Cells from the menu bar (JupyterLab and Notebook 7 share it).

    Re-tries while the click is lost (the menu can be rebuilt while the kernel starts),
    until the first code cell shows it ran or is running (``[*]`` or ``[1]``).
    """
    from playwright.sync_api import TimeoutError as PwTimeout

    deadline = time.monotonic() + timeout_ms / 1000
    started = page.locator(".jp-CodeCell .jp-InputPrompt").first
    while True:
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
        # exactly "Run All Cells", not "Restart Kernel and Run All Cells…"
        item = page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first
        try:
            item.wait_for(state="visible", timeout=5_000)
            item.click()
            page.wait_for_function(
                "el => /\\[(\\*|\\d+)\\]/.test(el.textContent)",
                arg=started.element_handle(),
                timeout=10_000,
            )
            return
        except PwTimeout:
            page.keyboard.press("Escape")
            if time.monotonic() > deadline:
                raise


def wait_kernel_idle(page, timeout_ms: int = KERNEL_START_MS) -> None:
    """Wait until the notebook has a kernel and it is idle (the toolbar's indicators).

    The execution indicator says "idle" before any kernel is attached, so the toolbar's
    kernel name must also be a real one (not "No Kernel").
    """
    page.wait_for_function(
        """() => {
            const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
            if (!ind || ind.getAttribute('data-status') !== 'idle') return false;
            const names = [...document.querySelectorAll(
                '.jp-Toolbar [class*=KernelName], .jp-Toolbar [class*=kernelName]')]
                .map(e => e.textContent.trim()).filter(t => t);
            return names.length > 0 && names.every(t => !/no kernel/i.test(t));
        }""",
        timeout=timeout_ms,
    )


def wait_all_cells_ran(page, timeout_ms: int = RUN_ALL_MS) -> None:
    """Wait until every code cell has an execution count, or a cell raised and none runs.

    (After an error the cells below it are not run: the caller checks for tracebacks.)
    """
    page.wait_for_function(
        """() => {
            // (a cell whose source is collapsed shows an empty prompt)
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim()).filter(t => t);
            if (prompts.length === 0 || prompts.some(t => t.includes('*'))) return false;
            const raised = [...document.querySelectorAll('.jp-OutputArea-output')]
                .some(o => o.textContent.includes('Traceback (most recent call last)'));
            return raised || prompts.every(t => /\\[\\d+\\]/.test(t));
        }""",
        timeout=timeout_ms,
    )


def output_state(widget) -> dict:
    """The image sources and the text of the widget's own Output area."""
    return widget.evaluate(
        """el => {
            const out = el.querySelector('.widget-output');
            if (!out) return {imgs: [], text: ''};
            return {
                imgs: [...out.querySelectorAll('img')].map(i => i.src),
                text: out.innerText.trim(),
            };
        }"""
    )


def wait_output_changed(widget, before: dict, text_too: bool, timeout_ms: int = REDRAW_MS):
    """Wait until the Output area shows a new plot (and new text when ``text_too``)."""
    widget.page.wait_for_function(
        """([el, before, textToo]) => {
            const out = el.querySelector('.widget-output');
            if (!out) return false;
            const imgs = [...out.querySelectorAll('img')].map(i => i.src);
            if (imgs.length === 0 || imgs.some(s => !s.startsWith('data:image'))) return false;
            const newImg = JSON.stringify(imgs) !== JSON.stringify(before.imgs);
            const newText = out.innerText.trim() !== before.text;
            return newImg && (!textToo || newText);
        }""",
        arg=[widget.element_handle(), before, text_too],
        timeout=timeout_ms,
    )
    return output_state(widget)


def drag_slider(page, slider, to: float | None = None) -> None:
    """Drag a slider's handle with the mouse along its track, and let go.

    ``to``: where to let go, as a fraction of the track (0 = left end); by default the
    other side of the track from where the handle is (a quarter from the far end).
    """
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-target").first
    handle.scroll_into_view_if_needed()
    hb, tb = handle.bounding_box(), track.bounding_box()
    x0, y0 = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    frac = (x0 - tb["x"]) / tb["width"]
    if to is None:
        to = 0.25 if frac > 0.5 else 0.75
    x1 = tb["x"] + to * tb["width"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y0, steps=5)
    page.mouse.move(x1, y0, steps=5)
    page.mouse.up()


def readout(slider) -> str:
    return slider.locator(".widget-readout").first.inner_text().strip()


def shot(locator_or_page, name: str) -> Path:
    """Save a screenshot under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    locator_or_page.screenshot(path=str(path))
    return path
