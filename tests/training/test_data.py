"""gcalib.training.data: embedded digits datasets, real-format fixture loading, splits, errors, multi-view batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gcalib.training.data import (
    DATASETS, DIGITS_DOMAINS, DatasetCorruptError, DatasetNotFoundError, ImageDataset,
    MultiViewDataset, blocked_views, data_root, draw_view_sources, load_dataset,
)


# ---- root resolution -------------------------------------------------------------------------------

def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("GCALIB_DATA", raising=False)
    assert data_root() == Path.cwd() / "data"
    monkeypatch.setenv("GCALIB_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root(str(tmp_path)) == tmp_path
    with pytest.raises(TypeError, match="root"):
        data_root(3)


def test_load_dataset_reads_root_from_env(disk, monkeypatch, tmp_path):
    written = disk.write_cifar10(tmp_path)
    monkeypatch.setenv("GCALIB_DATA", str(tmp_path))
    ds = load_dataset("cifar10", split="test")
    assert torch.equal(ds.images, torch.from_numpy(written["test"][0]))


# ---- digits ----------------------------------------------------------------------------------------

def _bilinear_upsample_reference(img: np.ndarray, size: int) -> np.ndarray:
    """Half-pixel-centre bilinear interpolation with edge clamping, written out per axis."""
    n = img.shape[0]
    src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = src - lo
    rows = img[lo] * (1 - w)[:, None] + img[hi] * w[:, None]
    return rows[:, lo] * (1 - w)[None, :] + rows[:, hi] * w[None, :]


def test_digits_images_labels_and_split():
    from sklearn.datasets import load_digits
    bunch = load_digits()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    for ds in (train, test):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (3, 32, 32)
        assert ds.num_channels == 3 and ds.image_size == 32 and ds.domains is None
        assert torch.equal(ds.images[:, 0], ds.images[:, 1]) and torch.equal(ds.images[:, 0], ds.images[:, 2])
        assert ds.classes == [str(k) for k in range(10)]
        assert ds.mean == train.mean and ds.std == train.std
    # stratified: every class contributes round(n_k / 4) test images
    counts = np.bincount(bunch.target, minlength=10)
    assert test.labels.bincount(minlength=10).tolist() == [int(np.floor(c / 4 + 0.5)) for c in counts]
    # disjoint and exhaustive, checked through the pixels: each sklearn image appears exactly once
    expected = {}
    for i, img in enumerate(bunch.images):
        ref = np.round(_bilinear_upsample_reference(img * 255.0 / 16.0, 32)).astype(np.uint8)
        expected.setdefault(ref.tobytes(), []).append(int(bunch.target[i]))
    seen = []
    for ds in (train, test):
        for img, label in zip(ds.images[:, 0].numpy(), ds.labels.tolist()):
            key = img.tobytes()
            assert label in expected[key]
            seen.append(key)
    assert sorted(seen) == sorted(k for k, v in expected.items() for _ in v)
    # mean/std are the per-channel statistics of the training images on the [0, 1] scale
    x = train.images[:, 0].double() / 255
    assert train.mean[0] == pytest.approx(x.mean().item(), abs=1e-9)
    assert train.std[0] == pytest.approx(x.std().item(), abs=1e-9)


def test_digits_is_deterministic_and_items_match():
    from gcalib.training import data
    a = load_dataset("digits", "test")
    data._digits_gray.cache_clear()
    b = load_dataset("digits", "test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    image, label, domain = a[5]
    assert torch.equal(image, a.images[5]) and label == int(a.labels[5]) and domain == -1


def test_digits_domains_structure_and_rendering():
    train, test = load_dataset("digits_domains", "train"), load_dataset("digits_domains", "test")
    digits_plain = {img.tobytes() for ds in (load_dataset("digits", "train"), load_dataset("digits", "test"))
                    for img in ds.images.numpy()}
    assert len(train) + len(test) == 1797
    for ds in (train, test):
        assert ds.domain_names == list(DIGITS_DOMAINS) and len(DIGITS_DOMAINS) == 4
        assert ds.images.shape[1:] == (3, 32, 32) and ds.images.dtype == torch.uint8
        assert ds.mean == train.mean
        image, label, domain = ds[3]
        assert domain == int(ds.domains[3]) and label == int(ds.labels[3])
    labels = torch.cat([train.labels, test.labels])
    domains = torch.cat([train.domains, test.domains])
    images = torch.cat([train.images, test.images])
    table = torch.zeros(10, 4, dtype=torch.long)
    table.index_put_((labels, domains), torch.ones_like(labels), accumulate=True)
    assert table.min() >= 43 and (table.max(1).values - table.min(1).values).max() <= 1  # balanced
    # the split is stratified by (class, domain)
    test_table = torch.zeros(10, 4, dtype=torch.long)
    test_table.index_put_((test.labels, test.domains), torch.ones_like(test.labels), accumulate=True)
    assert torch.equal(test_table, torch.floor(table / 4 + 0.5).long())
    corners = images[:, :, 0, 0].float()
    for d, name in enumerate(DIGITS_DOMAINS):
        sel = images[domains == d]
        is_plain = [img.numpy().tobytes() in digits_plain for img in sel]
        if name == "plain":
            assert all(is_plain)
        else:
            assert not any(is_plain)
    assert (corners[domains == 1] == 0).all()  # rotated: black background, filled corners
    assert (corners[domains == 2] >= 150).all()  # inverted colour: light background
    noisy = images[domains == 3]
    assert (noisy[:, 0] != noisy[:, 1]).float().mean() > 0.5  # per-channel noise


def test_digits_domains_is_deterministic():
    from gcalib.training import data
    a = load_dataset("digits_domains", "train")
    data._digits_domains_arrays.cache_clear()
    data._digits_gray.cache_clear()
    b = load_dataset("digits_domains", "train")
    assert torch.equal(a.images, b.images) and torch.equal(a.domains, b.domains)


@pytest.mark.parametrize("held", DIGITS_DOMAINS)
def test_digits_domains_holdout(held):
    train = load_dataset("digits_domains", "train", holdout_domain=held)
    test = load_dataset("digits_domains", "test", holdout_domain=held)
    d = DIGITS_DOMAINS.index(held)
    assert (train.domains != d).all() and (test.domains == d).all()
    assert len(train) + len(test) == 1797
    assert sorted(train.domains.unique().tolist()) == [k for k in range(4) if k != d]
    assert test.domain_names == list(DIGITS_DOMAINS)  # ids stay global


def test_digits_domains_bad_holdout_lists_domains():
    with pytest.raises(ValueError, match="holdout_domain='photo'.*plain.*blur_noise"):
        load_dataset("digits_domains", holdout_domain="photo")


# ---- torchvision formats ---------------------------------------------------------------------------

def test_cifar10_fixture(disk, tmp_path):
    written = disk.write_cifar10(tmp_path)
    for split in ("train", "test"):
        ds = load_dataset("cifar10", split, root=tmp_path)
        images, labels = written[split]
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(labels), 3, 32, 32)
        assert torch.equal(ds.images, torch.from_numpy(images))
        assert ds.labels.tolist() == labels.tolist() and ds.classes == written["classes"]
        assert ds.domains is None and ds.image_size == 32 and len(ds.mean) == 3


def test_cifar100_fixture(disk, tmp_path):
    written = disk.write_cifar100(tmp_path)
    ds = load_dataset("cifar100", "train", root=tmp_path)
    assert torch.equal(ds.images, torch.from_numpy(written["train"][0]))
    assert ds.labels.tolist() == written["train"][1].tolist()  # fine labels
    assert ds.classes == written["classes"] and len(ds.classes) == 100


def test_svhn_fixture(disk, tmp_path):
    written = disk.write_svhn(tmp_path)
    for split in ("train", "test"):
        ds = load_dataset("svhn", split, root=tmp_path)
        assert torch.equal(ds.images, torch.from_numpy(written[split][0]))
        assert ds.labels.tolist() == written[split][1].tolist()  # the .mat's 10 is read as 0
    assert ds.classes == [str(k) for k in range(10)]


def test_stl10_fixture(disk, tmp_path):
    written = disk.write_stl10(tmp_path)
    for split in ("train", "test"):
        ds = load_dataset("stl10", split, root=tmp_path)
        assert ds.images.shape == (len(written[split][1]), 3, 96, 96) and ds.image_size == 96
        assert torch.equal(ds.images, torch.from_numpy(written[split][0]))
        assert ds.labels.tolist() == written[split][1].tolist()
        assert ds.classes == written["classes"]
    unlabeled = load_dataset("stl10", "unlabeled", root=tmp_path)
    assert torch.equal(unlabeled.images, torch.from_numpy(written["unlabeled"][0]))
    assert (unlabeled.labels == -1).all()
    both = load_dataset("stl10", "train+unlabeled", root=tmp_path)
    assert len(both) == len(written["train"][1]) + len(written["unlabeled"][0])


def test_imagefolder_fixture_lazy(disk, tmp_path):
    written = disk.write_imagefolder(tmp_path)
    train = load_dataset("imagefolder", "train", root=tmp_path, image_size=16)
    test = load_dataset("imagefolder", "test", root=tmp_path, image_size=16)  # reads val/
    assert train.images is None and train.image_size == 16 and train.classes == written["classes"]
    for ds, rows in ((train, written["train"]), (test, written["val"])):
        assert len(ds) == len(rows)
        for i, (path, label, colour) in enumerate(rows):
            image, got_label, domain = ds[i]
            assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)
            assert got_label == label and domain == -1 and ds.files[i] == path
            assert torch.equal(image, torch.tensor(colour, dtype=torch.uint8)[:, None, None].expand(3, 16, 16))


def test_imagefolder_class_indices_shared_across_splits(disk, tmp_path):
    disk.write_imagefolder(tmp_path, splits=("train",), classes=("a", "b", "c"))
    disk.write_imagefolder(tmp_path, splits=("val",), classes=("b",), seed=9)
    test = load_dataset("imagefolder", "test", root=tmp_path, image_size=8)
    assert test.classes == ["a", "b", "c"] and set(test.labels.tolist()) == {1}


def test_cifar10c_fixture(disk, tmp_path):
    written = disk.write_cifar10c(tmp_path, n=3)
    for severity in (1, 3, 5):
        ds = load_dataset("cifar10c", "test", root=tmp_path, corruption="fog", severity=severity)
        rows = slice(3 * (severity - 1), 3 * severity)
        assert torch.equal(ds.images, torch.from_numpy(written["fog"][rows].transpose(0, 3, 1, 2).copy()))
        assert ds.labels.tolist() == written["labels"][rows].tolist()
        assert ds.classes[0] == "airplane" and len(ds.classes) == 10
    everything = load_dataset("cifar10c", "test", root=tmp_path, corruption="brightness", severity=None)
    assert len(everything) == 15


def test_domainfolder_fixture(disk, tmp_path):
    written = disk.write_domainfolder(tmp_path, counts=(3, 2, 4, 5))
    rows = written["rows"]
    train = load_dataset("domainfolder", "train", root=tmp_path, image_size=8)
    test = load_dataset("domainfolder", "test", root=tmp_path, image_size=8)
    assert train.domain_names == written["domains"] and train.classes == written["classes"]
    assert len(train) + len(test) == len(rows)
    by_path = {p: (k, d, c) for p, k, d, c in rows}
    for ds in (train, test):
        assert ds.images is None
        for i in range(len(ds)):
            image, label, domain = ds[i]
            k, d, colour = by_path[ds.files[i]]
            assert (label, domain) == (k, d)
            assert torch.equal(image[:, 0, 0], torch.tensor(colour, dtype=torch.uint8))
    # stratified by (class, domain): domain with 4 images per class puts 1 per class in test
    assert torch.equal(test.domains.bincount(minlength=4), torch.tensor([1 * 3, 1 * 3, 1 * 3, 1 * 3]))
    held_train = load_dataset("domainfolder", "train", root=tmp_path, image_size=8, holdout_domain="photo")
    held_test = load_dataset("domainfolder", "test", root=tmp_path, image_size=8, holdout_domain="photo")
    assert (held_test.domains == 2).all() and len(held_test) == 3 * 4
    assert (held_train.domains != 2).all() and len(held_train) == len(rows) - 12
    with pytest.raises(ValueError, match="holdout_domain='clipart'.*art_painting"):
        load_dataset("domainfolder", root=tmp_path, holdout_domain="clipart")


def test_domain_batches_carry_domain_ids():
    from gcalib.training.augment import make_view_transform
    base = load_dataset("digits_domains", "test")
    views = MultiViewDataset(base, make_view_transform("simclr", 32, base.mean, base.std), n_views=3)
    torch.manual_seed(0)
    batch_views, labels, domains = next(iter(DataLoader(views, batch_size=5)))
    assert batch_views.shape == (5, 3, 3, 32, 32) and batch_views.dtype == torch.float32
    assert torch.equal(labels, base.labels[:5]) and torch.equal(domains, base.domains[:5])
    assert not torch.equal(batch_views[:, 0], batch_views[:, 1])
    flat = blocked_views(batch_views)
    assert flat.shape == (15, 3, 32, 32)
    for r in range(15):
        assert torch.equal(flat[r], batch_views[r % 5, r // 5])  # row r: view r // B of sample r mod B


def test_multiview_validation():
    base = load_dataset("digits", "test")
    with pytest.raises(ValueError, match="n_views.*0"):
        MultiViewDataset(base, lambda x: x.float(), n_views=0)
    with pytest.raises(TypeError, match="transform"):
        MultiViewDataset(base, "simclr")


# ---- errors ----------------------------------------------------------------------------------------

def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="'imagenet'") as err:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(err.value)


def test_unknown_option_and_split():
    with pytest.raises(TypeError, match="corruption.*digits"):
        load_dataset("digits", corruption="fog")
    with pytest.raises(ValueError, match="split='val'.*train.*test"):
        load_dataset("digits", split="val")
    with pytest.raises(ValueError, match="split='train'.*cifar10c"):
        load_dataset("cifar10c", split="train", corruption="fog")


def _assert_fix_hints(message: str, path: Path):
    assert str(path) in message and "place" in message


@pytest.mark.parametrize("name,expected", [
    ("cifar10", "cifar-10-batches-py/data_batch_1"), ("cifar100", "cifar-100-python/train"),
    ("svhn", "svhn/train_32x32.mat"), ("stl10", "stl10_binary/train_X.bin"),
])
def test_missing_torchvision_dataset(tmp_path, name, expected):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(name, root=tmp_path)
    assert isinstance(err.value, FileNotFoundError)
    _assert_fix_hints(str(err.value), tmp_path / expected)
    assert "download=True" in str(err.value)


def test_missing_file_based_datasets(tmp_path):
    for name, options, expected in [
        ("cifar10c", {"corruption": "fog"}, tmp_path / "CIFAR-10-C" / "fog.npy"),
        ("imagefolder", {}, tmp_path / "imagenet100" / "train"),
        ("domainfolder", {"dataset": "OfficeHome"}, tmp_path / "OfficeHome"),
    ]:
        split = "test" if name == "cifar10c" else "train"
        with pytest.raises(DatasetNotFoundError) as err:
            load_dataset(name, split, root=tmp_path, **options)
        _assert_fix_hints(str(err.value), expected)
        assert "GCALIB_DATA" in str(err.value)
        with pytest.raises(ValueError, match="download=True is not available"):
            load_dataset(name, split, root=tmp_path, download=True, **options)


def test_corrupt_cifar_pickle(disk, tmp_path):
    disk.write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetCorruptError) as err:
        load_dataset("cifar10", "train", root=tmp_path)
    assert isinstance(err.value, ValueError)
    _assert_fix_hints(str(err.value), tmp_path / "cifar-10-batches-py")
    assert "download=True" in str(err.value)
    load_dataset("cifar10", "test", root=tmp_path)  # the test split does not read that batch


def test_corrupt_svhn_and_stl10(disk, tmp_path):
    disk.write_svhn(tmp_path)
    (tmp_path / "svhn" / "train_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetCorruptError, match="svhn"):
        load_dataset("svhn", root=tmp_path)
    disk.write_stl10(tmp_path)
    x = tmp_path / "stl10_binary" / "test_X.bin"
    x.write_bytes(x.read_bytes()[:-7])  # no longer a whole number of 3x96x96 images
    with pytest.raises(DatasetCorruptError, match="stl10"):
        load_dataset("stl10", "test", root=tmp_path)
    y = tmp_path / "stl10_binary" / "train_y.bin"
    y.write_bytes(y.read_bytes() + b"\x01")  # one label too many
    with pytest.raises(DatasetCorruptError, match="labels"):
        load_dataset("stl10", "train", root=tmp_path)


def test_corrupt_cifar10c(disk, tmp_path):
    disk.write_cifar10c(tmp_path)
    path = tmp_path / "CIFAR-10-C" / "fog.npy"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetCorruptError, match="fog.npy"):
        load_dataset("cifar10c", "test", root=tmp_path, corruption="fog")
    np.save(path, np.zeros((7, 32, 32, 3), np.uint8))
    with pytest.raises(DatasetCorruptError, match=r"5n"):
        load_dataset("cifar10c", "test", root=tmp_path, corruption="fog")
    with pytest.raises(ValueError, match="corruption='smoke'.*gaussian_noise"):
        load_dataset("cifar10c", "test", root=tmp_path, corruption="smoke")
    with pytest.raises(ValueError, match="severity.*6"):
        load_dataset("cifar10c", "test", root=tmp_path, corruption="fog", severity=6)


def test_corrupt_image_file_names_the_file(disk, tmp_path):
    written = disk.write_imagefolder(tmp_path)
    bad = written["train"][1][0]
    bad.write_bytes(b"\x89PNG broken")
    ds = load_dataset("imagefolder", "train", root=tmp_path, image_size=8)
    ds[0]
    with pytest.raises(DatasetCorruptError, match=str(bad)):
        ds[1]


def test_image_dataset_validation():
    with pytest.raises(TypeError, match=r"labels must be an integer tensor .*got dtype torch.float32"):
        ImageDataset(torch.zeros(2), images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), classes=["a"],
                     mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="exactly one"):
        ImageDataset(torch.zeros(2, dtype=torch.long), classes=["a"], mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, dtype=torch.long), images=torch.zeros(2, 1, 4, 4), classes=["a"], mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="3 rows but labels has 2"):
        ImageDataset(torch.zeros(2, dtype=torch.long), images=torch.zeros(3, 1, 4, 4, dtype=torch.uint8), classes=["a"],
                     mean=(0.5,), std=(0.5,))
    ds = ImageDataset(torch.tensor([0, 1]), images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
                      classes=["a", "b"], mean=(0.5,), std=(0.5,))
    assert ds.num_channels == 1 and ds.image_size == 4 and ds[1][1:] == (1, -1)


# ---- renderings, user datasets, view sources --------------------------------------------------------

def test_renderings_are_validated_and_shown(disk):
    ds = disk.tagged_dataset(n=6, k=3)
    assert ds.renderings.shape == (6, 3, 3, 8, 8) and "renderings=3 per sample" in repr(ds)
    args = dict(images=ds.images, classes=ds.classes, mean=ds.mean, std=ds.std)
    with pytest.raises(TypeError, match=r"renderings must be a uint8 tensor \(N, K, C, H, W\) = \(6, K >= 2, 3, 8, 8\), "
                                        r"got torch.float32"):
        ImageDataset(ds.labels, renderings=ds.renderings.float(), **args)
    for bad in (ds.renderings[:, :1], ds.renderings[:5], ds.renderings[..., :4], ds.renderings[:, 0]):
        with pytest.raises(ValueError) as error:
            ImageDataset(ds.labels, renderings=bad, **args)
        assert str(error.value).endswith(f"(6, K >= 2, 3, 8, 8), got torch.uint8 of shape {tuple(bad.shape)}")
    with pytest.raises(TypeError, match=r"renderings must be .* got \[1, 2\] \(list\)"):
        ImageDataset(ds.labels, renderings=[1, 2], **args)


def test_from_dataset_reads_user_items_into_memory(disk):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 6, 6), dtype=torch.uint8)
    items = [(images[i], np.int64(i % 3)) for i in range(10)]
    ds = ImageDataset.from_dataset(items, split="test")
    assert torch.equal(ds.images, images) and ds.labels.tolist() == [i % 3 for i in range(10)]
    assert ds.classes == ["0", "1", "2"] and ds.domains is None and ds.split == "test" and ds.name == "list"
    x = images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert ds.mean == pytest.approx(x.mean(1).tolist()) and ds.std == pytest.approx(x.std(1).tolist())
    with_domains = ImageDataset.from_dataset([(images[i], i % 3, i % 2) for i in range(10)], like=ds)
    assert with_domains.domains.tolist() == [i % 2 for i in range(10)] and with_domains.domain_names == ["0", "1"]
    assert with_domains.mean == ds.mean and with_domains.std == ds.std
    assert ImageDataset.from_dataset(ds) is ds
    with pytest.raises(ValueError, match=r"images must have the shape \(3, 8, 8\) of the 'tagged' train split, got "
                                         r"\(3, 6, 6\)"):
        ImageDataset.from_dataset(ds, like=disk.tagged_dataset())


@pytest.mark.parametrize("items, error, message", [
    ([], ValueError, "dataset must hold at least one item, got an empty list"),
    ([torch.zeros(3, 4, 4, dtype=torch.uint8)], TypeError, r"dataset\[0\] must be a tuple \(image, label\)"),
    ([(torch.zeros(3, 4, 4), 0)], ValueError, r"dataset\[0\]\[0\] \(the image\) must be a uint8 tensor \(C, H, H\), got "
                                            r"torch.float32 of shape \(3, 4, 4\)"),
    ([(torch.zeros(3, 4, 4, dtype=torch.uint8), -1)], ValueError, r"dataset\[0\]\[1\] \(the label\) must be an int >= 0"),
    ([(torch.zeros(3, 4, 4, dtype=torch.uint8), 0), (torch.zeros(3, 5, 5, dtype=torch.uint8), 1)], ValueError,
     r"one shape \(C, H, H\), got shapes \[\(3, 4, 4\), \(3, 5, 5\)\]"),
    (5, TypeError, "dataset must be a map-style dataset"),
])
def test_from_dataset_rejects_bad_items(items, error, message):
    with pytest.raises(error, match=message):
        ImageDataset.from_dataset(items)


def test_fingerprint_follows_the_content(disk):
    a, b = disk.tagged_dataset(n=6), disk.tagged_dataset(n=6)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 16
    b.renderings[2, 1, 0, 0, 0] += 1
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() != disk.tagged_dataset(n=7).fingerprint()


def test_view_sources_render_distinct_renderings_and_corrupt_the_stated_fraction():
    n, k, batch, p = 50, 4, 2000, 0.3
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(0, n, (batch,), generator=generator)
    samples, renderings = draw_view_sources(index, n, 3, n_renderings=k, corrupt_pairs=p, generator=generator)
    assert samples.shape == renderings.shape == (3, batch)
    assert torch.equal(samples[0], index) and torch.equal(samples[1], samples[2])
    corrupt = samples[1] != index
    tolerance = 4 * (p * (1 - p) / batch) ** 0.5
    assert abs(corrupt.float().mean().item() - p) < tolerance
    assert set(samples[1][corrupt].tolist()) == set(range(n))  # partners range over every sample
    assert ((renderings >= 0) & (renderings < k)).all()
    assert (renderings[0] != renderings[1]).all() and (renderings[1] != renderings[2]).all()
    assert (renderings[0] != renderings[2]).all()
    assert torch.bincount(renderings[1], minlength=k).min() > batch / k * 0.8
    state = generator.get_state()
    samples, renderings = draw_view_sources(index, n, 2, generator=generator)
    assert torch.equal(samples, index.expand(2, batch)) and renderings is None
    assert torch.equal(generator.get_state(), state)  # nothing drawn without renderings and corruption


@pytest.mark.parametrize("corrupt_pairs", [0.0, 0.5])
def test_multiview_rendered_views_of_one_sample(disk, corrupt_pairs):
    base = disk.tagged_dataset(n=30, k=3)
    views = MultiViewDataset(base, lambda x: x.float() / 255, n_views=2, renderings=base.renderings,
                             corrupt_pairs=corrupt_pairs)
    torch.manual_seed(0)
    corrupt = 0
    for i in range(len(base)):
        stack, label, _ = views[i]
        sample, rendering = disk.tags(stack)
        assert sample[0] == i and label == i % 4 and rendering.tolist() != [255, 255]
        if sample[1] == i:
            assert rendering[0] != rendering[1]
        corrupt += int(sample[1] != i)
    assert (corrupt > 0) == (corrupt_pairs > 0)
    with pytest.raises(ValueError, match=r"renderings must have shape \(len\(base\) = 30, K >= n_views = 4"):
        MultiViewDataset(base, lambda x: x.float(), n_views=4, renderings=base.renderings)
    with pytest.raises(ValueError, match=r"corrupt_pairs must be a number in \[0, 1\), got 1.0"):
        MultiViewDataset(base, lambda x: x.float(), corrupt_pairs=1.0)
