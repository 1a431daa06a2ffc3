"""Fixtures of the notebook-layer tests: figures drawn off-screen (Agg) and closed after each test, and
``scenes``, a writer of small in-memory datasets with renderings and domains."""
from typing import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gcalib.training.data import ImageDataset  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _scenes(n: int = 12, k: int = 3, size: int = 8, seed: int = 0) -> ImageDataset:
    """An in-memory dataset of n samples with k distinct renderings each, labels ``i % 5`` and two domains
    (``i % 2``: "solid", "outline")."""
    gen = torch.Generator().manual_seed(seed)
    renderings = torch.randint(0, 256, (n, k, 3, size, size), generator=gen, dtype=torch.uint8)
    return ImageDataset(torch.arange(n) % 5, images=renderings[:, 0].clone(), renderings=renderings,
                        domains=torch.arange(n) % 2, domain_names=["solid", "outline"],
                        classes=[str(c) for c in range(5)], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture
def scenes() -> Callable[..., ImageDataset]:
    """``scenes(n=12, k=3, size=8, seed=0)``: a seeded in-memory dataset with renderings and two domains."""
    return _scenes
