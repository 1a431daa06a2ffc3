"""Peak memory of a loss's backward pass for n_iter = 10 vs 100 (fused backward, and the unrolled reference).

Usage: ``python -m benchmarks.bench_memory [--n 4096] [--unroll-n 1024] [--loss gca_ince] [--quick]``.

How it is measured. CUDA: ``torch.cuda.max_memory_allocated`` during ``backward()`` minus the memory
allocated before the forward pass. CPU: each configuration runs in a fresh subprocess with
``MALLOC_MMAP_THRESHOLD_=65536`` (so large tensors are mapped on allocation and unmapped when freed, and
the resident set follows live tensors); the peak resident set size is reset (``/proc/self/clear_refs``)
after the forward pass, and ``VmHWM`` after ``backward()`` is the peak during the backward. Figures are
that peak minus the resident set before the forward pass (everything the loss held at the peak of its
backward), and the resident set kept from the end of the forward pass to the backward (saved tensors).
Writes ``benchmarks/results/memory.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from .timing import set_threads, write_json

MIB = 2 ** 20


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _views(n: int, dim: int, device: str) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)
    return [torch.randn(n // 2, dim, device=device, generator=gen, requires_grad=True) for _ in range(2)]


def measure(loss: str, n: int, n_iter: int, grad: str, dim: int, device: str) -> dict:
    """Memory of one forward + backward, in MiB (see module docstring), in this process."""
    from gcalib import make_loss

    loss_fn = make_loss(loss, n_iter=n_iter, grad=grad)
    views = _views(n, dim, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        value = loss_fn(*views)
        torch.cuda.synchronize()
        kept = torch.cuda.memory_allocated() - before
        torch.cuda.reset_peak_memory_stats()
        value.backward()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        before = _status_kib("VmRSS") * 1024
        value = loss_fn(*views)
        kept = _status_kib("VmRSS") * 1024 - before
        Path("/proc/self/clear_refs").write_text("5")
        value.backward()
        peak = _status_kib("VmHWM") * 1024 - before
    return {"loss": loss, "n": n, "n_iter": n_iter, "grad": grad, "kept_after_forward_mib": kept / MIB,
            "backward_peak_mib": peak / MIB}


def _in_subprocess(config: dict) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    command = [sys.executable, "-m", "benchmarks.bench_memory", "--child", json.dumps(config)]
    root = Path(__file__).resolve().parent.parent
    output = subprocess.run(command, env=env, cwd=root, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run(loss: str, n: int, unroll_n: int, dim: int, device: str, threads: int) -> dict:
    rows = []
    for grad, size in (("fused", n), ("unroll", unroll_n)):
        for n_iter in (10, 100):
            config = dict(loss=loss, n=size, n_iter=n_iter, grad=grad, dim=dim, device=device, threads=threads)
            rows.append(measure(loss, size, n_iter, grad, dim, device) if device.startswith("cuda") else _in_subprocess(config))
            row = rows[-1]
            print(f"{row['loss']:<10} grad={row['grad']:<7} n={row['n']:>5} n_iter={row['n_iter']:>4}  "
                  f"kept after forward {row['kept_after_forward_mib']:>8.1f} MiB   backward peak {row['backward_peak_mib']:>8.1f} MiB", flush=True)
    ratios = {}
    for grad in ("fused", "unroll"):
        peaks = {row["n_iter"]: row["backward_peak_mib"] for row in rows if row["grad"] == grad}
        ratios[grad] = peaks[100] / peaks[10]
        print(f"{grad}: backward peak n_iter=100 / n_iter=10 = {ratios[grad]:.2f}")
    return {"device": device, "method": "cuda max_memory_allocated" if device.startswith("cuda") else "VmHWM after clear_refs, fresh subprocess",
            "rows": rows, "peak_ratio_100_vs_10": ratios}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="gca_ince")
    parser.add_argument("--n", type=int, default=None, help="rows for the fused backward (default 4096, quick 2048)")
    parser.add_argument("--unroll-n", type=int, default=None, help="rows for the unrolled reference (default 1024, quick 512)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        config = json.loads(args.child)
        set_threads(config["threads"])
        print(json.dumps(measure(config["loss"], config["n"], config["n_iter"], config["grad"], config["dim"], config["device"])))
        return {}
    threads = set_threads(args.threads)
    n = args.n or (2048 if args.quick else 4096)
    unroll_n = args.unroll_n or (512 if args.quick else 1024)
    result = run(args.loss, n, unroll_n, args.dim, args.device, threads)
    print(f"wrote {write_json('memory', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
