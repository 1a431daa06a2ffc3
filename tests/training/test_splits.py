"""The fixed stratified split of the embedded datasets."""
import numpy as np
import pytest
import torch

from gcalib.training.splits import stratified_split


def test_stratified_split_properties():
    strata = np.repeat(np.arange(3), [4, 9, 1])
    train, test = stratified_split(strata, 0.25, seed=3)
    assert sorted(train.tolist() + test.tolist()) == list(range(14))
    assert np.bincount(strata[test.numpy()], minlength=3).tolist() == [1, 2, 0]
    again = stratified_split(strata, 0.25, seed=3)
    assert torch.equal(again[1], test)
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(strata, 1.0)
