"""Headless stress check of the notebooks that display widgets (``make test-headless``).

Executes every notebook of ``notebooks/`` that displays an explorer ``RUNS`` times in a row with
nbclient (no per-cell timeout, as ``make notebooks`` ran before it had one) and once with papermill,
each run in its own process under an outer wall-clock limit, then prints one row per notebook and
client (runs, median, max). It fails when a run hits the limit (a stalled cell) or takes more than
``SLOWDOWN`` times the notebook's nbclient median (a cell that waited for a timeout).

    .venv/bin/python tests/notebook/headless.py                    # the widget notebooks, 10 runs + papermill
    .venv/bin/python tests/notebook/headless.py --runs 30 --no-papermill notebooks/01_entropic_ot_and_sinkhorn.ipynb

``--execute IN OUT`` executes one notebook with nbclient, as each nbclient run does in its own process.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]
RUNS = 10
LIMIT_S = 300.0
SLOWDOWN = 3.0
EXPLORER_CALL = re.compile(r"\b(\w+_explorer|plan_inspector|Explorer)\(")

FIXTURE_CELLS = (
    "%matplotlib inline\nimport torch\nfrom gcalib.notebook import analysis, explorers\n"
    "x, y = analysis.two_clouds(6, 5, n_outliers=1)\ncost = analysis.squared_distances(x, y)\n"
    "views = analysis.contrastive_batch(6, 4, seed=0)",
    "explorers.sinkhorn_explorer(cost, x=x, y=y, eps=0.1, n_iter=20)",
    "explorers.loss_plan_explorer(views, name='gca_ince')",
    "explorers.plan_inspector(torch.tensor([0, 0, 1, 1, 2, 2]), alpha=0.2, beta=0.05)",
    "explorers.sinkhorn_explorer(cost, eps=0.05, unbalanced=True, reg=0.1)",
    "print('done')",
)


def fixture_notebook() -> nbformat.NotebookNode:
    """The smallest notebook that shows the stall: a fresh kernel displaying explorers, one per cell.

    With explorers that drew into an ``Output`` widget, nbclient waited for the cell timeout (forever
    without one) after about one explorer cell in ten."""
    notebook = new_notebook(cells=[new_code_cell(source) for source in FIXTURE_CELLS])
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def widget_notebooks(folder: Path = ROOT / "notebooks") -> list[Path]:
    """The numbered notebooks with a code cell that calls an explorer."""
    return [path for path in sorted(folder.glob("[0-9]*.ipynb")) if _calls_explorer(path)]


def _calls_explorer(path: Path) -> bool:
    cells = nbformat.read(path, as_version=4).cells
    return any(cell.cell_type == "code" and EXPLORER_CALL.search(cell.source) for cell in cells)


def execute(source: Path, target: Path) -> None:
    """Execute ``source`` with nbclient in its own folder, no cell timeout, and write it to ``target``."""
    notebook = nbformat.read(source, as_version=4)
    NotebookClient(notebook, timeout=None, resources={"metadata": {"path": str(source.parent)}}).execute()
    nbformat.write(notebook, target)


def nbclient_command(source: Path, target: Path) -> list[str]:
    """The command that executes ``source`` into ``target`` with nbclient (see :func:`execute`)."""
    return [sys.executable, str(Path(__file__).resolve()), "--execute", str(source), str(target)]


def papermill_command(source: Path, target: Path) -> list[str]:
    """The command that executes ``source`` into ``target`` with papermill, in the notebook's folder."""
    return [sys.executable, "-m", "papermill", str(source), str(target), "--cwd", str(source.parent),
            "--no-progress-bar", "--log-level", "WARNING"]


def timed_run(command: Sequence[str], limit_s: float) -> Optional[float]:
    """Seconds ``command`` took, or None when it failed or ran past ``limit_s`` (then it is killed;
    its kernel, a child that notices the loss of its parent, exits on its own)."""
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    return time.monotonic() - start


def verdict(times: Sequence[Optional[float]], median: float, limit_s: float) -> list[str]:
    """One problem per run that hit the limit or took more than ``SLOWDOWN`` × ``median``."""
    problems = []
    for run, seconds in enumerate(times, 1):
        if seconds is None:
            problems.append(f"run {run} hit the {limit_s:.0f} s limit")
        elif seconds > SLOWDOWN * median:
            problems.append(f"run {run} took {seconds:.1f} s > {SLOWDOWN:g} × median {median:.1f} s")
    return problems


def stress(source: Path, runs: int, limit_s: float, papermill: bool, folder: Path) -> tuple[list[str], list[str]]:
    """Table rows and problems for ``runs`` nbclient runs (and one papermill run) of ``source``."""
    target = folder / source.name
    times = [timed_run(nbclient_command(source, target), limit_s) for _ in range(runs)]
    finished = [t for t in times if t is not None]
    median = statistics.median(finished) if finished else limit_s
    rows = [_row(source.name, "nbclient", times)]
    problems = [f"{source.name} nbclient: {p}" for p in verdict(times, median, limit_s)]
    if papermill:
        once = [timed_run(papermill_command(source, target), limit_s)]
        rows.append(_row(source.name, "papermill", once))
        problems += [f"{source.name} papermill: {p}" for p in verdict(once, median, limit_s)]
    return rows, problems


def _row(name: str, client: str, times: Sequence[Optional[float]]) -> str:
    finished = [t for t in times if t is not None]
    median = f"{statistics.median(finished):.1f}" if finished else "-"
    slowest = f"{max(finished):.1f}" if finished else "-"
    return f"{name:<44} {client:<9} {len(times):>4} {len(times) - len(finished):>6} {median:>8} {slowest:>7}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.execute:
        execute(*map(Path, args.execute))
        return 0
    sources = [Path(p).resolve() for p in args.notebooks] or widget_notebooks()
    print(f"{'notebook':<44} {'client':<9} {'runs':>4} {'stalls':>6} {'median s':>8} {'max s':>7}", flush=True)
    problems = []
    with tempfile.TemporaryDirectory() as folder:
        for source in sources:
            rows, found = stress(source, args.runs, args.limit, args.papermill, Path(folder))
            print("\n".join(rows), flush=True)
            problems += found
    print("\n".join(problems) or "no stalls, no run slower than 3 × its median")
    return 1 if problems else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every notebook with an explorer)")
    parser.add_argument("--runs", type=int, default=RUNS, help="nbclient runs per notebook")
    parser.add_argument("--limit", type=float, default=LIMIT_S, help="outer wall-clock limit per run, seconds")
    parser.add_argument("--no-papermill", dest="papermill", action="store_false", help="skip the papermill run")
    parser.add_argument("--execute", nargs=2, metavar=("IN", "OUT"), help="execute one notebook with nbclient, no stress")
    return parser


if __name__ == "__main__":
    sys.exit(main())
