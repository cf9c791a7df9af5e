"""The standalone runs: every lesson from the built wheel, alone in an empty folder, twice.

Colab-like: the package is built as a wheel (``pip wheel --no-deps``) and installed into a
new virtual environment, each notebook is copied alone into an empty directory and run
there with a kernel of that environment, on the tiny preset (offline). Re-run: in the same
kernel, the notebook's cells run a second time right after the first pass (as after
"Run All" twice). One execution per notebook covers both; a cell that raises fails the
run, naming the notebook, the pass and the cell. ``tests/test_standalone.py`` holds the
tests; this module runs them.

**Beside the rest of the suite.** The runs take about 41 of the suite's minutes, one kernel
at a time, and each kernel uses one core (``notebook.setup()`` sets one torch thread on the
tiny preset), so on two cores they run in a thread of the pytest process of their own,
started as the test loop begins (``tests/conftest.py``), while the other tests use the other
core; ``test_standalone.py``'s tests are moved to the end and wait for their lesson's
result. Nothing process-wide is changed for them: the kernelspec is found through a
``KernelSpecManager`` of its own, the kernel gets its environment as an argument, and its
channels are ``ipc`` sockets in a folder of the run, so they cannot collide with the TCP
ports the other tests' kernels pick.

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
``test_a_lost_wake_up_costs_a_second_not_the_cell_timeout`` makes it happen on purpose;
what dropped the wake-up in that run is not known. The watch re-reads the client's sockets
every WATCH_S, so such a loss costs about a second, and fails the cell by name if the kernel
idles with a reply pending. Per-cell times go to
``test-artifacts/<label>-<lesson>-timings.json``, pass or fail (label ``standalone`` here;
``colab-tiny`` and ``colab-standin`` for tests/test_colab_env.py's runs).
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
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts"
KERNEL = "rlhf-edu-wheel"
# One cell: the longest takes about a minute on 2 quiet cores (several under load).
CELL_TIMEOUT_S = 600
# While a cell runs, the runner looks at the client's sockets and the kernel this often.
WATCH_S = 1.0
# A kernel that uses less than IDLE_CPU_S of CPU time in IDLE_LIMIT_S while a cell's reply is
# still pending is waiting for a message that is not coming: the run fails naming the cell
# (an idle kernel, torch imported and a tqdm bar shown, used 0.010 s of CPU in 60 s).
IDLE_LIMIT_S = 90
IDLE_CPU_S = 0.5
# Both passes of one notebook: a backstop for CI, not a stall detector (the slowest, 08,
# takes about 7 minutes a pass on 2 cores, and more beside the rest of the suite).
NOTEBOOK_BUDGET_S = 3600


def run(cmd, **kw) -> str:
    """Run a command; on failure raise AssertionError with the command and its output."""
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


def kernel_env() -> dict[str, str]:
    """The environment a wheel kernel (or a command of the wheel's venv) runs with.

    This process's, less ``PYTHONPATH``/``PYTHONHOME`` (the wheel, not the repo) and the
    preset variables (the standalone runs are on the tiny preset), offline.
    """
    drop = {"PYTHONPATH", "PYTHONHOME", "RLHF_EDU_PRESET", "RLHF_EDU_SOURCE"}
    env = {k: v for k, v in dict(os.environ).items() if k not in drop}
    env["HF_HUB_OFFLINE"] = "1"
    env["TRL_EXPERIMENTAL_SILENCE"] = "1"
    return env


def build_wheel_env(tmp: Path, env: dict[str, str] | None = None) -> dict:
    """Build the wheel, install it into a new venv, write a kernelspec for that venv.

    ``env``: the environment of the build commands and of the kernel (default:
    :func:`kernel_env`). Returns a dict with ``python`` (the venv's), ``site`` (its
    site-packages), ``kernels`` (the folder holding its kernelspec), ``wheel`` and
    ``kernel_env``.
    """
    env = kernel_env() if env is None else env
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
    run([*pip, "wheel", "--no-deps", *flags, "-q", "-w", tmp / "wheel", src], env=env)
    (wheel,) = (tmp / "wheel").glob("rlhf_edu-*.whl")

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], env=env)
    python = _venv_python(venv)
    run([*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], env=env)
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(run([python, "-c", code], env=env).strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_rlhf_edu_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))

    return {
        "python": python,
        "site": site,
        "kernels": write_kernelspec(tmp / "kernels", python),
        "wheel": wheel,
        "kernel_env": env,
    }


def write_kernelspec(kernels: Path, python: Path) -> Path:
    """A kernelspec named KERNEL for ``python``'s ipykernel, in the folder ``kernels``."""
    (kernels / KERNEL).mkdir(parents=True)
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rlhf-edu (wheel)",
        "language": "python",
        "env": {"HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"},
    }
    (kernels / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return kernels


def repeated(nb, site: Path, passes: int = 2):
    """The notebook's cells, a check that rlhf_edu comes from ``site``, then (``passes=2``)
    the cells again.

    ``passes``: 2 (as after "Run All" twice in one kernel), or 1 (the cells and the check).
    Returns the new notebook and, per cell, ``(pass, index in the original)`` or None.
    """
    import nbformat

    if passes not in (1, 2):
        raise ValueError(f"passes: expected 1 or 2, got {passes!r}")
    check = nbformat.v4.new_code_cell(
        "import rlhf_edu, pathlib\n"
        f"assert pathlib.Path(rlhf_edu.__file__).resolve().is_relative_to({str(site.resolve())!r}),"
        " rlhf_edu.__file__"
    )
    out = copy.deepcopy(nb)
    first = [copy.deepcopy(c) for c in nb.cells]
    second = [copy.deepcopy(c) for c in nb.cells] if passes == 2 else []
    for i, cell in enumerate(second):
        cell["id"] = f"second-pass-{i}"  # cell ids must stay unique
    out.cells = [*first, check, *second]
    where = [(1, i) for i in range(len(first))] + [None] + [(2, i) for i in range(len(second))]
    return out, where


@dataclass
class Result:
    """One lesson's standalone run: ``failure`` is None or why it failed."""

    failure: str | None
    timings: list[dict] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


async def run_lesson(
    path: Path, env: dict, tmp: Path, stop=None, *, passes: int = 2, label: str = "standalone"
) -> Result:
    """Run one notebook twice (or ``passes`` times) from the wheel, alone in an empty folder.

    ``env``: what :func:`build_wheel_env` returned (``python``, ``site``, ``kernels``), with
    ``kernel_env`` the kernel's environment. ``tmp``: where the folder and the kernel's
    sockets go. ``stop``: a ``threading.Event`` that ends the run at the next watch.
    ``label``: the prefix of the files in test-artifacts/ (``<label>-<lesson>-...``).
    """
    import nbformat
    import zmq
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    workdir = tmp / path.stem / "empty"
    workdir.mkdir(parents=True)
    shutil.copy(path, workdir / path.name)
    nb = nbformat.read(workdir / path.name, as_version=4)
    cells, where = repeated(nb, env["site"], passes)
    # ipc: the channels are the files k05-1, k05-2, ... (a socket path has at most 104
    # bytes on macOS); tcp where zmq has no ipc (Windows).
    ipc = zmq.has("ipc")
    km = AsyncKernelManager(
        kernel_name=KERNEL,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(env["kernels"])]),
        **({"transport": "ipc", "ip": str(tmp / f"k{path.stem[:2]}")} if ipc else {}),
    )
    client = NotebookClient(
        cells,
        km=km,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=180,
        allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
        # as nbclient does for a kernel named python3: no history file shared between kernels
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
    )
    ARTIFACTS.mkdir(exist_ok=True)
    result = Result(failure=None)
    start = time.perf_counter()
    # The kernel's own output (start-up warnings, a crash) goes to a log, not to pytest's.
    log_path = ARTIFACTS / f"{label}-{path.stem}-kernel.log"
    with open(log_path, "w") as log:  # noqa: ASYNC230 (a local file, opened once)
        try:
            result.failure = await run_all(
                client,
                cells,
                where,
                result.timings,
                result.phases,
                env=env["kernel_env"],
                stop=stop,
                stdout=log,
                stderr=log,
            )
        finally:
            result.seconds = time.perf_counter() - start
            _save_timings(f"{label}-{path.stem}", result.timings, result.phases)
            if km.has_kernel:  # the start was interrupted before nbclient's cleanup took over
                with contextlib.suppress(Exception):
                    await km.shutdown_kernel(now=True)
    if result.failure is not None:
        _save(cells, f"{label}-{path.stem}")
    return result


