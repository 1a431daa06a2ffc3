"""``python -m benchmarks [--quick] [--threads N] [--device D]``: run every benchmark.

Losses (fwd+bwd vs NT-Xent, the unrolled and dense reference formulations), backward memory for
n_iter 10 vs 100, one training step GCA-UOT vs InfoNCE, per-rank memory of the replicated vs row-sharded
plan under 1, 2, 4 gloo processes, and the augmentation benchmark when
``benchmarks/bench_augment.py`` exists. Results go to ``benchmarks/results/*.json``.
"""
import argparse
import importlib.util
import sys

from . import bench_losses, bench_memory, bench_sharded, bench_train_step

parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds (a few minutes on 2 CPU cores)")
parser.add_argument("--threads", type=int, default=None, help="intra-op threads for the timed runs (default: torch's)")
parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
args = parser.parse_args(sys.argv[1:])
common = ["--quick"] * args.quick + (["--device", args.device] if args.device else [])
threads = ["--threads", str(args.threads)] if args.threads else []
for module in (bench_losses, bench_memory, bench_train_step, bench_sharded):
    print(f"\n### {module.__name__}", flush=True)
    module.main(common + threads)
if importlib.util.find_spec("benchmarks.bench_augment") is not None:
    from . import bench_augment

    print("\n### benchmarks.bench_augment", flush=True)
    bench_augment.main(common)
