"""Torch's intra-op threads around small work: per-image transforms and DataLoader batches.

Many small operations (the per-image augmentations of a DataLoader without worker processes, the batched
view augmentation of small images) run many times faster on one thread than on several, above all on a
busy machine where waiting for a second thread dominates. The trainer and the evaluation both draw their
batches through :func:`iterate_loader`.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import torch

__all__ = ["iterate_loader", "limit_threads"]


@contextlib.contextmanager
def limit_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with torch limited to ``n`` intra-op threads, then restore the previous number.

    Parameters
    ----------
    n : int or None
        Threads inside the block; ``None`` leaves the number unchanged.

    Yields
    ------
    None

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with limit_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    threads = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def iterate_loader(loader: torch.utils.data.DataLoader) -> Iterator[Any]:
    """Iterate ``loader``, producing each batch on one thread when the loader has no worker processes.

    Only the loading runs under ``limit_threads(1)``; the caller's computation between batches keeps its
    threads.

    Parameters
    ----------
    loader : torch.utils.data.DataLoader
        The loader to draw from.

    Yields
    ------
    Any
        The loader's batches, in order.
    """
    iterator = iter(loader)
    while True:
        with limit_threads(1 if loader.num_workers == 0 else None):
            batch = next(iterator, None)
        if batch is None:
            return
        yield batch
