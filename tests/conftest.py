"""Shared test fixtures: ``disk`` (writers of tiny datasets in their real on-disk formats, see
data/README.md) and ``make_views`` (seeded embedding views).

Each writer puts files under ``root`` exactly where ``gcalib.training.data.load_dataset(name, root=root)`` and
torchvision expect them, and returns what it wrote (images as uint8 (N, 3, H, W), labels 0-based) so
that tests can compare the loaded data with it. Images are random but seeded.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import pytest
import torch

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck"]
PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")


def _images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 3, 32, 32) -> (N, 3072) rows: the 1024 red values, then green, then blue, row-major."""
    return images.reshape(len(images), 3 * 32 * 32)


def write_cifar10(root: Path, n_per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    """root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} as Python pickles."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    out = {}
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    written = {name: (_images(rng, n, 32), rng.integers(0, 10, n))
               for name, n in [(b, n_per_batch) for b in batches] + [("test_batch", n_test)]}
    for name, (images, labels) in written.items():
        _pickle(folder / name, {"batch_label": f"{name} of 5", "labels": [int(v) for v in labels],
                                "data": _cifar_rows(images),
                                "filenames": [f"img_{i}.png" for i in range(len(labels))]})
    _pickle(folder / "batches.meta", {"num_cases_per_batch": n_per_batch,
                                      "label_names": CIFAR10_CLASSES, "num_vis": 3072})
    out["train"] = (np.concatenate([written[b][0] for b in batches]),
                    np.concatenate([written[b][1] for b in batches]))
    out["test"] = written["test_batch"]
    out["classes"] = CIFAR10_CLASSES
    return out


def write_cifar100(root: Path, n_train: int = 9, n_test: int = 5, seed: int = 1) -> dict:
    """root/cifar-100-python/{train, test, meta} as Python pickles (fine and coarse labels)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    fine_names = [f"fine_{k:02d}" for k in range(100)]
    out = {"classes": fine_names}
    for split, n in (("train", n_train), ("test", n_test)):
        images, fine = _images(rng, n, 32), rng.integers(0, 100, n)
        _pickle(folder / split, {"filenames": [f"img_{i}.png" for i in range(n)],
                                 "batch_label": f"{split} batch", "fine_labels": [int(v) for v in fine],
                                 "coarse_labels": [int(v) // 5 for v in fine],
                                 "data": _cifar_rows(images)})
        out[split] = (images, fine)
    _pickle(folder / "meta", {"fine_label_names": fine_names,
                              "coarse_label_names": [f"coarse_{k:02d}" for k in range(20)]})
    return out


def write_svhn(root: Path, n_train: int = 7, n_test: int = 5, seed: int = 2) -> dict:
    """root/svhn/{train,test}_32x32.mat (MATLAB v5): X (32, 32, 3, N) uint8, y (N, 1) with 10 for 0."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    folder = Path(root) / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = _images(rng, n, 32), rng.integers(0, 10, n)
        labels[0] = 0
        y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(n, 1)
        savemat(folder / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": y})
        out[split] = (images, labels)
    return out


def write_stl10(root: Path, n_train: int = 5, n_test: int = 4, n_unlabeled: int = 3,
                seed: int = 3) -> dict:
    """root/stl10_binary/{train,test,unlabeled}_X.bin (raw uint8, each image stored column-major as
    (3, W, H)), {train,test}_y.bin (uint8 labels 1..10), class_names.txt, fold_indices.txt."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    out = {"classes": ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
                       "truck"]}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        images = _images(rng, n, 96)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        labels = None
        if split != "unlabeled":
            labels = rng.integers(0, 10, n)
            (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
        out[split] = (images, labels)
    (folder / "class_names.txt").write_text("\n".join(out["classes"]) + "\n")
    (folder / "fold_indices.txt").write_text(
        "\n".join(" ".join(str(i) for i in range(k % n_train, n_train)) for k in range(10)) + "\n")
    return out


def _write_png(path: Path, colour: Sequence[int], width: int, height: int) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), tuple(int(c) for c in colour)).save(path)


def write_imagefolder(root: Path, folder: str = "imagenet100", splits: Sequence[str] = ("train", "val"),
                      classes: Sequence[str] = ("n01440764", "n01443537", "n01484850"),
                      per_class: int = 2, seed: int = 4) -> dict:
    """root/<folder>/<split>/<class>/<image>.png: uniform-colour PNGs of varied non-square sizes.

    Returns {split: [(path, class index, colour)]} in sorted file order."""
    rng = np.random.default_rng(seed)
    out: dict = {"classes": sorted(classes)}
    for split in splits:
        rows = []
        for k, c in enumerate(sorted(classes)):
            for i in range(per_class):
                path = Path(root) / folder / split / c / f"{c}_{i}.png"
                colour = rng.integers(0, 256, 3)
                _write_png(path, colour, int(rng.integers(20, 60)), int(rng.integers(20, 60)))
                rows.append((path, k, colour))
        out[split] = rows
    return out


