"""Datasets by name, held as uint8 images with class (and domain) labels, and a multi-view wrapper.

``load_dataset(name, split, root, download, **options)`` returns an :class:`ImageDataset` whose items
are ``(image uint8 (C, H, W), label, domain)`` with ``domain = -1`` when the dataset has none.

Names (``DATASETS``):

- ``digits``: scikit-learn's bundled 8×8 digits (1797 images, values 0..16), scaled by 255/16,
  upsampled bilinearly to 32×32, rounded to uint8 and replicated to 3 channels; a fixed stratified
  75/25 train/test split (seed 0). No files needed (``root`` and ``download`` are ignored, as for
  ``digits_domains``).
- ``digits_domains``: the digits, each image rendered in exactly one of four domains (assigned
  round-robin within each class after a seeded shuffle, so domains are class-balanced and hold
  different images, as in PACS): ``plain`` (white on black), ``rotated`` (rotated by ±25..45°),
  ``inverted_colour`` (a dark coloured stroke on a light coloured background, colours drawn per
  image), ``blur_noise`` (Gaussian blur σ = 1.2 then per-channel Gaussian noise σ = 30 grey levels).
  Option ``holdout_domain``: ``split="train"`` is every other domain, ``split="test"`` that domain
  only; without it a 75/25 split stratified by (class, domain).
- ``clutter_digits``: the same handwriting rendered into 32×32 RGB scenes with nuisances (background
  photographs, gratings, blotches and gradients, clutter fragments, position, scale, rotation, shear,
  colour) and four stroke-style domains (:mod:`gcalib.training.clutter`); split 75/25 by handwriting sample.
  Generated from ``seed`` (option, default 0) in seconds and cached in ``root/clutter_digits/``. The
  train split carries ``renderings`` (option, default 8) renderings of every sample for
  ``views="rendered"``, the test split two (for the alignment of rendered views); images are the first. Option ``holdout_domain``: train on the
  train split's samples of the other domains, test on every sample of that domain.
- ``cifar10``, ``cifar100``, ``svhn`` (files in ``root/svhn``), ``stl10``: torchvision's parsers,
  loaded into memory. With ``download=False`` the files must exist (their MD5 sums are not
  checked; parse failures are reported); ``download=True`` lets torchvision fetch and verify them.
- ``imagefolder``: ``root/<folder>/<split>/<class>/<image>`` (ImageNet-100 style; ``split="test"``
  reads ``val/`` when there is no ``test/``), read lazily with PIL, shorter side resized to
  ``image_size`` then centre-cropped.
- ``cifar10c``: ``root/CIFAR-10-C/<corruption>.npy`` (5 severities × n images, (5n, 32, 32, 3)
  uint8) and ``labels.npy``; options ``corruption`` and ``severity`` (1..5, or None for all).
- ``domainfolder``: ``root/<dataset>/<domain>/<class>/<image>`` (DomainBed/PACS layout), read
  lazily like ``imagefolder``; domain ids follow sorted domain names; option ``holdout_domain``.

``mean``/``std``: published per-dataset constants (CIFAR-10 for ``cifar10c``, ImageNet for the folder
datasets); for the digits datasets, the statistics of their default (non-holdout) training split.
The data root is the ``root`` argument, else ``$GCALIB_DATA``, else ``./data`` (see data/README.md).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..validation import check_bool, check_choice, check_ids, check_int, check_real, fail
from .clutter import CLUTTER_DOMAINS, cached_clutter_digits
from .splits import SPLIT_SEED, stratified_split

__all__ = [
    "DATASETS", "DIGITS_DOMAINS", "CIFAR10C_CORRUPTIONS", "DatasetNotFoundError",
    "DatasetCorruptError", "ImageDataset", "MultiViewDataset", "blocked_views", "data_root", "draw_view_sources",
    "load_dataset",
]

DATASETS = ("digits", "digits_domains", "clutter_digits", "cifar10", "cifar100", "svhn", "stl10",
            "imagefolder", "cifar10c", "domainfolder")
DIGITS_DOMAINS = ("plain", "rotated", "inverted_colour", "blur_noise")
CIFAR10C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "gaussian_blur", "snow", "frost", "fog", "spatter", "brightness",
    "contrast", "saturate", "elastic_transform", "pixelate", "jpeg_compression",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
DIGITS_SIZE = 32

Stats = tuple[float, ...]
_NORMALISATION: dict[str, tuple[Stats, Stats]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset's files are not where they are expected; the message names the path and the fixes.

    Also a ``ValueError``: like every other usage problem, it is caught by ``except ValueError``."""


class DatasetCorruptError(ValueError):
    """A dataset's files exist but cannot be parsed; the message names the file and the fixes."""


def _fixes(root: Path, downloadable: bool) -> str:
    ways = [f"pass download=True (CLI --download) to let torchvision download it into {root}"] if downloadable else []
    ways += ["point root= (CLI --root) or $GCALIB_DATA at the directory that already holds it",
             "place the files there yourself (layouts in data/README.md)"]
    return f"Fix it in one of {len(ways)} ways: " + "; ".join(ways) + "."


