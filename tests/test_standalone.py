"""Every lesson runs as a learner gets it: from the built wheel, alone in an empty folder, twice.

Colab-like: the package is built as a wheel (``pip wheel --no-deps``) and installed into a
new virtual environment, each notebook is copied alone into an empty directory and run
there with a kernel of that environment, on the tiny preset (offline). Re-run: in the same
kernel, the notebook's cells run a second time right after the first pass (as after
"Run All" twice). One execution per notebook covers both; a cell that raises fails the
test, naming the notebook, the pass and the cell.

How the new environment sees the dependencies without reinstalling torch: a venv made with
``--system-site-packages`` from the project's ``.venv`` python would see the *base*
interpreter's site-packages (the one ``.venv`` was made from, which has no torch), not
``.venv``'s. So the venv is made plain (``--without-pip``), the wheel is installed into it
with ``pip --python <venv python> install --no-deps``, and a ``.pth`` file appends this
interpreter's site-packages directory as a plain path line: that puts the dependencies on
``sys.path`` *after* the venv's own site-packages, and a plain path line does not run the
``.pth`` files inside it, so the repo's editable-install finder is never installed. Each
run checks that ``rlhf_edu.__file__`` is inside the new venv and not the repo.

Not stalling: each cell runs under a watch (:func:`_watched`). nbclient waits for the
kernel's reply on ``zmq.asyncio`` sockets, whose file descriptor is edge-triggered; a wake-up
lost there leaves it asleep with the reply already in its socket until the cell timeout, when
its last poll finds the reply and the cell passes, a whole cell timeout after it was sent.
That has every mark of the stall of issue 12 (lesson 05 took 1,005 s instead of about 100:
the kernel idle, the client waiting, then "ok"), and
:func:`test_a_lost_wake_up_costs_a_second_not_the_cell_timeout` makes it happen on purpose;
what dropped the wake-up in that run is not known. The watch re-reads the client's sockets
every WATCH_S, so such a loss costs about a second, and fails the cell by name if the kernel
idles with a reply pending. Per-cell times go to
``test-artifacts/standalone-<lesson>-timings.json``, pass or fail.

    .venv/bin/python -m pytest tests/test_standalone.py -v -s
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts"
# Runs by default (about 12 minutes on 2 cores, most of it lessons 08 and 09 twice);
# RLHF_EDU_STANDALONE=0 skips it for a quick local run.
SKIP = pytest.mark.skipif(
    os.environ.get("RLHF_EDU_STANDALONE") == "0",
    reason="standalone wheel runs skipped: RLHF_EDU_STANDALONE=0",
)

KERNEL = "rlhf-edu-wheel"
# One cell: the longest takes about a minute on 2 quiet cores (several under load).
CELL_TIMEOUT_S = 600
# While a cell runs, the test looks at the client's sockets and the kernel this often.
WATCH_S = 1.0
# A kernel that uses less than IDLE_CPU_S of CPU time in IDLE_LIMIT_S while a cell's reply is
# still pending is waiting for a message that is not coming: the test fails naming the cell
# (an idle kernel, torch imported and a tqdm bar shown, used 0.010 s of CPU in 60 s).
IDLE_LIMIT_S = 90
IDLE_CPU_S = 0.5
# Both passes of one notebook: a backstop for CI, not a stall detector (the slowest, 08,
# takes about 5 minutes on 2 quiet cores and several times that on a loaded machine).
NOTEBOOK_BUDGET_S = 3600

pytestmark = [pytest.mark.slow, SKIP]


def _run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _setuptools_version() -> tuple[int, ...]:
    try:
        from importlib.metadata import version

        return tuple(int(x) for x in version("setuptools").split(".")[:2] if x.isdigit())
    except Exception:  # noqa: BLE001 (not installed, or an odd version string)
        return (0,)


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """Build the wheel, install it into a new venv, add a kernelspec for that venv.

    Returns a dict with ``python`` (the venv's), ``site`` (its site-packages) and
    ``jupyter_path`` (where its kernelspec lies).
    """
    tmp = tmp_path_factory.mktemp("standalone")
    # Build from a copy of the sources, so that concurrent builds never share build/.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "rlhf_edu", src / "rlhf_edu", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    pip = [sys.executable, "-m", "pip"]
    # Offline and fast with this environment's setuptools when it is new enough for
    # pyproject.toml (a PEP 639 license string needs >= 77); else pip's isolated build.
    flags = ["--no-build-isolation"] if _setuptools_version() >= (77,) else []
    _run([*pip, "wheel", "--no-deps", *flags, "-q", "-w", tmp / "wheel", src])
    (wheel,) = (tmp / "wheel").glob("rlhf_edu-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = _venv_python(venv)
    _run([*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel])
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    )
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_rlhf_edu_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))

    jupyter_path = tmp / "jupyter"
    spec_dir = jupyter_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rlhf-edu (wheel)",
        "language": "python",
        "env": {"HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return {"python": python, "site": site, "jupyter_path": jupyter_path, "wheel": wheel}


def test_the_wheel_not_the_repo_is_imported(wheel_env, tmp_path):
    """From an empty folder, the venv imports rlhf_edu from its own site-packages."""
    code = (
        "import sys, rlhf_edu, rlhf_edu.presets, torch, ipykernel; "
        "print(rlhf_edu.__file__); "
        "print(any('editable' in m for m in sys.modules))"
    )
    out = _run([wheel_env["python"], "-c", code], cwd=tmp_path, env=_kernel_env()).split()
    where = Path(out[0]).resolve()
    assert where.is_relative_to(wheel_env["site"].resolve()), where
    assert not where.is_relative_to(ROOT), where
    assert out[1] == "False", "the repo's editable-install finder was loaded"
    assert (where.parent / "tiny" / "policy" / "model.safetensors").exists()


def _kernel_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _twice(nb, site: Path):
    """The notebook's cells, a check that rlhf_edu comes from ``site``, the cells again.

    Returns the new notebook and, per cell, ``(pass, index in the original)`` or None.
    """
    import nbformat

    check = nbformat.v4.new_code_cell(
        "import rlhf_edu, pathlib\n"
        f"assert pathlib.Path(rlhf_edu.__file__).resolve().is_relative_to({str(site.resolve())!r}),"
        " rlhf_edu.__file__"
    )
    doubled = copy.deepcopy(nb)
    first = [copy.deepcopy(c) for c in nb.cells]
    second = [copy.deepcopy(c) for c in nb.cells]
    for i, cell in enumerate(second):
        cell["id"] = f"second-pass-{i}"  # cell ids must stay unique
    doubled.cells = [*first, check, *second]
    where = [(1, i) for i in range(len(first))] + [None] + [(2, i) for i in range(len(second))]
    return doubled, where


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_alone_from_the_wheel_twice(wheel_env, path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    workdir = tmp_path / "empty"
    workdir.mkdir()
    shutil.copy(path, workdir / path.name)
    nb = nbformat.read(workdir / path.name, as_version=4)
    doubled, where = _twice(nb, wheel_env["site"])

    monkeypatch.setenv("JUPYTER_PATH", str(wheel_env["jupyter_path"]))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    client = NotebookClient(
        doubled,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=180,
        allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    timings: list[dict] = []
    phases: dict[str, float] = {}
    try:
        failure = asyncio.run(_run_all(client, doubled, where, timings, phases))
    finally:
        _save_timings(path.stem, timings, phases)
    if failure is not None:
        _save(doubled, path.stem)
        pytest.fail(f"{path.name}: {failure}", pytrace=False)
    seconds = {run: sum(t["wall_s"] for t in timings if t["pass"] == run) for run in (1, 2)}
    slowest = max(timings, key=lambda t: t["wall_s"])
    lag = max(timings, key=lambda t: t["reply_lag_s"] or 0.0)
    print(
        f"\n{path.stem}: first pass {seconds[1]:.0f}s, second pass {seconds[2]:.0f}s; slowest: "
        f"{_label(slowest)} {slowest['wall_s']:.0f}s; largest reply delay "
        f"{lag['reply_lag_s'] or 0.0:.2f}s ({_label(lag)}); kernel start "
        f"{phases['kernel_start_s']:.0f}s, shutdown {phases['kernel_shutdown_s']:.0f}s"
    )


def _label(timing: dict) -> str:
    if timing["pass"] is None:
        return "the check cell"
    return f"cell {timing['cell']} of pass {timing['pass']}"


def _small_client(sources: list[str], timeout: int):
    """A NotebookClient for a few code cells on this environment's own python3 kernel."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    return NotebookClient(nb, kernel_name="python3", timeout=timeout, startup_timeout=180)


def _lose_shell_wake_ups(client) -> None:
    """Make the client's shell socket lose every wake-up, as a lost zmq edge does.

    Before each cell, the asyncio reader that pyzmq put on the socket's edge-triggered file
    descriptor is taken away: the kernel's reply then lands in the socket unnoticed.
    """

    def drop_reader(**_):
        socket = client.kc.shell_channel.socket
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_event_loop().remove_reader(socket.FD)

    client.on_cell_execute = drop_reader


def test_a_lost_wake_up_costs_a_second_not_the_cell_timeout():
    """The stall of issue 12, made on purpose: a reply that lands unnoticed.

    Plain nbclient then waits out the cell timeout and the cell passes (kernel idle, client
    waiting, \"ok\" minutes late); watched as the lessons are, the reply is picked up
    within about WATCH_S.
    """
    timeout = 8
    plain = _small_client(["x = 1"], timeout)
    _lose_shell_wake_ups(plain)
    with plain.setup_kernel():
        start = time.perf_counter()
        plain.execute_cell(plain.nb.cells[0], 0)
        waited = time.perf_counter() - start
    assert waited >= timeout - 0.5, f"the lost wake-up was not lost ({waited:.1f}s)"

    sources = ["x = 1", "x + 1", "print(x)"]
    watched = _small_client(sources, timeout)
    _lose_shell_wake_ups(watched)
    timings: list[dict] = []
    where = [(1, i) for i in range(len(sources))]
    failure = asyncio.run(_run_all(watched, watched.nb, where, timings))
    assert failure is None, failure
    assert len(timings) == len(sources)
    assert all(t["wall_s"] < 4 * WATCH_S for t in timings), timings


def test_an_idle_kernel_fails_the_cell_by_name(monkeypatch):
    """A kernel that idles while a reply is pending fails the cell after IDLE_LIMIT_S."""
    monkeypatch.setattr(sys.modules[__name__], "IDLE_LIMIT_S", 5)
    client = _small_client(["import time", "time.sleep(120)  # no CPU, no reply"], 300)
    timings: list[dict] = []
    start = time.perf_counter()
    failure = asyncio.run(_run_all(client, client.nb, [(1, 0), (1, 1)], timings))
    assert failure is not None, "the idle kernel was not noticed"
    assert failure.startswith(
        "pass 1, cell 1 ('time.sleep(120)  # no CPU, no reply') raised _Stalled"
    )
    assert "CPU" in failure, failure
    assert timings[-1]["wall_s"] < 30, timings
    assert time.perf_counter() - start < 60


class _Stalled(Exception):
    """The kernel idles with a cell's reply pending, or the notebook ran past its budget."""


async def _run_all(client, nb, where, timings: list[dict], phases=None) -> str | None:
    """Start a kernel, run every code cell (:func:`_run_cells`), shut the kernel down.

    Fills ``phases`` with the seconds the kernel took to start and to shut down. Returns
    None, or why the run failed, naming the pass and the cell.
    """
    phases = {} if phases is None else phases
    start = time.perf_counter()
    async with client.async_setup_kernel():
        phases["kernel_start_s"] = round(time.perf_counter() - start, 3)
        failure = await _run_cells(client, nb, where, timings)
        leaving = time.perf_counter()
    phases["kernel_shutdown_s"] = round(time.perf_counter() - leaving, 3)
    return failure


async def _run_cells(client, nb, where, timings: list[dict]) -> str | None:
    """Run every code cell, each watched by :func:`_watched`; append one timing per cell."""
    import psutil
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    deadline = time.monotonic() + NOTEBOOK_BUDGET_S
    kernel = psutil.Process(client.km.provisioner.pid)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        run, i = where[index] if where[index] is not None else (None, None)
        first_line = cell.source.splitlines()[0] if cell.source else ""
        name = "the check cell" if run is None else f"pass {run}, cell {i} ({first_line!r})"
        start = time.perf_counter()
        try:
            await _watched(client, kernel, cell, index, deadline)
        except (CellExecutionError, CellTimeoutError, DeadKernelError, _Stalled) as err:
            if run is None and isinstance(err, CellExecutionError):
                return f"rlhf_edu is not the wheel's:\n{err}"
            return f"{name} raised {type(err).__name__}:\n{err}"
        finally:
            timings.append(_timing(cell, run, i, time.perf_counter() - start))
    return None


async def _watched(client, kernel, cell, index: int, deadline: float) -> None:
    """Execute one cell with nbclient; every WATCH_S while it runs, look at both ends.

    The client: nbclient waits for the kernel's reply on zmq sockets whose file descriptor
    is edge-triggered, so a wake-up that is lost leaves it asleep with the reply already in
    its socket until the cell timeout (where its last poll finds the reply and the cell
    passes, minutes late). Reading ``zmq.EVENTS`` on a ``zmq.asyncio`` socket makes pyzmq
    hand any waiting message to its waiter, so such a loss costs about WATCH_S here.

    The kernel: if its process (children included) uses less than IDLE_CPU_S of CPU in
    IDLE_LIMIT_S while the reply is pending, it is idle, waiting for a message that is
    lost: raise :class:`_Stalled` rather than wait out the cell timeout.
    """
    import zmq

    task = asyncio.ensure_future(client.async_execute_cell(cell, index))
    cpu, since = _cpu_seconds(kernel), time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=WATCH_S)
            if done:
                task.result()  # the cell's error, if any
                return
            pending = {
                name: bool(channel.socket.get(zmq.EVENTS) & zmq.POLLIN)
                for name, channel in (
                    ("shell", client.kc.shell_channel),
                    ("iopub", client.kc.iopub_channel),
                )
            }
            now, used = time.monotonic(), _cpu_seconds(kernel)
            if used - cpu >= IDLE_CPU_S:
                cpu, since = used, now
            elif now - since > IDLE_LIMIT_S:
                seen = dict(cell.metadata.get("execution", {}))
                raise _Stalled(
                    f"the kernel used {used - cpu:.2f}s of CPU in {now - since:.0f}s while this "
                    f"cell's reply was pending (messages waiting in the client's sockets: "
                    f"{pending}; kernel timestamps received for this cell: {seen})"
                )
            if now > deadline:
                raise _Stalled(f"the notebook ran past its budget of {NOTEBOOK_BUDGET_S}s")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _cpu_seconds(process) -> float:
    """User + system CPU time of a process and its children, in seconds."""
    import psutil

    total = 0.0
    for p in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _timing(cell, run, i, wall_s: float) -> dict:
    """One cell's times: the client's wall time and the kernel's own timestamps.

    ``kernel_s`` is the kernel's busy-to-idle time for the cell and ``reply_lag_s`` how long
    after the kernel stamped its reply the client was done with the cell (normally well
    under a second; a lost wake-up shows up here, not in ``kernel_s``).
    """
    done = datetime.datetime.now(datetime.UTC)
    stamps = {}
    for key, value in cell.metadata.get("execution", {}).items():
        with contextlib.suppress(ValueError, TypeError):
            stamps[key] = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.UTC
            )
    busy, idle = stamps.get("iopub.status.busy"), stamps.get("iopub.status.idle")
    reply = stamps.get("shell.execute_reply")
    return {
        "pass": run,
        "cell": i,
        "first_line": cell.source.splitlines()[0] if cell.source else "",
        "wall_s": round(wall_s, 3),
        "kernel_s": round((idle - busy).total_seconds(), 3) if busy and idle else None,
        "reply_lag_s": round((done - reply).total_seconds(), 3) if reply else None,
    }


def _save_timings(stem: str, timings: list[dict], phases: dict[str, float]) -> None:
    """Per-cell times of a run in test-artifacts/, kept whether it passed or failed."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"standalone-{stem}-timings.json"
    path.write_text(json.dumps({"phases": phases, "cells": timings}, indent=1) + "\n")


def _save(nb, stem: str) -> None:
    """Keep the executed notebook of a failure in test-artifacts/ for a look."""
    import nbformat

    ARTIFACTS.mkdir(exist_ok=True)
    nbformat.write(nb, ARTIFACTS / f"standalone-{stem}.ipynb")