def write_cifar10c(root: Path, corruptions: Sequence[str] = ("brightness", "fog"), n: int = 3,
                   seed: int = 5) -> dict:
    """root/CIFAR-10-C/<corruption>.npy (5n, 32, 32, 3) uint8, severities 1..5 stacked in blocks of n
    images, and labels.npy (5n,) uint8 (the same n labels repeated five times)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.tile(rng.integers(0, 10, n).astype(np.uint8), 5)
    np.save(folder / "labels.npy", labels)
    out = {"labels": labels}
    for name in corruptions:
        data = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
        np.save(folder / f"{name}.npy", data)
        out[name] = data
    return out


def write_domainfolder(root: Path, dataset: str = "PACS", domains: Sequence[str] = PACS_DOMAINS,
                       classes: Sequence[str] = ("dog", "elephant", "giraffe"),
                       counts: Sequence[int] = (3, 2, 4, 5), seed: int = 6) -> dict:
    """root/<dataset>/<domain>/<class>/<image>.png (DomainBed/PACS layout), ``counts[d]`` images per
    class in domain d, uniform colours. Returns {"rows": [(path, class, domain, colour)]} in sorted
    (domain, class, file) order."""
    rng = np.random.default_rng(seed)
    rows = []
    for d, domain in enumerate(sorted(domains)):
        for k, c in enumerate(sorted(classes)):
            for i in range(counts[d]):
                path = Path(root) / dataset / domain / c / f"{i:03d}.png"
                colour = rng.integers(0, 256, 3)
                _write_png(path, colour, int(rng.integers(20, 40)), int(rng.integers(20, 40)))
                rows.append((path, k, d, colour))
    return {"rows": rows, "domains": sorted(domains), "classes": sorted(classes)}


def tagged_dataset(n: int = 40, k: int = 3, size: int = 8, n_classes: int = 4):
    """An in-memory ImageDataset whose images say where they come from: channel 0 of image i and of its
    renderings is i, channel 1 is 255 for the evaluation image and r for rendering r (n <= 255, k < 255).
    Labels are ``i % n_classes``; mean 0 and std 1, so that a ``none`` view is the image / 255."""
    from gcalib.training.data import ImageDataset

    index = torch.arange(n, dtype=torch.uint8).view(n, 1, 1)
    images = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    images[:, 0], images[:, 1] = index, 255
    renderings = torch.zeros(n, k, 3, size, size, dtype=torch.uint8)
    renderings[:, :, 0] = index.unsqueeze(1)
    renderings[:, :, 1] = torch.arange(k, dtype=torch.uint8).view(1, k, 1, 1)
    return ImageDataset(torch.arange(n) % n_classes, images=images, renderings=renderings,
                        classes=[str(c) for c in range(n_classes)], mean=(0.0,) * 3, std=(1.0,) * 3, name="tagged")


def tags(views):
    """(sample, rendering) tags of float views (M, 3, H, W) of :func:`tagged_dataset` made by a ``none``
    augmentation: two LongTensors (M,); rendering 255 marks an evaluation image."""
    pixels = (views[:, :2, 0, 0] * 255).round().long()
    return pixels[:, 0], pixels[:, 1]


def _make_views(batch: int = 6, dim: int = 5, n_views: int = 2, seed: int = 0, noise: float | None = None,
               requires_grad: bool = False, dtype: torch.dtype = torch.float64) -> list:
    """``n_views`` seeded (batch, dim) views: independent standard normals, or, with ``noise``, one
    standard-normal base plus ``noise`` times an independent standard normal per view."""
    gen = torch.Generator().manual_seed(seed)
    if noise is None:
        views = [torch.randn(batch, dim, generator=gen, dtype=dtype) for _ in range(n_views)]
    else:
        base = torch.randn(batch, dim, generator=gen, dtype=dtype)
        views = [base + noise * torch.randn(batch, dim, generator=gen, dtype=dtype) for _ in range(n_views)]
    return [v.requires_grad_(requires_grad) for v in views]


@pytest.fixture(scope="session")
def make_views():
    """:func:`_make_views`, the one factory of seeded embedding views the tests share."""
    return _make_views


@pytest.fixture(scope="session")
def disk():
    """Writers of tiny datasets in their real on-disk formats, and the tagged in-memory dataset."""
    return SimpleNamespace(
        write_cifar10=write_cifar10, write_cifar100=write_cifar100, write_svhn=write_svhn, write_stl10=write_stl10,
        write_imagefolder=write_imagefolder, write_cifar10c=write_cifar10c, write_domainfolder=write_domainfolder,
        tagged_dataset=tagged_dataset, tags=tags, CIFAR10_CLASSES=CIFAR10_CLASSES, PACS_DOMAINS=PACS_DOMAINS)