def data_root(root: Union[str, os.PathLike, None] = None) -> Path:
    """The data directory, made absolute.

    Parameters
    ----------
    root : str or os.PathLike, optional
        The directory; without it ``$GCALIB_DATA`` if set and non-empty, else ``./data`` (relative to the
        current directory at call time).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        When ``root`` is neither None, a str nor path-like.
    """
    if root is None:
        root = os.environ.get("GCALIB_DATA") or "data"
    elif not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or path-like, got {type(root).__name__} ({root!r})")
    return Path(root).expanduser().absolute()


def _channel_stats(images: torch.Tensor) -> tuple[Stats, Stats]:
    """Per-channel mean and std of uint8 images (N, C, H, W) on the [0, 1] scale."""
    x = images.double().div(255.0).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def _read_image(path: Path, size: int) -> torch.Tensor:
    """RGB uint8 (3, size, size): shorter side resized to ``size`` (antialiased), centre-cropped."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as F
    try:
        with Image.open(path) as im:
            tensor = F.pil_to_tensor(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetCorruptError(f"cannot read image {path}: {e}. Replace or delete that file.") from e
    return F.center_crop(F.resize(tensor, size, antialias=True), [size, size])


class ImageDataset(Dataset):
    """Images with labels, in memory or lazily read from files.

    ``__getitem__(i) -> (image uint8 (C, H, W), label, domain)``, ``domain = -1`` without domains.

    Parameters
    ----------
    labels : torch.Tensor or array_like
        Class ids (N,).
    classes : sequence of str
        Class names.
    mean, std : sequence of float
        Per-channel normalisation constants on the [0, 1] scale.
    images : torch.Tensor, optional
        uint8 (N, C, H, H) in memory; exactly one of ``images`` and ``files``.
    files : sequence of pathlib.Path, optional
        Image files read lazily (RGB, shorter side resized to ``image_size``, centre-cropped).
    image_size : int, optional
        Side of the images read from ``files``.
    domains : torch.Tensor, optional
        Domain ids (N,).
    domain_names : sequence of str, optional
        Domain names, with ``domains``.
    renderings : torch.Tensor, optional
        uint8 (N, K, C, H, W), K >= 2: K independent renderings of each sample (same content, different
        nuisances), the sources of ``views="rendered"`` in pretraining; ``images`` stays the evaluation
        image of each sample.
    name : str, default "custom"
        The dataset's name (in messages and reprs).
    split : str, default "train"
        The split's name.

    Raises
    ------
    TypeError, ValueError
        When the arguments do not fit together (shapes, dtypes, lengths); the message names the argument.
    """

    def __init__(self, labels: torch.Tensor, *, classes: Sequence[str], mean: Sequence[float],
                 std: Sequence[float], images: Optional[torch.Tensor] = None,
                 files: Optional[Sequence[Path]] = None, image_size: Optional[int] = None,
                 domains: Optional[torch.Tensor] = None, domain_names: Optional[Sequence[str]] = None,
                 renderings: Optional[torch.Tensor] = None, name: str = "custom",
                 split: str = "train") -> None:
        if (images is None) == (files is None):
            raise ValueError("ImageDataset needs exactly one of images= (in memory) or files= (lazy)")
        self.labels = check_ids("labels", labels, what="one class id per sample (-1: unlabelled)", min_length=0).long()
        n = len(self.labels)
        if images is not None:
            if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != images.shape[-2]:
                raise ValueError("images must be a uint8 tensor (N, C, H, H), got "
                                 f"{images.dtype} of shape {tuple(images.shape)}")
            if len(images) != n:
                raise ValueError(f"images has {len(images)} rows but labels has {n}")
            self.num_channels, self.image_size = int(images.shape[1]), int(images.shape[-1])
            self.files = None
        else:
            if image_size is None or len(files) != n:
                raise ValueError(f"files= needs image_size= and one label per file; got {len(files)} "
                                 f"files, {n} labels, image_size={image_size!r}")
            self.num_channels, self.image_size = 3, int(image_size)
            self.files = [Path(f) for f in files]
        self.images = images
        if domains is not None:
            domains = check_ids("domains", domains, what="one domain id per sample", length=n, min_length=0,
                                nonnegative=True).long()
            if domain_names is None:
                raise ValueError("domains needs domain_names (one name per domain id)")
        self.domains = domains
        self.domain_names = None if domain_names is None else list(domain_names)
        self.classes = list(classes)
        if len(mean) != self.num_channels or len(std) != self.num_channels:
            raise ValueError(f"mean and std need {self.num_channels} entries, got {mean!r}, {std!r}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.renderings = self._check_renderings(renderings)
        self.name, self.split = name, split

    def _check_renderings(self, renderings: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """``renderings`` if it is None or a uint8 tensor (N, K >= 2, C, H, W) matching the images."""
        if renderings is None:
            return None
        shape = (len(self), "K >= 2", self.num_channels, self.image_size, self.image_size)
        expected = f"a uint8 tensor (N, K, C, H, W) = ({', '.join(map(str, shape))})"
        if not isinstance(renderings, torch.Tensor):
            fail("renderings", renderings, expected, TypeError)
        got = f"{renderings.dtype} of shape {tuple(renderings.shape)}"
        if renderings.dtype != torch.uint8:
            raise TypeError(f"renderings must be {expected}, got {got}")
        if (renderings.ndim != 5 or renderings.shape[0] != len(self) or renderings.shape[1] < 2
                or tuple(renderings.shape[2:]) != (self.num_channels, self.image_size, self.image_size)):
            raise ValueError(f"renderings must be {expected}, got {got}")
        return renderings

    @classmethod
    def from_dataset(cls, dataset: Dataset, *, split: str = "train",
                     like: Optional["ImageDataset"] = None) -> "ImageDataset":
        """``dataset`` as an in-memory ImageDataset (an ImageDataset is returned unchanged).

        Optional attributes of ``dataset`` are used when present: ``classes`` (else ``"0"``.. up to the
        largest label), ``domain_names`` (else the domain ids as str), ``mean``/``std`` (else ``like``'s,
        else the per-channel statistics of its images), ``name``. Items without a domain, or with domain
        -1, have none.

        Parameters
        ----------
        dataset : torch.utils.data.Dataset
            Any map-style dataset (``len`` and ``getitem``) whose items are
            ``(uint8 image (C, H, H), label[, domain])``, read once into memory.
        split : str, default "train"
            The split's name.
        like : ImageDataset, optional
            A split whose image shape the images must have (e.g. the train split of a test split), and
            whose ``mean``/``std`` are taken when ``dataset`` has none.

        Returns
        -------
        ImageDataset

        Raises
        ------
        TypeError
            When ``dataset`` is not map-style or its items are not such tuples.
        ValueError
            When it is empty, its images differ in shape or from ``like``'s.
        """
        if isinstance(dataset, ImageDataset):
            _check_like(dataset.num_channels, dataset.image_size, like)
            return dataset
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            fail("dataset", dataset, "a map-style dataset (len and getitem) of (uint8 image (C, H, H), "
                 "label[, domain])", TypeError)
        if len(dataset) == 0:
            raise ValueError(f"dataset must hold at least one item, got an empty {type(dataset).__name__}")
        items = [_dataset_item(dataset, i) for i in range(len(dataset))]
        shapes = sorted({tuple(image.shape) for image, _, _ in items})
        if len(shapes) > 1:
            raise ValueError(f"dataset images must all have one shape (C, H, H), got shapes {shapes[:4]}")
        _check_like(shapes[0][0], shapes[0][1], like)
        images = torch.stack([image for image, _, _ in items])
        labels = torch.tensor([label for _, label, _ in items])
        domains = torch.tensor([domain for _, _, domain in items])
        if getattr(dataset, "mean", None) is not None and getattr(dataset, "std", None) is not None:
            mean, std = dataset.mean, dataset.std
        else:
            mean, std = _channel_stats(images) if like is None else (like.mean, like.std)
        classes = getattr(dataset, "classes", None) or [str(k) for k in range(int(labels.max()) + 1)]
        has_domains = bool((domains >= 0).any())
        domain_names = getattr(dataset, "domain_names", None) or [str(d) for d in range(int(domains.max()) + 1)]
        return cls(labels, images=images, classes=classes, mean=mean, std=std,
                   domains=domains if has_domains else None, domain_names=domain_names if has_domains else None,
                   name=str(getattr(dataset, "name", type(dataset).__name__)), split=split)

    def fingerprint(self) -> str:
        """A hash of the content: equal for datasets with the same content.

        Returns
        -------
        str
            The first 16 hex digits of the SHA-1 of the labels, domains, images (or file paths) and
            renderings.
        """
        digest = hashlib.sha1()
        parts = [self.labels, self.domains, self.images, self.renderings]
        for part in parts:
            digest.update(b"-" if part is None else part.detach().cpu().contiguous().numpy().tobytes())
        if self.files is not None:
            digest.update("\n".join(map(str, self.files)).encode())
        return digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        if self.images is not None:
            image = self.images[index]
        else:
            image = _read_image(self.files[index], self.image_size)
        domain = -1 if self.domains is None else int(self.domains[index])
        return image, int(self.labels[index]), domain

    def __repr__(self) -> str:
        where = "in memory" if self.images is not None else "lazy from disk"
        domains = "" if self.domain_names is None else f", domains={self.domain_names}"
        renderings = "" if self.renderings is None else f", renderings={self.renderings.shape[1]} per sample"
        return (f"ImageDataset({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"{self.num_channels}x{self.image_size}x{self.image_size}, "
                f"classes={len(self.classes)}{domains}{renderings}, {where})")


def _check_like(channels: int, size: int, like: Optional[ImageDataset]) -> None:
    """Images of ``channels`` x ``size`` x ``size`` must have the shape of ``like``'s (when given)."""
    if like is not None and (channels, size) != (like.num_channels, like.image_size):
        raise ValueError(f"dataset images must have the shape ({like.num_channels}, {like.image_size}, "
                         f"{like.image_size}) of the {like.name!r} {like.split} split, got ({channels}, {size}, {size})")