class Runs:
    """The standalone runs of some lessons, one after another, in a thread of their own.

    :meth:`start` builds the wheel's venv and runs each lesson; :meth:`env` and
    :meth:`result` wait for what they return. A run that cannot start (the wheel does not
    build) is every lesson's failure. The environment is taken once, here, in the caller's
    thread: tests that set variables later (``RLHF_EDU_PRESET``, ``HF_HUB_CACHE``, ...) do
    not reach the runs.
    """

    def __init__(self, notebooks: list[Path]):
        self.notebooks = list(notebooks)
        self.tmp = Path(tempfile.mkdtemp(prefix="rlhf-sa-"))
        self.kernel_env = kernel_env()
        self._env: dict | BaseException | None = None
        self._results: dict[str, Result] = {}
        self._done = {p.stem: threading.Event() for p in self.notebooks}
        self._env_ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="standalone-runs", daemon=True)

    def start(self) -> Runs:
        self._thread.start()
        return self

    def env(self) -> dict:
        self._wait(self._env_ready, "the wheel's venv")
        if isinstance(self._env, BaseException):
            raise AssertionError(f"the wheel's venv could not be built:\n{self._env}")
        return self._env

    def result(self, path: Path) -> Result:
        if path.stem not in self._done:
            raise KeyError(f"{path.stem} was not collected for a standalone run")
        self._wait(self._done[path.stem], path.stem)
        return self._results[path.stem]

    def _wait(self, event: threading.Event, what: str) -> None:
        while not event.wait(5):
            if not self._thread.is_alive() and not event.is_set():
                raise AssertionError(f"the standalone runs' thread ended without {what}")

    def stop(self, timeout: float = 60) -> None:
        """End what still runs (its kernel is shut down) and remove the temporary files.

        The running lesson stops at its next watch (about WATCH_S); the files stay if the
        thread is still busy after ``timeout`` (a wheel build, a kernel start).
        """
        self._stop.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _main(self) -> None:
        try:
            self._env = build_wheel_env(self.tmp, self.kernel_env)
        except BaseException as err:  # noqa: BLE001 (reported by every lesson's test)
            self._env = err
        self._env_ready.set()
        for path in self.notebooks:
            if isinstance(self._env, BaseException):
                self._finish(path, Result(f"the wheel's venv could not be built:\n{self._env}"))
            elif self._stop.is_set():
                self._finish(path, Result("not run: the test session ended first"))
            else:
                try:
                    result = asyncio.run(run_lesson(path, self._env, self.tmp, self._stop))
                except BaseException as err:  # noqa: BLE001 (the lesson's test reports it)
                    result = Result(runner_failure(err))
                self._finish(path, result)

    def _finish(self, path: Path, result: Result) -> None:
        self._results[path.stem] = result
        self._done[path.stem].set()


