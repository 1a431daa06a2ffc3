"""Per-rank peak memory and time of a loss's forward + backward over the global batch: the replicated plan
(every process solves the n × n plan) against the row-sharded plan (``shard_plan=True``, n/W rows each), for
W = 1, 2, 4 processes.

Usage: ``python -m benchmarks.bench_sharded [--n 4096 8192] [--worlds 1 2 4] [--loss gca_ince] [--quick]``.

How it is measured. Each configuration is a fresh group of W processes (``torch.multiprocessing.spawn``; gloo
on the CPU, nccl with one GPU per process on CUDA) holding n/(2W) samples of two views each (D = 128). A
small warm-up call first initialises the backend's buffers. CPU: the processes start with
``MALLOC_MMAP_THRESHOLD_=65536`` (large tensors are mapped on allocation and unmapped when freed, so the
resident set follows live tensors); after a barrier each rank resets its peak resident set
(``/proc/self/clear_refs``), runs forward + backward, and reports ``VmHWM`` minus its resident set before the
forward: everything the loss held at its peak. CUDA: ``max_memory_allocated`` minus the memory allocated
before the forward. Times are wall seconds of forward + backward (and, on the CPU, the process CPU seconds,
the steadier measure on a shared machine); the figures are maxima over ranks. Writes
``benchmarks/results/sharded.json`` (with the load average).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .bench_memory import MIB, _status_kib
from .timing import set_threads, write_json

MODES = ("replicated", "sharded")


def _views(samples: int, dim: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(samples, dim, generator=gen).to(device).requires_grad_() for _ in range(2)]


def _forward_backward(loss_fn, views: list[torch.Tensor]) -> None:
    loss_fn(*views).backward()


def measure(config: dict, rank: int, world: int, device: torch.device) -> dict:
    """This rank's memory growth (MiB) and seconds of one forward + backward (see module docstring)."""
    from gcalib import make_loss

    loss_fn = make_loss(config["loss"], n_iter=config["n_iter"], gather_distributed=True,
                        shard_plan=config["mode"] == "sharded")
    _forward_backward(loss_fn, _views(8, config["dim"], rank, device))
    views = _views(config["n"] // (2 * world), config["dim"], rank, device)
    cuda = device.type == "cuda"
    dist.barrier()
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = _status_kib("VmRSS") * 1024
        Path("/proc/self/clear_refs").write_text("5")
    start, start_cpu = time.perf_counter(), time.process_time()
    _forward_backward(loss_fn, views)
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    peak = (torch.cuda.max_memory_allocated() if cuda else _status_kib("VmHWM") * 1024) - before
    return {"peak_mib": peak / MIB, "seconds": seconds, "cpu_seconds": None if cuda else cpu_seconds}


def _worker(rank: int, world: int, config: dict, init_file: str, out_dir: str) -> None:
    set_threads(config["threads"])
    cuda = config["device"].startswith("cuda")
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world, timeout=timedelta(minutes=10))
    try:
        result = measure(config, rank, world, device)
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))


@contextmanager
def _environment(**variables: str):
    """Set environment variables for the processes started inside the block."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_group(config: dict, world: int) -> dict:
    """One configuration in a fresh group of ``world`` processes: maxima over ranks."""
    with tempfile.TemporaryDirectory() as tmp, _environment(MALLOC_MMAP_THRESHOLD_="65536"):
        mp.spawn(_worker, args=(world, config, str(Path(tmp) / "init"), tmp), nprocs=world, join=True)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(world)]
    row = {key: max(r[key] for r in ranks) if ranks[0][key] is not None else None for key in ranks[0]}
    return {**{k: config[k] for k in ("loss", "n", "mode")}, "world": world, **row,
            "load_average_1min": os.getloadavg()[0]}


def run(loss: str, sizes: list[int], worlds: list[int], n_iter: int, dim: int, device: str, threads: int) -> dict:
    rows = []
    if device.startswith("cuda"):
        worlds = [w for w in worlds if w <= torch.cuda.device_count()]
    for n in sizes:
        for world in worlds:
            for mode in MODES:
                config = dict(loss=loss, n=n, mode=mode, n_iter=n_iter, dim=dim, device=device, threads=threads)
                rows.append(run_group(config, world))
                row = rows[-1]
                cpu = f"  cpu {row['cpu_seconds']:6.2f} s" if row["cpu_seconds"] is not None else ""
                print(f"{loss:<9} n={n:>6} W={world} {mode:<10}  peak growth {row['peak_mib']:8.1f} MiB   "
                      f"fwd+bwd {row['seconds']:6.2f} s{cpu}   load {row['load_average_1min']:.1f}", flush=True)
    ratios = {}
    for n in sizes:
        replicated = {r["world"]: r["peak_mib"] for r in rows if r["n"] == n and r["mode"] == "replicated"}
        for r in rows:
            if r["n"] == n and r["mode"] == "sharded":
                ratios[f"n={n} W={r['world']}"] = r["peak_mib"] / replicated[r["world"]]
    for key, ratio in ratios.items():
        print(f"{key}: sharded / replicated peak growth per rank = {ratio:.2f}")
    method = ("cuda max_memory_allocated" if device.startswith("cuda")
              else "VmHWM after clear_refs, fresh gloo process group per configuration")
    return {"device": device, "method": method, "n_iter": n_iter, "dim": dim, "rows": rows,
            "peak_ratio_sharded_vs_replicated": ratios}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="gca_ince")
    parser.add_argument("--n", type=int, nargs="+", default=None, help="global rows n = 2 x global batch "
                        "(default 4096 8192, quick 2048)")
    parser.add_argument("--worlds", type=int, nargs="+", default=None, help="process counts (default 1 2 4, quick 1 2)")
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, one GPU per process)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes = args.n or ([2048] if args.quick else [4096, 8192])
    worlds = args.worlds or ([1, 2] if args.quick else [1, 2, 4])
    bad = [n for n in sizes for w in worlds if n % (2 * w)]
    if bad:
        parser.error(f"--n must be divisible by 2 x every world size, got {bad}")
    result = run(args.loss, sizes, worlds, args.n_iter, args.dim, args.device, set_threads(args.threads))
    print(f"wrote {write_json('sharded', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
