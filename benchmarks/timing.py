"""Shared timing helpers: medians of repeated runs after warm-up, and JSON output."""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def median_seconds(run: Callable[[], None], repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` calls (CUDA-synchronised)."""
    def synced() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(warmup):
        synced()
    return statistics.median(synced() for _ in range(repeats))


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path