def _dataset_item(dataset: Dataset, index: int) -> tuple[torch.Tensor, int, int]:
    """Item ``index`` of a user dataset as (uint8 image (C, H, H), label, domain), domain -1 when absent."""
    item = dataset[index]
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        fail(f"dataset[{index}]", item, "a tuple (image, label) or (image, label, domain)", TypeError)
    image = torch.as_tensor(item[0])
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[1] != image.shape[2]:
        raise ValueError(f"dataset[{index}][0] (the image) must be a uint8 tensor (C, H, H), got "
                         f"{image.dtype} of shape {tuple(image.shape)}")
    label = check_int(f"dataset[{index}][1] (the label)", _as_int(item[1]), 0)
    domain = -1 if len(item) == 2 else check_int(f"dataset[{index}][2] (the domain)", _as_int(item[2]), -1)
    return image, label, domain


def _as_int(value):
    """``value`` as a Python int when it is an integer scalar (numpy, 0-d tensor), else unchanged."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        return value
    try:
        return int(value.__index__())
    except TypeError:
        return value


class MultiViewDataset(Dataset):
    """V random views of every item of a dataset: the per-image pipeline of pretraining.

    ``__getitem__(i) -> (views float (V, C, H, W), label, domain)``: ``transform`` applied independently
    to the V source images of item i of ``base``, drawn by :func:`draw_view_sources`. Random numbers come
    from torch's global RNG (a DataLoader worker's seeded one in workers).

    Parameters
    ----------
    base : torch.utils.data.Dataset
        Items ``(uint8 image, label, domain)`` (an :class:`ImageDataset`).
    transform : callable
        A random view, uint8 image → float image (:func:`gcalib.training.augment.make_view_transform`).
    n_views : int, default 2
        Views V per item, >= 1.
    renderings : torch.Tensor, optional
        uint8 (len(base), K, C, H, W) with K >= V: the views are V distinct renderings of sample i chosen at
        random; without it, item i's image for every view.
    corrupt_pairs : float, default 0.0
        P in [0, 1): views 2..V of each item come, with probability P, from one other sample drawn uniformly
        among the rest of ``base`` (its image, or its renderings).

    Raises
    ------
    TypeError
        When ``transform`` is not callable.
    ValueError
        For out-of-range arguments or renderings of the wrong shape.
    """

    def __init__(self, base: Dataset, transform: Callable[[torch.Tensor], torch.Tensor],
                 n_views: int = 2, *, renderings: Optional[torch.Tensor] = None,
                 corrupt_pairs: float = 0.0) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        check_int("n_views", n_views, 1)
        check_real("corrupt_pairs", corrupt_pairs, lambda v: 0 <= v < 1, "a number in [0, 1)")
        if renderings is not None and (renderings.ndim != 5 or len(renderings) != len(base)
                                       or renderings.shape[1] < n_views):
            raise ValueError(f"renderings must have shape (len(base) = {len(base)}, K >= n_views = {n_views}, "
                             f"C, H, W), got {tuple(renderings.shape)}")
        self.base, self.transform, self.n_views = base, transform, n_views
        self.renderings, self.corrupt_pairs = renderings, corrupt_pairs

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, label, domain = self.base[index]
        n_renderings = None if self.renderings is None else self.renderings.shape[1]
        samples, renderings = draw_view_sources(torch.tensor([index]), len(self.base), self.n_views,
                                                n_renderings=n_renderings, corrupt_pairs=self.corrupt_pairs)
        sources = []
        for v, sample in enumerate(samples[:, 0].tolist()):
            if renderings is not None:
                sources.append(self.renderings[sample, int(renderings[v, 0])])
            else:
                sources.append(image if sample == index else self.base[sample][0])
        return torch.stack([self.transform(source) for source in sources]), label, domain


def draw_view_sources(index: torch.Tensor, n_samples: int, n_views: int, *, n_renderings: Optional[int] = None,
                      corrupt_pairs: float = 0.0, generator: Optional[torch.Generator] = None,
                      ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The source of every view of a batch of samples ``index`` (B,) out of ``n_samples``.

    View v of sample b shows ``index[b]``, except that with probability ``corrupt_pairs`` (independently per
    sample) views 2..V show one other sample, uniform among the other ``n_samples - 1``. Draws, in this
    order and only when used: the corruption coins, the partners, the renderings, from ``generator`` (on
    ``index``'s device) or the global RNG.

    Parameters
    ----------
    index : torch.Tensor
        int64 (B,) sample ids.
    n_samples : int
        Number of samples the ids come from.
    n_views : int
        Views V per sample.
    n_renderings : int, optional
        K: also draw which rendering each view shows (V distinct ids per sample, uniform among the K).
    corrupt_pairs : float, default 0.0
        Probability of a broken positive pair, in [0, 1).
    generator : torch.Generator, optional
        Source of the random numbers.

    Returns
    -------
    samples : torch.Tensor
        int64 (V, B), blocked: ``samples[v, b]`` is the sample view v of sample b shows.
    renderings : torch.Tensor or None
        int64 (V, B): its rendering, when ``n_renderings`` is given.
    """
    batch, device = len(index), index.device
    samples = index.expand(n_views, batch).clone()
    if corrupt_pairs > 0:
        corrupt = torch.rand(batch, generator=generator, device=device) < corrupt_pairs
        partners = (index + torch.randint(1, n_samples, (batch,), generator=generator, device=device)) % n_samples
        samples[1:] = torch.where(corrupt, partners, index)
    renderings = None
    if n_renderings is not None:
        order = torch.rand(batch, n_renderings, generator=generator, device=device).argsort(dim=1)
        renderings = order[:, :n_views].T.contiguous()
    return samples, renderings


