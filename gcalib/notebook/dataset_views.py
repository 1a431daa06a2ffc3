"""What the encoder sees of an in-memory dataset: the views of a batch drawn exactly as the trainer draws
them (augmented images or distinct renderings, broken positive pairs included), normalised views back to
pictures, and the first samples of each domain. Their figures are in :mod:`gcalib.notebook.figures`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..training.augment import AUGMENTATIONS
from ..training.batch_augment import BatchAugment
from ..training.config import VIEWS
from ..training.data import draw_view_sources
from ..validation import check_choice, check_int, check_real

__all__ = ["denormalise", "ViewPairs", "draw_views", "domain_examples"]


def _in_memory(dataset) -> None:
    """Raise unless ``dataset`` is an in-memory :class:`gcalib.training.data.ImageDataset` (images and labels)."""
    if getattr(dataset, "images", None) is None or not hasattr(dataset, "labels"):
        raise TypeError(f"dataset must be an in-memory gcalib.training.data.ImageDataset, got {type(dataset).__name__}")


def _index(dataset, index) -> torch.Tensor:
    """``index`` as a non-empty 1-d long tensor of sample ids of ``dataset``."""
    index = torch.as_tensor(index, dtype=torch.long).flatten()
    if len(index) == 0 or int(index.min()) < 0 or int(index.max()) >= len(dataset):
        raise ValueError(f"index must hold at least one sample id in [0, {len(dataset)}), got {index.tolist()[:8]}")
    return index


def denormalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised images back to pictures: ``x·std + mean`` per channel, clipped to [0, 1] for display.

    Normalisation and rounding leave values a hair outside [0, 1]; erased patches come back as the mean.

    Parameters
    ----------
    images : torch.Tensor
        Float (..., C, H, W) normalised images.
    mean, std : sequence of float
        One normalisation constant per channel; ``std`` positive.

    Returns
    -------
    torch.Tensor
        The pictures, same shape, values in [0, 1].

    Raises
    ------
    ValueError
        If ``images`` is not a float tensor with a channel axis, or ``mean``/``std`` do not hold one value
        per channel, or a ``std`` is not positive.
    """
    if not isinstance(images, torch.Tensor) or images.ndim < 3 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (..., C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    channels = images.shape[-3]
    mean_t = torch.as_tensor([float(m) for m in mean], dtype=images.dtype, device=images.device)
    std_t = torch.as_tensor([float(s) for s in std], dtype=images.dtype, device=images.device)
    if mean_t.shape != (channels,) or std_t.shape != (channels,):
        raise ValueError(f"mean and std need one value per channel ({channels}), got {len(mean_t)} and {len(std_t)}")
    if not bool((std_t > 0).all()):
        raise ValueError(f"std must be positive per channel, got {std_t.tolist()}")
    return (images * std_t.view(-1, 1, 1) + mean_t.view(-1, 1, 1)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class ViewPairs:
    """Output of :func:`draw_views` for V views of B samples.

    Parameters
    ----------
    views : torch.Tensor
        (V·B, C, S, S) normalised views, blocked (row v·B + b is view v of sample b), as the encoder sees them.
    pictures : torch.Tensor
        (V, B, C, S, S) the same in [0, 1] for display.
    samples : torch.Tensor
        (V, B) the dataset index each view shows (``samples[0]`` is the batch).
    renderings : torch.Tensor or None
        (V, B) the rendering each view starts from; None for ``views="augment"``.
    """

    views: torch.Tensor
    pictures: torch.Tensor
    samples: torch.Tensor
    renderings: Optional[torch.Tensor]

    @property
    def corrupted(self) -> torch.Tensor:
        """(B,) bool: some view of the sample shows another sample (a broken positive pair)."""
        return (self.samples[1:] != self.samples[:1]).any(0)

    def select(self, columns) -> "ViewPairs":
        """The views of some batch positions, in the blocked layout.

        Parameters
        ----------
        columns : sequence of int or torch.Tensor
            Batch positions in [0, B), e.g. ``mass.pair_mass.argsort()[:8]``, kept in that order.

        Returns
        -------
        ViewPairs
            V views of ``len(columns)`` samples.

        Raises
        ------
        ValueError
            If ``columns`` is empty or holds a position outside [0, B).
        """
        columns = torch.as_tensor(columns, dtype=torch.long).flatten()
        n_views, batch = self.samples.shape
        if len(columns) == 0 or int(columns.min()) < 0 or int(columns.max()) >= batch:
            raise ValueError(f"columns must hold at least one batch position in [0, {batch}), got {columns.tolist()[:8]}")
        rows = (torch.arange(n_views)[:, None] * batch + columns[None, :]).flatten()
        return ViewPairs(views=self.views[rows], pictures=self.pictures[:, columns], samples=self.samples[:, columns],
                         renderings=None if self.renderings is None else self.renderings[:, columns])


def draw_views(dataset, index, *, views: str = "augment", augmentation: str = "simclr", n_views: int = 2,
               corrupt_pairs: float = 0.0, strength: float = 0.5, seed: int = 0) -> ViewPairs:
    """The views of some samples drawn the way the trainer draws them, from one seeded generator.

    The sources come from :func:`gcalib.training.data.draw_view_sources`, then
    :class:`gcalib.training.batch_augment.BatchAugment` augments them. ``views="augment"``: every view
    augments the sample's image; ``views="rendered"``: each view augments a different one of the sample's
    renderings (``dataset.renderings``). With ``corrupt_pairs`` = P, views 2..V of a sample show, with
    probability P, another sample of ``dataset`` (uniform among the rest).

    Parameters
    ----------
    dataset : gcalib.training.data.ImageDataset
        An in-memory dataset.
    index : sequence of int or torch.Tensor
        The sample ids of the batch.
    views : {"augment", "rendered"}
        Where the views start from.
    augmentation : str
        A name of :data:`gcalib.training.augment.AUGMENTATIONS`.
    n_views : int
        Number of views V per sample, >= 2.
    corrupt_pairs : float
        Probability P in [0, 1) that a view shows another sample.
    strength : float
        Strength of the augmentation.
    seed : int
        Seed of the generator, >= 0.

    Returns
    -------
    ViewPairs
        The views, their pictures, and which sample and rendering each view shows.

    Raises
    ------
    TypeError
        If ``dataset`` is not an in-memory dataset.
    ValueError
        If an argument is out of range, or ``views="rendered"`` with fewer than ``n_views`` renderings.
    """
    _in_memory(dataset)
    index = _index(dataset, index)
    check_choice("views", views, VIEWS)
    check_choice("augmentation", augmentation, AUGMENTATIONS)
    check_int("n_views", n_views, 2)
    check_real("corrupt_pairs", corrupt_pairs, lambda v: 0 <= v < 1, "a number in [0, 1)")
    check_int("seed", seed, 0)
    renderings = getattr(dataset, "renderings", None) if views == "rendered" else None
    if views == "rendered" and (renderings is None or renderings.shape[1] < n_views):
        raise ValueError(f"views='rendered' needs a dataset with at least n_views={n_views} renderings per sample")
    generator = torch.Generator().manual_seed(seed)
    samples, chosen = draw_view_sources(index, len(dataset), n_views, corrupt_pairs=corrupt_pairs,
                                        n_renderings=None if renderings is None else renderings.shape[1],
                                        generator=generator)
    if chosen is None:
        sources = dataset.images[samples.flatten()]
    else:
        sources = renderings[samples.flatten(), chosen.flatten()]
    augment = BatchAugment(augmentation, dataset.image_size, dataset.mean, dataset.std, strength=strength)
    normalised = augment(sources, generator)
    pictures = denormalise(normalised, dataset.mean, dataset.std).unflatten(0, (n_views, len(index)))
    return ViewPairs(views=normalised, pictures=pictures, samples=samples, renderings=chosen)


def domain_examples(dataset, per_domain: int) -> torch.Tensor:
    """The first samples of every domain of a dataset, domain by domain.

    Parameters
    ----------
    dataset : gcalib.training.data.ImageDataset
        A dataset with ``domains``.
    per_domain : int
        Samples per domain, >= 1 (fewer where a domain has fewer).

    Returns
    -------
    torch.Tensor
        The sample ids, those of the lowest domain id first.

    Raises
    ------
    ValueError
        If the dataset has no domains.
    """
    check_int("per_domain", per_domain, 1)
    domains = getattr(dataset, "domains", None)
    if domains is None:
        raise ValueError("dataset has no domains (its domains attribute is None)")
    ids = sorted(set(int(d) for d in domains.tolist() if int(d) >= 0))
    return torch.cat([torch.nonzero(domains == d).flatten()[:per_domain] for d in ids])
