"""Forward + backward time of every loss preset beside a plain NT-Xent written here.

Usage: ``python -m benchmarks.bench_losses [--sizes 512,1024,2048] [--dim 128] [--repeats 5]``.
Prints a table of milliseconds and ratios to NT-Xent; writes ``benchmarks/results/losses.json``.
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from gcalib.losses import LOSSES, make_loss

from .timing import median_seconds, write_json


def nt_xent(h1: torch.Tensor, h2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent, the usual way: cross-entropy over cosine logits with the self-pair masked."""
    z = F.normalize(torch.cat([h1, h2]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    batch = h1.shape[0]
    labels = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(logits, labels)


def time_loss(loss_fn, n: int, dim: int, repeats: int, device: str) -> float:
    gen = torch.Generator(device=device).manual_seed(0)
    views = [torch.randn(n // 2, dim, device=device, generator=gen, requires_grad=True) for _ in range(2)]

    def step() -> None:
        loss_fn(*views).backward()

    return median_seconds(step, repeats, device=device)


def run(sizes: list[int], dim: int, repeats: int, device: str, names: tuple[str, ...] = LOSSES) -> dict:
    rows = []
    for n in sizes:
        baseline = time_loss(lambda a, b: nt_xent(a, b, 0.5), n, dim, repeats, device)
        rows.append({"n": n, "loss": "nt_xent (reference)", "ms": baseline * 1e3, "ratio": 1.0})
        for name in names:
            seconds = time_loss(make_loss(name), n, dim, repeats, device)
            rows.append({"n": n, "loss": name, "ms": seconds * 1e3, "ratio": seconds / baseline})
    return {"dim": dim, "device": device, "repeats": repeats, "rows": rows}


def print_table(result: dict) -> None:
    print(f"{'n':>6}  {'loss':<22} {'ms':>10} {'x NT-Xent':>10}")
    for row in result["rows"]:
        print(f"{row['n']:>6}  {row['loss']:<22} {row['ms']:>10.1f} {row['ratio']:>10.2f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024,2048", help="comma-separated batch rows n = 2B")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    result = run([int(s) for s in args.sizes.split(",")], args.dim, args.repeats, args.device)
    print_table(result)
    print(f"wrote {write_json('losses', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