def blocked_views(views: torch.Tensor) -> torch.Tensor:
    """A collated multi-view batch in the blocked layout: row v·B + b is view v of sample b.

    Parameters
    ----------
    views : torch.Tensor
        (B, V, ...).

    Returns
    -------
    torch.Tensor
        (V·B, ...).

    Raises
    ------
    ValueError
        When ``views`` has fewer than two dimensions.

    Examples
    --------
    >>> blocked_views(torch.tensor([[1, 2], [3, 4]])).tolist()
    [1, 3, 2, 4]
    """
    if views.ndim < 2:
        raise ValueError(f"views must have shape (B, V, ...), got {tuple(views.shape)}")
    return views.transpose(0, 1).reshape(views.shape[0] * views.shape[1], *views.shape[2:])


# ---- embedded digits ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _digits_gray() -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 (1797, 1, 32, 32), labels): 0..16 scaled to 0..255, bilinear upsampling, rounded."""
    from sklearn.datasets import load_digits
    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().mul(255.0 / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear",
                                        align_corners=False)
    return x.round().to(torch.uint8), torch.from_numpy(bunch.target).long()


def _render_rotated(gray: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    from torchvision.transforms.v2 import InterpolationMode, functional as F
    angles = rng.uniform(25.0, 45.0, len(gray)) * rng.choice([-1.0, 1.0], len(gray))
    out = torch.stack([F.rotate(g, float(a), interpolation=InterpolationMode.BILINEAR, fill=0)
                       for g, a in zip(gray, angles)])
    return out.expand(-1, 3, -1, -1)


def _render_inverted_colour(gray: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    n = len(gray)
    background = torch.from_numpy(rng.uniform(150.0, 255.0, (n, 3, 1, 1))).float()
    stroke = torch.from_numpy(rng.uniform(0.0, 100.0, (n, 3, 1, 1))).float()
    return (background + (stroke - background) * gray.float() / 255.0).round().to(torch.uint8)


def _render_blur_noise(gray: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F
    blurred = F.gaussian_blur(gray.float(), kernel_size=[5, 5], sigma=[1.2, 1.2])
    noise = torch.from_numpy(rng.normal(0.0, 30.0, (len(gray), 3, DIGITS_SIZE, DIGITS_SIZE))).float()
    return (blurred + noise).clamp(0.0, 255.0).round().to(torch.uint8)


@functools.lru_cache(maxsize=1)
def _digits_domains_arrays() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images uint8 (1797, 3, 32, 32), labels, domains); every image in exactly one domain."""
    gray, labels = _digits_gray()
    rng = np.random.default_rng(SPLIT_SEED)
    domains = np.empty(len(labels), dtype=np.int64)
    for k in range(10):
        members = rng.permutation(np.flatnonzero(labels.numpy() == k))
        domains[members] = np.arange(len(members)) % len(DIGITS_DOMAINS)
    renderers = (lambda g, _: g.expand(-1, 3, -1, -1), _render_rotated, _render_inverted_colour,
                 _render_blur_noise)
    images = torch.empty(len(labels), 3, DIGITS_SIZE, DIGITS_SIZE, dtype=torch.uint8)
    for d, render in enumerate(renderers):
        idx = torch.from_numpy(np.flatnonzero(domains == d))
        images[idx] = render(gray[idx], np.random.default_rng([SPLIT_SEED, d]))
    return images, labels, torch.from_numpy(domains)


def _load_digits(root: Path, split: str, download: bool) -> ImageDataset:
    gray, labels = _digits_gray()
    train, test = stratified_split(labels.numpy())
    mean, std = _channel_stats(gray[train])
    idx = train if split == "train" else test
    return ImageDataset(labels[idx], images=gray[idx].repeat(1, 3, 1, 1),
                        classes=[str(k) for k in range(10)], mean=mean * 3, std=std * 3,
                        name="digits", split=split)


def _domain_index(name: str, domain_names: Sequence[str], holdout_domain: str) -> int:
    if holdout_domain not in domain_names:
        raise ValueError(f"holdout_domain={holdout_domain!r} is not a domain of {name}; expected "
                         f"one of {list(domain_names)}")
    return list(domain_names).index(holdout_domain)


def _holdout_split(name: str, domains: torch.Tensor, domain_names: Sequence[str],
                   holdout_domain: str) -> tuple[torch.Tensor, torch.Tensor]:
    held = domains == _domain_index(name, domain_names, holdout_domain)
    return torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()


def _load_digits_domains(root: Path, split: str, download: bool, *,
                         holdout_domain: Optional[str] = None) -> ImageDataset:
    images, labels, domains = _digits_domains_arrays()
    train, test = stratified_split((labels * len(DIGITS_DOMAINS) + domains).numpy())
    mean, std = _channel_stats(images[train])
    if holdout_domain is not None:
        train, test = _holdout_split("digits_domains", domains, DIGITS_DOMAINS, holdout_domain)
    idx = train if split == "train" else test
    return ImageDataset(labels[idx], images=images[idx], domains=domains[idx],
                        domain_names=DIGITS_DOMAINS, classes=[str(k) for k in range(10)],
                        mean=mean, std=std, name="digits_domains", split=split)


def _load_clutter_digits(root: Path, split: str, download: bool, *, seed: int = 0, renderings: int = 8,
                         holdout_domain: Optional[str] = None) -> ImageDataset:
    check_int("seed", seed, 0)
    check_int("renderings", renderings, 2)
    held_out = None if holdout_domain is None else _domain_index("clutter_digits", CLUTTER_DOMAINS, holdout_domain)
    arrays = cached_clutter_digits(root, seed, renderings)
    n_train = len(arrays.train_labels)
    images = torch.cat([arrays.train_renderings[:, 0], arrays.test_images])
    # Two renderings of every sample (the train split's first two) for the test split.
    pairs = torch.cat([arrays.train_renderings[:, :2], arrays.test_renderings])
    labels = torch.cat([arrays.train_labels, arrays.test_labels])
    domains = torch.cat([arrays.train_domains, arrays.test_domains])
    is_train = torch.arange(len(labels)) < n_train
    mean, std = _channel_stats(images[is_train])
    if held_out is None:
        keep = is_train if split == "train" else ~is_train
    else:
        # Train on the train split's samples of the other domains; test on every sample of the held-out one.
        held = domains == held_out
        keep = (is_train & ~held) if split == "train" else held
    idx = torch.nonzero(keep).flatten()
    return ImageDataset(labels[idx], images=images[idx], domains=domains[idx], domain_names=CLUTTER_DOMAINS,
                        classes=[str(k) for k in range(10)], mean=mean, std=std,
                        renderings=arrays.train_renderings[idx] if split == "train" else pairs[idx],
                        name="clutter_digits", split=split)


# ---- torchvision datasets ----------------------------------------------------------------------

def _without_checksums(tv_class: type) -> type:
    """Subclass of a torchvision dataset whose integrity check only tests that the files exist."""
    attrs: dict = {}
    for key in ("train_list", "test_list"):
        if hasattr(tv_class, key):
            attrs[key] = [[fname, None] for fname, _ in getattr(tv_class, key)]
    if hasattr(tv_class, "meta"):
        attrs["meta"] = {**tv_class.meta, "md5": None}
    if hasattr(tv_class, "split_list"):
        attrs["split_list"] = {k: [url, fname, None] for k, (url, fname, _) in tv_class.split_list.items()}
    return type(tv_class.__name__ + "Unverified", (tv_class,), attrs)


def _open_torchvision(name: str, tv_class: type, tv_root: Path, needed: Sequence[Path],
                      download: bool, **kwargs):
    if download:
        try:
            return tv_class(root=str(tv_root), download=True, **kwargs)
        except Exception as e:
            raise DatasetNotFoundError(
                f"{name}: download=True could not fetch or read the files into {tv_root} "
                f"({type(e).__name__}: {e}). Place the files there yourself (layouts in "
                "data/README.md), or retry with network access.") from e
    missing = [p for p in needed if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{name}: dataset not found: expected {missing[0]}"
            + (f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else "")
            + ". " + _fixes(tv_root, downloadable=True))
    try:
        return _without_checksums(tv_class)(root=str(tv_root), download=False, **kwargs)
    except Exception as e:
        raise DatasetCorruptError(
            f"{name}: the files in {needed[0].parent} could not be parsed ({type(e).__name__}: {e}); they "
            "are corrupt or incomplete. Fix it in one of two ways: delete them and pass "
            "download=True, or place intact copies there (layouts in data/README.md).") from e


def _in_memory(name: str, split: str, data: np.ndarray, labels, classes: Sequence[str],
               where: Path, stats: tuple[Stats, Stats], unlabeled_ok: bool = False) -> ImageDataset:
    """uint8 images (N, 3, H, H) + labels -> ImageDataset, after checking shapes and label range."""
    images = torch.from_numpy(np.ascontiguousarray(data))
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    low = -1 if unlabeled_ok else 0
    if (images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3
            or images.shape[2] != images.shape[3] or labels.shape != (len(images),)
            or (len(labels) and (labels.min() < low or labels.max() >= len(classes)))):
        raise DatasetCorruptError(
            f"{name}: files under {where} parsed to images {images.dtype} {tuple(images.shape)} "
            f"and labels {tuple(labels.shape)} (expected uint8 (N, 3, H, H) and N labels in "
            f"[{low}, {len(classes)})). Replace them with intact copies (data/README.md).")
    return ImageDataset(labels, images=images, classes=classes, mean=stats[0], std=stats[1],
                        name=name, split=split)


def _load_cifar(name: str, root: Path, split: str, download: bool) -> ImageDataset:
    from torchvision.datasets import CIFAR10, CIFAR100
    tv_class = CIFAR10 if name == "cifar10" else CIFAR100
    folder = root / tv_class.base_folder
    needed = [folder / f for f, _ in tv_class.train_list + tv_class.test_list]
    needed.append(folder / tv_class.meta["filename"])
    ds = _open_torchvision(name, tv_class, root, needed, download, train=split == "train")
    return _in_memory(name, split, ds.data.transpose(0, 3, 1, 2), ds.targets, ds.classes, folder,
                      _NORMALISATION[name])


def _load_svhn(root: Path, split: str, download: bool) -> ImageDataset:
    from torchvision.datasets import SVHN
    folder = root / "svhn"
    ds = _open_torchvision("svhn", SVHN, folder, [folder / SVHN.split_list[split][1]], download,
                           split=split)
    return _in_memory("svhn", split, ds.data, ds.labels, [str(k) for k in range(10)], folder,
                      _NORMALISATION["svhn"])


def _load_stl10(root: Path, split: str, download: bool) -> ImageDataset:
    from torchvision.datasets import STL10
    folder = root / STL10.base_folder
    needed = [folder / f for f, _ in STL10.train_list + STL10.test_list]
    ds = _open_torchvision("stl10", STL10, root, needed, download, split=split)
    classes = getattr(ds, "classes", None) or list(STL10_CLASSES)
    return _in_memory("stl10", split, ds.data, ds.labels, classes, folder, _NORMALISATION["stl10"],
                      unlabeled_ok="unlabeled" in split)


# ---- files on disk -----------------------------------------------------------------------------

def _no_download(name: str, download: bool) -> None:
    if download:
        raise ValueError(f"download=True is not available for {name}: torchvision cannot fetch it; "
                         "place the files as described in data/README.md and pass download=False")


def _load_cifar10c(root: Path, split: str, download: bool, *, corruption: Optional[str] = None,
                   severity: Optional[int] = 5) -> ImageDataset:
    _no_download("cifar10c", download)
    if corruption not in CIFAR10C_CORRUPTIONS:
        raise ValueError(f"corruption={corruption!r} is not a CIFAR-10-C corruption; expected one of "
                         f"{list(CIFAR10C_CORRUPTIONS)}")
    if severity is not None:
        check_int("severity", severity, 1, 5)
    folder = root / "CIFAR-10-C"
    paths = [folder / f"{corruption}.npy", folder / "labels.npy"]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(f"cifar10c: dataset not found: expected {missing[0]}. "
                                   + _fixes(root, downloadable=False))
    arrays = []
    for path in paths:
        try:
            arrays.append(np.load(path, mmap_mode="r", allow_pickle=False))
        except (OSError, ValueError, EOFError) as e:
            raise DatasetCorruptError(f"cifar10c: cannot parse {path} ({e}). Replace it with an intact "
                                      "copy of CIFAR-10-C (data/README.md).") from e
    data, labels = arrays
    if (data.dtype != np.uint8 or data.ndim != 4 or data.shape[1:] != (32, 32, 3)
            or len(data) % 5 or labels.shape != (len(data),) or labels.dtype.kind not in "iu"):
        raise DatasetCorruptError(
            f"cifar10c: {paths[0]} holds {data.dtype} {data.shape} and {paths[1]} {labels.dtype} "
            f"{labels.shape}; expected uint8 (5n, 32, 32, 3) (severities 1..5 stacked) and 5n "
            "integer labels. Replace them with intact copies (data/README.md).")
    per = len(data) // 5
    rows = slice(None) if severity is None else slice((severity - 1) * per, severity * per)
    return _in_memory("cifar10c", split, data[rows].transpose(0, 3, 1, 2), labels[rows],
                      CIFAR10_CLASSES, folder, _NORMALISATION["cifar10"])


def _subdirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_classes(folder: Path, classes: Sequence[str]) -> tuple[list[Path], list[int]]:
    """Image files under folder/<class>/ (sorted), with the class index of each."""
    from torchvision.datasets.folder import IMG_EXTENSIONS
    files, labels = [], []
    for k, c in enumerate(classes):
        if (folder / c).is_dir():
            found = sorted(p for p in (folder / c).iterdir()
                           if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
            files += found
            labels += [k] * len(found)
    return files, labels


def _load_imagefolder(root: Path, split: str, download: bool, *, folder: str = "imagenet100",
                      image_size: int = 224) -> ImageDataset:
    _no_download("imagefolder", download)
    check_int("image_size", image_size, 1)
    tree = root / folder
    split_dir = tree / split
    if split == "test" and not split_dir.is_dir() and (tree / "val").is_dir():
        split_dir = tree / "val"
    if not split_dir.is_dir():
        have = _subdirs(tree) if tree.is_dir() else []
        raise DatasetNotFoundError(
            f"imagefolder: dataset not found: expected {split_dir}/<class>/<image> (splits present: "
            f"{have}). " + _fixes(root, downloadable=False))
    classes = sorted({c for s in _subdirs(tree) for c in _subdirs(tree / s)})
    files, labels = _scan_classes(split_dir, classes)
    if not files:
        raise DatasetNotFoundError(f"imagefolder: no images found in {split_dir}/<class>/. "
                                   + _fixes(root, downloadable=False))
    mean, std = _NORMALISATION["imagenet"]
    return ImageDataset(torch.tensor(labels), files=files, image_size=image_size, classes=classes,
                        mean=mean, std=std, name="imagefolder", split=split)


def _load_domainfolder(root: Path, split: str, download: bool, *, dataset: str = "PACS",
                       holdout_domain: Optional[str] = None, image_size: int = 224) -> ImageDataset:
    _no_download("domainfolder", download)
    check_int("image_size", image_size, 1)
    tree = root / dataset
    domain_names = _subdirs(tree) if tree.is_dir() else []
    classes = sorted({c for d in domain_names for c in _subdirs(tree / d)})
    files, labels, domains = [], [], []
    for d, domain in enumerate(domain_names):
        found, found_labels = _scan_classes(tree / domain, classes)
        files += found
        labels += found_labels
        domains += [d] * len(found)
    if not files:
        raise DatasetNotFoundError(f"domainfolder: dataset not found: expected images at "
                                   f"{tree}/<domain>/<class>/<image>. "
                                   + _fixes(root, downloadable=False))
    labels_t, domains_t = torch.tensor(labels), torch.tensor(domains)
    if holdout_domain is None:
        train, test = stratified_split((labels_t * len(domain_names) + domains_t).numpy())
    else:
        train, test = _holdout_split(f"domainfolder {tree}", domains_t, domain_names, holdout_domain)
    idx = (train if split == "train" else test).tolist()
    mean, std = _NORMALISATION["imagenet"]
    return ImageDataset(labels_t[idx], files=[files[i] for i in idx], image_size=image_size,
                        domains=domains_t[idx], domain_names=domain_names, classes=classes,
                        mean=mean, std=std, name="domainfolder", split=split)


_LOADERS: dict[str, Callable[..., ImageDataset]] = {
    "digits": _load_digits,
    "digits_domains": _load_digits_domains,
    "clutter_digits": _load_clutter_digits,
    "cifar10": functools.partial(_load_cifar, "cifar10"),
    "cifar100": functools.partial(_load_cifar, "cifar100"),
    "svhn": _load_svhn,
    "stl10": _load_stl10,
    "imagefolder": _load_imagefolder,
    "cifar10c": _load_cifar10c,
    "domainfolder": _load_domainfolder,
}
_SPLITS: dict[str, Optional[tuple[str, ...]]] = {
    "svhn": ("train", "test", "extra"),
    "stl10": ("train", "test", "unlabeled", "train+unlabeled"),
    "cifar10c": ("test",),
    "imagefolder": None,
}


def load_dataset(name: str, split: str = "train", root: Union[str, os.PathLike, None] = None,
                 download: bool = False, **options) -> ImageDataset:
    """Load a dataset by name; see the module docstring for the names, options and layouts.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    split : str, default "train"
        ``"train"`` or ``"test"`` (``stl10`` also ``"unlabeled"`` and ``"train+unlabeled"``).
    root : str or os.PathLike, optional
        The data directory (:func:`data_root`).
    download : bool, default False
        Let torchvision download a missing dataset (CIFAR, SVHN, STL-10).
    **options
        The dataset's options (``holdout_domain``, ``image_size``, ``seed``, ``renderings``, ``corruption``,
        ``severity``, ``folder``, ``dataset``).

    Returns
    -------
    ImageDataset

    Raises
    ------
    TypeError
        For unknown options and arguments of the wrong type.
    ValueError
        For unknown names, splits and option values.
    DatasetNotFoundError
        When the files are missing (also a ``ValueError``).
    DatasetCorruptError
        When they cannot be parsed (also a ``ValueError``).

    Examples
    --------
    >>> test = load_dataset("digits", "test")
    >>> len(test), tuple(test.images.shape[1:])
    (451, (3, 32, 32))
    """
    if not isinstance(name, str):
        fail("name", name, "a str", TypeError)
    check_choice("dataset", name, DATASETS)
    if not isinstance(split, str):
        fail("split", split, "a str", TypeError)
    valid_splits = _SPLITS.get(name, ("train", "test"))
    if valid_splits is not None and split not in valid_splits:
        raise ValueError(f"split={split!r} is not available for {name}; expected one of "
                         f"{list(valid_splits)}")
    check_bool("download", download)
    loader = _LOADERS[name]
    accepted = [p.name for p in inspect.signature(loader).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for dataset {name}; accepted options: "
                        f"{accepted or 'none'}")
    return loader(data_root(root), split, download, **options)
