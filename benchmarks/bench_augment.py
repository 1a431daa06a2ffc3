"""Augmentation throughput: batched views (gcalib.training.batch_augment) vs the per-image torchvision pipeline.

Usage: ``python -m benchmarks.bench_augment [--quick] [--batch 512] [--repeats 5] [--device cpu]``.
Data: random uint8 CIFAR-sized images (B, 3, 32, 32); two views per image in the blocked layout.

- per-image: ``gcalib.training.augment.make_view_transform`` called on every image and view in a Python loop,
  then stacked, as one DataLoader worker does (single-threaded: torch runs workers with 1 thread);
- batched: ``BatchAugment.multi_view(images, 2)``; on the CPU timed with 1 thread (the same CPU
  budget as one worker: ``ratio_1_thread``) and with all threads, compared with that many workers
  assumed to scale perfectly (``ratio_vs_all_workers``); on an accelerator compared with one worker
  per CPU core.

Medians over repeats; the per-image loop is timed on the first ``--per-image`` images of the batch
(its cost is linear in the images). The load average before and after is recorded: on a machine
busy with other processes multi-threaded torch ops stall on their thread barriers, so the
all-threads figures are only meaningful when the load stays below the core count.
Prints a table; writes ``benchmarks/results/augment.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import torch

from gcalib.training.augment import make_view_transform
from gcalib.training.batch_augment import BatchAugment

from .timing import median_seconds, write_json

CASES = (("simclr", False), ("simclr", True), ("large_erase", False), ("strong_crop", False),
         ("brightness", False))
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
TARGET_RATIO = 5.0


def per_image_views(transform, images: torch.Tensor, n_views: int) -> torch.Tensor:
    """Blocked (V·B, C, S, S) views made one image at a time."""
    views = [[transform(image) for image in images] for _ in range(n_views)]
    return torch.stack([view for block in views for view in block])


def run(batch: int, per_image: int, repeats: int, n_views: int, image_size: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8,
                           generator=generator)
    on_device = images.to(device)
    threads = torch.get_num_threads()
    workers = threads if device == "cpu" else os.cpu_count() or 1  # the CPU budget of the comparison
    load_before = os.getloadavg()[0]
    rows = []
    for name, blur in CASES:
        transform = make_view_transform(name, image_size, MEAN, STD, blur=blur)
        batched = BatchAugment(name, image_size, MEAN, STD, blur=blur)
        row = {"preset": name, "blur": blur}
        torch.set_num_threads(1)
        try:
            loop_s = median_seconds(lambda: per_image_views(transform, images[:per_image], n_views),
                                    repeats)
            row["per_image_images_per_s"] = n_views * per_image / loop_s
            if device == "cpu":
                one_thread_s = median_seconds(lambda: batched.multi_view(on_device, n_views), repeats)
                row["batched_1_thread_images_per_s"] = n_views * batch / one_thread_s
                row["ratio_1_thread"] = row["batched_1_thread_images_per_s"] / row["per_image_images_per_s"]
        finally:
            torch.set_num_threads(threads)
        batched_s = median_seconds(lambda: batched.multi_view(on_device, n_views), repeats, device=device)
        row["batched_images_per_s"] = n_views * batch / batched_s
        row["ratio_vs_all_workers"] = row["batched_images_per_s"] / (row["per_image_images_per_s"] * workers)
        rows.append(row)
    return {"batch": batch, "per_image_images_timed": per_image, "n_views": n_views,
            "image_size": image_size, "device": device, "repeats": repeats, "threads": threads,
            "workers": workers, "cpu_count": os.cpu_count(),
            "load_average": [load_before, os.getloadavg()[0]], "target_ratio": TARGET_RATIO, "rows": rows}


def print_table(result: dict) -> None:
    threads, workers, cpu = result["threads"], result["workers"], result["device"] == "cpu"
    print(f"augmentation throughput, images/s ({result['n_views']} views of {result['batch']} "
          f"{result['image_size']}x{result['image_size']} uint8 images, batched on {result['device']}, "
          f"medians of {result['repeats']})")
    header = f"{'preset':<20} {'per-image':>10}"
    if cpu:
        header += f" {'batched 1t':>11} {'x (1t vs 1 worker)':>19}"
    header += f" {f'batched {threads}t':>11} {f'x (vs {workers} workers)':>19}"
    print(header)
    for row in result["rows"]:
        label = row["preset"] + (" +blur" if row["blur"] else "")
        line = f"{label:<20} {row['per_image_images_per_s']:>10.0f}"
        if cpu:
            line += f" {row['batched_1_thread_images_per_s']:>11.0f} {row['ratio_1_thread']:>19.1f}"
        line += f" {row['batched_images_per_s']:>11.0f} {row['ratio_vs_all_workers']:>19.1f}"
        print(line)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a shorter per-image loop")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--per-image", type=int, default=None,
                        help="images timed in the per-image loop (default: the batch; 128 with --quick)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per figure (default 5; 3 with --quick)")
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="device of the batched version (cpu, cuda, ...)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    per_image = args.per_image or (min(128, args.batch) if args.quick else args.batch)
    if not 1 <= per_image <= args.batch:
        parser.error(f"--per-image must be in 1..{args.batch}, got {per_image}")
    result = run(args.batch, per_image, repeats, args.views, args.image_size, args.device)
    print_table(result)
    key = "ratio_1_thread" if args.device == "cpu" else "ratio_vs_all_workers"
    worst = min(row[key] for row in result["rows"])
    print(f"smallest ratio {key} {worst:.1f}x (target >= {TARGET_RATIO:g}x)")
    if max(result["load_average"]) > (result["cpu_count"] or 1):
        print(f"note: load average {result['load_average'][0]:.1f} -> {result['load_average'][1]:.1f} on "
              f"{result['cpu_count']} cores: the {result['threads']}-thread figures are depressed by other "
              "processes")
    print(f"wrote {write_json('augment', result)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
