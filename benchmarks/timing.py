"""Shared helpers: interleaved timing with same-run ratios, thread settings, and JSON output."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _synced(run: Callable[[], None], device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, CUDA-synchronised."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - start_cpu


def median_seconds(run: Callable[[], None], repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` calls (CUDA-synchronised)."""
    for _ in range(warmup):
        _synced(run, device)
    return statistics.median(_synced(run, device)[0] for _ in range(repeats))


def interleaved(runs: dict[str, Callable[[], None]], baseline: str, repeats: int, warmup: int = 1,
                device: str = "cpu") -> dict[str, dict]:
    """Time every callable once per round, ``repeats`` rounds after ``warmup`` rounds.

    Interleaving exposes all candidates to the same load drift. Returns, per name, the median wall
    time ``ms`` and ``ratio``: the median over rounds of (time / baseline's time in the same round);
    on the CPU also ``cpu_ms`` and ``cpu_ratio``, the same for the process CPU time, which on a
    machine shared with other work is the steadier measure of the work done (with one intra-op
    thread it excludes time spent waiting for a core).
    """
    for _ in range(warmup):
        for run in runs.values():
            _synced(run, device)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(_synced(run, device))
    base = samples[baseline]
    result = {}
    for name, times in samples.items():
        row = {"ms": statistics.median(t for t, _ in times) * 1e3,
               "ratio": statistics.median(t / b for (t, _), (b, _) in zip(times, base))}
        if not device.startswith("cuda"):
            row["cpu_ms"] = statistics.median(c for _, c in times) * 1e3
            row["cpu_ratio"] = statistics.median(c / b for (_, c), (_, b) in zip(times, base))
        result[name] = row
    return result


def set_threads(threads: Optional[int]) -> int:
    """Use ``threads`` intra-op threads (``None``: keep torch's default); returns the count in use."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = os.getloadavg()[0]
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path
