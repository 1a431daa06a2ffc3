"""One pretraining step (encoder + projector forward, loss, backward, SGD step) with each loss.

Usage: ``python -m benchmarks.bench_train_step [--arch small_cnn] [--batch 256] [--losses infonce,gca_uot]
[--repeats 7] [--threads N] [--device cpu|cuda] [--quick]``. Two views of ``batch`` random 32×32 images
(so the loss sees n = 2·batch rows); steps of the losses are interleaved and ``ratio`` is the median
over rounds of (step time / InfoNCE step time). Needs ``gcalib.training.models``. Writes
``benchmarks/results/train_step.json``.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys

import torch

from gcalib import make_loss

from .timing import interleaved, set_threads, write_json


def run(arch: str, batch: int, losses: list[str], repeats: int, device: str, image_size: int = 32) -> dict:
    from gcalib import Projector, make_encoder

    torch.manual_seed(0)
    encoder = make_encoder(arch).to(device)
    model = torch.nn.Sequential(encoder, Projector(encoder.feature_dim)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    images = torch.randn(2 * batch, 3, image_size, image_size, device=device)

    def step(loss_fn):
        def run_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            h = model(images)
            loss_fn(*h.float().chunk(2)).backward()
            optimizer.step()
        return run_step

    runs = {name: step(make_loss(name)) for name in losses}
    timings = interleaved(runs, losses[0], repeats, warmup=2, device=device)
    rows = [{"loss": name, **timing} for name, timing in timings.items()]
    for row in rows:
        cpu = f"   cpu {row['cpu_ms']:>9.1f} ms  x {losses[0]}: {row['cpu_ratio']:.3f}" if "cpu_ms" in row else ""
        print(f"{arch} batch {batch}x2  {row['loss']:<10} {row['ms']:>9.1f} ms/step  x {losses[0]}: {row['ratio']:.3f}{cpu}", flush=True)
    return {"arch": arch, "batch": batch, "views": 2, "device": device, "repeats": repeats, "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--losses", default="infonce,gca_uot", help="comma-separated; the first is the baseline")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("gcalib.training.models") is None:
        print("skipped: gcalib.training.models is not available")
        return {}
    set_threads(args.threads)
    result = run(args.arch, args.batch, args.losses.split(","), args.repeats or (3 if args.quick else 7), args.device)
    print(f"wrote {write_json('train_step', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
