"""``python -m benchmarks``: run every benchmark with its defaults."""
from . import bench_losses

bench_losses.main([])