def runner_failure(err: BaseException) -> str:
    """A run's failure when the runner itself raised: the error and where (its traceback)."""
    import traceback

    where = "".join(traceback.format_exception(err)[-6:])
    return f"the runner raised {type(err).__name__}: {err}\n{where}"


class _Stalled(Exception):
    """The kernel idles with a cell's reply pending, or the notebook ran past its budget."""


async def run_all(
    client,
    nb,
    where,
    timings: list[dict],
    phases=None,
    env=None,
    idle_limit_s=None,
    stop=None,
    **launch,
) -> str | None:
    """Start a kernel, run every code cell (:func:`_run_cells`), shut the kernel down.

    ``env``: the kernel's environment (default: this process's). ``idle_limit_s``: see
    :func:`_watched` (default IDLE_LIMIT_S). ``stop``: a ``threading.Event`` that ends the
    run at the next watch. ``launch``: more arguments for the kernel's process (``stdout``,
    ``stderr``). Fills ``phases`` with the seconds the kernel took to start and to shut
    down. Returns None, or why the run failed, naming the pass and the cell.
    """
    phases = {} if phases is None else phases
    kwargs = dict(launch) if env is None else {"env": env, **launch}
    start = time.perf_counter()
    # cleanup_kc: shut the kernel down on the way out even when the client was given its km.
    async with client.async_setup_kernel(cleanup_kc=True, **kwargs):
        phases["kernel_start_s"] = round(time.perf_counter() - start, 3)
        failure = await _run_cells(client, nb, where, timings, idle_limit_s or IDLE_LIMIT_S, stop)
        leaving = time.perf_counter()
    phases["kernel_shutdown_s"] = round(time.perf_counter() - leaving, 3)
    return failure


