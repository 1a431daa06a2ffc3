"""Forward + backward time of every loss preset beside NT-Xent, and of the GCA losses computed two slower
ways: autograd through log-domain iterations (``grad="unroll"``) and a dense kernel-domain reference.

Usage: ``python -m benchmarks.bench_losses [--sizes 512,1024,2048,4096] [--dense-sizes 512,1024]
[--unroll-sizes 512,1024,2048] [--dim 128] [--repeats 7] [--threads N] [--device cpu|cuda] [--quick]``.
Every timing is interleaved with NT-Xent in the same rounds; ``ratio`` is the median over rounds of
(time / NT-Xent time), for wall time and, on the CPU, process CPU time (see ``timing.interleaved``);
``x fused`` is the slowdown of a reference formulation against the fused loss (wall medians).
Writes ``benchmarks/results/losses.json``.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from gcalib import LOSSES, LossSpec, make_loss
from gcalib.losses.spec import PRESETS
from gcalib.ot.solver import relaxation_factor

from .timing import interleaved, set_threads, write_json

DENSE_PRESETS = ("gca_ince", "gca_rince", "gca_uot", "iot")
UNROLL_PRESETS = ("gca_ince", "gca_uot")


def nt_xent(h1: torch.Tensor, h2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent, the usual way: cross-entropy over cosine logits with the self-pair masked."""
    z = F.normalize(torch.cat([h1, h2]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    batch = h1.shape[0]
    labels = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(logits, labels)


def dense_reference(h1: torch.Tensor, h2: torch.Tensor, spec: LossSpec) -> torch.Tensor:
    """The same loss as ``make_loss`` (positive-pair target, two views) computed as the paper's code does:
    kernel-domain iterations ``u = (K v)^{−κ_a}``, ``v = (Kᵀ u)^{−κ_b}`` whose sums are read off dense
    ``K·diag(v)`` and ``diag(u)·K`` products (n³ work each), autograd through all of them."""
    z = F.normalize(torch.cat([h1, h2]), dim=1)
    n, batch = z.shape[0], h1.shape[0]
    off_diagonal = 1.0 - torch.eye(n, device=z.device, dtype=z.dtype)
    kernel = torch.exp((z @ z.T - 1.0) / spec.eps) * off_diagonal
    fa, fb = relaxation_factor(spec.reg_a, spec.eps), relaxation_factor(spec.reg_b, spec.eps)
    u = torch.ones(n, device=z.device, dtype=z.dtype)
    v = torch.ones_like(u)
    for _ in range(spec.n_iter):
        u = (kernel @ torch.diag(v)).sum(1).pow(-fa)
        v = (torch.diag(u) @ kernel).sum(0).pow(-fb)
    weights = kernel @ torch.diag(v)
    if spec.scored == "sinkhorn":
        weights = torch.diag(u) @ weights
    rows = torch.arange(n, device=z.device)
    partner = (rows + batch) % n
    positive = weights[rows, partner]
    total = weights.sum(1)
    log_plan_positive = positive.log() - (total.log() if spec.scored == "projected" else 0.0)
    value = -spec.r1 * log_plan_positive.mean()
    if spec.uni_weight > 0:
        log_plan = (weights + torch.eye(n, device=z.device, dtype=z.dtype)).log()
        if spec.scored == "projected":
            log_plan = log_plan - total.log().unsqueeze(1)
        value = value - spec.uni_weight * ((log_plan * off_diagonal).sum(1) / (n - 1)).mean()
    if spec.r2 > 0:
        value = value + spec.r2 * ((spec.lam * total).pow(spec.q) - positive.pow(spec.q)).mean() / spec.q
    return value


def _views(n: int, dim: int, device: str) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)
    return [torch.randn(n // 2, dim, device=device, generator=gen, requires_grad=True) for _ in range(2)]


def _step(loss_fn, views):
    def run() -> None:
        for view in views:
            view.grad = None
        loss_fn(*views).backward()
    return run


def check_dense_reference(dim: int, device: str) -> float:
    """Largest relative difference between the dense reference and gcalib's loss values (ε = 0.5, n = 256)."""
    views = [view.detach() for view in _views(256, dim, device)]
    worst = 0.0
    for name in DENSE_PRESETS:
        ours = float(make_loss(name)(*views))
        dense = float(dense_reference(*views, PRESETS[name]))
        worst = max(worst, abs(ours - dense) / abs(ours))
    return worst


def run(sizes: list[int], dense_sizes: list[int], unroll_sizes: list[int], dim: int, repeats: int, device: str) -> dict:
    rows = []
    for n in sizes:
        views = _views(n, dim, device)
        runs = {"nt_xent": _step(lambda a, b: nt_xent(a, b, 0.5), views)}
        for name in LOSSES:
            runs[name] = _step(make_loss(name), views)
        if n in unroll_sizes:
            for name in UNROLL_PRESETS:
                runs[f"{name} [unroll]"] = _step(make_loss(name, grad="unroll"), views)
        if n in dense_sizes:
            for name in DENSE_PRESETS:
                runs[f"{name} [dense reference]"] = _step(lambda a, b, spec=PRESETS[name]: dense_reference(a, b, spec), views)
        timings = interleaved(runs, "nt_xent", repeats, device=device)
        for name, timing in timings.items():
            row = {"n": n, "loss": name, **timing}
            base = name.split(" [")[0]
            if name != base:
                row["slowdown_vs_fused"] = timing["ms"] / timings[base]["ms"]
            rows.append(row)
        print_table({"rows": [r for r in rows if r["n"] == n]}, header=n == sizes[0])
    return {"dim": dim, "device": device, "repeats": repeats, "rows": rows}


def print_table(result: dict, header: bool = True) -> None:
    cpu = "cpu_ms" in result["rows"][0]
    if header:
        extra = f" {'cpu ms':>9} {'x (cpu)':>8}" if cpu else ""
        print(f"{'n':>6}  {'loss':<30} {'ms':>9} {'x NT-Xent':>10}{extra} {'x fused':>8}")
    for row in result["rows"]:
        extra = f" {row['cpu_ms']:>9.1f} {row['cpu_ratio']:>8.2f}" if cpu else ""
        slowdown = f" {row['slowdown_vs_fused']:>8.2f}" if "slowdown_vs_fused" in row else ""
        print(f"{row['n']:>6}  {row['loss']:<30} {row['ms']:>9.1f} {row['ratio']:>10.2f}{extra}{slowdown}", flush=True)


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="comma-separated batch rows n = 2B (default 512,1024,2048,4096)")
    parser.add_argument("--dense-sizes", default=None, help="sizes that also time the dense reference (default 512,1024)")
    parser.add_argument("--unroll-sizes", default=None, help="sizes that also time grad='unroll' (default 512,1024,2048)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="n in {512, 1024}, dense reference at 512 only, 3 rounds")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    quick = args.quick
    sizes = _sizes(args.sizes or ("512,1024" if quick else "512,1024,2048,4096"))
    dense_sizes = _sizes(args.dense_sizes or ("512" if quick else "512,1024"))
    unroll_sizes = _sizes(args.unroll_sizes or ("512,1024" if quick else "512,1024,2048"))
    repeats = args.repeats or (3 if quick else 7)
    agreement = check_dense_reference(args.dim, args.device)
    print(f"dense reference vs gcalib loss values (n=256, eps=0.5): max relative difference {agreement:.2e}")
    result = run(sizes, dense_sizes, unroll_sizes, args.dim, repeats, args.device)
    result["dense_reference_max_relative_difference"] = agreement
    print(f"wrote {write_json('losses', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
