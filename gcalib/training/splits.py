"""The fixed train/test split of the embedded datasets (``digits``, ``digits_domains``, ``clutter_digits``)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["SPLIT_SEED", "TEST_FRACTION", "stratified_split"]

TEST_FRACTION = 0.25
SPLIT_SEED = 0


def stratified_split(strata: Sequence[int], test_fraction: float = TEST_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic stratified split: within each stratum s, ``round(n_s · test_fraction)`` members go to test.

    The test members of each stratum are the first of a permutation drawn from ``seed`` (one generator
    for all strata, visited in sorted order), so equal inputs always give equal splits.

    Parameters
    ----------
    strata : sequence of int
        The stratum of every sample (e.g. its class, or class × domain).
    test_fraction : float, default 0.25
        Fraction of each stratum that goes to test, in (0, 1).
    seed : int, default 0
        Seed of the permutations.

    Returns
    -------
    train : torch.Tensor
        Sorted indices of the train samples (int64).
    test : torch.Tensor
        Sorted indices of the test samples (int64).

    Raises
    ------
    ValueError
        When ``test_fraction`` is not in (0, 1).

    Examples
    --------
    >>> train, test = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], test_fraction=0.25)
    >>> len(train), len(test)
    (6, 2)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(strata), dtype=bool)
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        n_test = int(np.floor(len(members) * test_fraction + 0.5))
        is_test[rng.permutation(members)[:n_test]] = True
    return (torch.from_numpy(np.flatnonzero(~is_test)).long(),
            torch.from_numpy(np.flatnonzero(is_test)).long())