async def _run_cells(
    client, nb, where, timings: list[dict], idle_limit_s: float, stop=None
) -> str | None:
    """Run every code cell, each watched by :func:`_watched`; append one timing per cell."""
    import psutil
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    deadline = time.monotonic() + NOTEBOOK_BUDGET_S
    kernel = psutil.Process(client.km.provisioner.pid)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if stop is not None and stop.is_set():
            return "stopped: the test session ended before the notebook did"
        run, i = where[index] if where[index] is not None else (None, None)
        first_line = cell.source.splitlines()[0] if cell.source else ""
        name = "the check cell" if run is None else f"pass {run}, cell {i} ({first_line!r})"
        start = time.perf_counter()
        try:
            await _watched(client, kernel, cell, index, deadline, idle_limit_s, stop)
        except (CellExecutionError, CellTimeoutError, DeadKernelError, _Stalled) as err:
            if run is None and isinstance(err, CellExecutionError):
                return f"rlhf_edu is not the wheel's:\n{err}"
            return f"{name} raised {type(err).__name__}:\n{err}"
        finally:
            timings.append(_timing(cell, run, i, time.perf_counter() - start))
    return None


async def _watched(
    client, kernel, cell, index: int, deadline: float, idle_limit_s: float, stop=None
) -> None:
    """Execute one cell with nbclient; every WATCH_S while it runs, look at both ends.

    The client: nbclient waits for the kernel's reply on zmq sockets whose file descriptor
    is edge-triggered, so a wake-up that is lost leaves it asleep with the reply already in
    its socket until the cell timeout (where its last poll finds the reply and the cell
    passes, minutes late). Reading ``zmq.EVENTS`` on a ``zmq.asyncio`` socket makes pyzmq
    hand any waiting message to its waiter, so such a loss costs about WATCH_S here.

    The kernel: if its process (children included) uses less than IDLE_CPU_S of CPU in
    ``idle_limit_s`` while the reply is pending, it is idle, waiting for a message that is
    lost: raise :class:`_Stalled` rather than wait out the cell timeout.

    ``stop`` (a ``threading.Event``), once set, ends the cell at the next watch.
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
            if stop is not None and stop.is_set():
                raise _Stalled("stopped: the test session ended before this cell did")
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
            elif now - since > idle_limit_s:
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


def _save_timings(name: str, timings: list[dict], phases: dict[str, float]) -> None:
    """Per-cell times of a run in test-artifacts/, kept whether it passed or failed."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}-timings.json"
    path.write_text(json.dumps({"phases": phases, "cells": timings}, indent=1) + "\n")


def _save(nb, name: str) -> None:
    """Keep the executed notebook of a failure in test-artifacts/ for a look."""
    import nbformat

    ARTIFACTS.mkdir(exist_ok=True)
    nbformat.write(nb, ARTIFACTS / f"{name}.ipynb")


def main(argv: list[str] | None = None) -> int:
    """Run lessons' standalone runs again and again, to look for stalls (issue 12).

        .venv/bin/python tests/standalone_runs.py 05 07 --times 10

    Each lesson's runs go one after another (one kernel, one core); prints each run's
    seconds and failure, and per lesson the slowest run and the largest reply delay.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="+", help="lesson numbers or stems, e.g. 05")
    parser.add_argument("--times", type=int, default=10, help="runs per lesson (default 10)")
    args = parser.parse_args(argv)
    paths = []
    for name in args.lessons:
        found = [p for p in NOTEBOOKS if p.stem == name or p.stem.startswith(f"{name}_")]
        if len(found) != 1:
            parser.error(f"lessons: {name!r} names {len(found)} notebooks, expected 1")
        paths.extend(found)
    if args.times < 1:
        parser.error(f"--times: expected a positive number of runs, got {args.times}")
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-sa-"))
    try:
        env = build_wheel_env(tmp)
        failed = 0
        for path in paths:
            seconds, lags = [], []
            for k in range(args.times):
                result = asyncio.run(run_lesson(path, env, tmp / f"run{k}"))
                lag = max((t["reply_lag_s"] or 0.0 for t in result.timings), default=0.0)
                seconds.append(result.seconds)
                lags.append(lag)
                status = "ok" if result.failure is None else f"FAILED: {result.failure}"
                print(
                    f"{path.stem} run {k + 1}/{args.times}: {result.seconds:.0f} s, largest "
                    f"reply delay {lag:.2f} s, {status}",
                    flush=True,
                )
                failed += result.failure is not None
            print(
                f"{path.stem}: {args.times} runs, slowest {max(seconds):.0f} s, fastest "
                f"{min(seconds):.0f} s, median {sorted(seconds)[len(seconds) // 2]:.0f} s, "
                f"largest reply delay {max(lags):.2f} s",
                flush=True,
            )
        return 1 if failed else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
