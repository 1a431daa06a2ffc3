import copy
import math

import pytest
import torch
from torch import nn

from gcalib.training.augment import make_view_transform
from gcalib.training.data import ImageDataset
from gcalib.training.evaluate import (alignment, domain_accuracy, evaluate_encoder, evaluate_features, extract_features,
                             extract_view_features, heldout_domain_accuracy, knn_accuracy, linear_probe,
                             uniformity)
from gcalib.training.models import make_encoder


def clusters(n_per_class, n_classes, dim, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 3
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(len(labels), dim, generator=g), labels


def tiny_dataset(n=24, domains=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 3
    extra = dict(domains=torch.arange(n) // (n // 2), domain_names=["a", "b"]) if domains else {}
    return ImageDataset(labels, images=images, classes=["0", "1", "2"], mean=(0.5, 0.4, 0.3),
                        std=(0.2, 0.25, 0.3), **extra)


# ---- linear probe and kNN ------------------------------------------------------------------------

def test_separable_features_give_near_perfect_probe_and_knn():
    xtr, ytr = clusters(60, 4, 16, 0.3, seed=0)
    xte, yte = clusters(30, 4, 16, 0.3, seed=0)
    xte = xte + 0.05 * torch.randn_like(xte)
    probe = linear_probe(xtr, ytr, xte, yte)
    assert probe.accuracy >= 0.99 and probe.val_accuracy >= 0.99
    assert knn_accuracy(xtr, ytr, xte, yte, k=20) >= 0.99
    assert knn_accuracy(xtr, ytr, xte, yte, k=200) >= 0.99


def test_random_labels_give_chance_accuracy():
    g = torch.Generator().manual_seed(1)
    xtr, xte = torch.randn(800, 8, generator=g), torch.randn(800, 8, generator=g)
    ytr, yte = torch.randint(0, 4, (800,), generator=g), torch.randint(0, 4, (800,), generator=g)
    # Chance is 0.25; the standard error over 800 test points is 0.015.
    assert abs(linear_probe(xtr, ytr, xte, yte).accuracy - 0.25) < 0.08
    assert abs(knn_accuracy(xtr, ytr, xte, yte, k=20) - 0.25) < 0.08


def test_probe_selects_C_on_train_split_only():
    xtr, ytr = clusters(40, 3, 6, 1.5, seed=2)
    xte, yte = clusters(40, 3, 6, 1.5, seed=2)
    a = linear_probe(xtr, ytr, xte, yte, Cs=(0.01, 1.0), seed=3)
    # Selection never sees the test labels: scrambling them changes the accuracy, not the chosen C.
    b = linear_probe(xtr, ytr, xte, yte.roll(1), Cs=(0.01, 1.0), seed=3)
    assert a.C == b.C and a.C in (0.01, 1.0) and a.val_accuracy == b.val_accuracy
    assert a.accuracy != b.accuracy


def test_knn_votes_are_temperature_weighted():
    # One class-0 neighbour at similarity 1, two class-1 neighbours at cosine 0.8.
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6]])
    labels = torch.tensor([0, 1, 1])
    test = torch.tensor([[1.0, 0.0]])
    # exp(1/0.07) > 2·exp(0.8/0.07): the weighted vote picks class 0 although class 1 has the majority.
    assert knn_accuracy(train, labels, test, torch.tensor([0]), k=3) == 1.0
    # With a huge temperature the weights are ~equal and the majority wins.
    assert knn_accuracy(train, labels, test, torch.tensor([1]), k=3, temperature=100.0) == 1.0
    # Cosine: scaling a feature vector does not change anything.
    assert knn_accuracy(train * torch.tensor([[5.0], [0.1], [2.0]]), labels, 7 * test, torch.tensor([0]), k=3) == 1.0


def test_knn_and_probe_errors():
    x, y = clusters(5, 2, 3, 0.1, seed=0)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 10\], got 11"):
        knn_accuracy(x, y, x, y, k=11)
    with pytest.raises(ValueError, match="temperature"):
        knn_accuracy(x, y, x, y, k=3, temperature=0.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        knn_accuracy(x.clone().fill_(float("nan")), y, x, y, k=3)
    with pytest.raises(ValueError, match="same width"):
        linear_probe(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match=r"train_labels must hold one class id per sample \(10\), got 5"):
        linear_probe(x, y[:5], x, y)
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe(x, torch.zeros(10, dtype=torch.long), x, y)
    with pytest.raises(ValueError, match="Cs"):
        linear_probe(x, y, x, y, Cs=(0.0,))
    with pytest.raises(TypeError, match="train_labels must be an integer tensor"):
        linear_probe(x, y.float(), x, y)


# ---- alignment and uniformity -----------------------------------------------------------------------

def test_alignment_closed_forms():
    e1, e2 = torch.eye(3)[:1], torch.eye(3)[1:2]
    assert alignment(e1, e2) == pytest.approx(2.0)
    assert alignment(e1, -e1) == pytest.approx(4.0)
    assert alignment(e1, 5 * e1) == pytest.approx(0.0)  # rows are L2-normalised first
    theta = torch.tensor([0.3, 1.1])
    a = torch.stack([torch.ones(2), torch.zeros(2)], 1)
    b = torch.stack([theta.cos(), theta.sin()], 1)
    assert alignment(a, b) == pytest.approx(float((2 - 2 * theta.cos()).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        alignment(a, b[:1])


def test_uniformity_closed_forms():
    assert uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
    triangle = torch.stack([angles.cos(), angles.sin()], 1)
    assert uniformity(triangle) == pytest.approx(-6.0, abs=1e-6)  # ‖z − z'‖² = 3
    # Regular simplex of 4 points: ‖z − z'‖² = 2 + 2/3.
    simplex = torch.eye(4) - 0.25
    assert uniformity(simplex) == pytest.approx(-2 * (2 + 2 / 3), abs=1e-6)
    # Duplicates count: pairs (0,1) at distance 0, (0,2), (1,2) at ‖·‖² = 2.
    dup = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    assert uniformity(dup) == pytest.approx(math.log((1 + 2 * math.exp(-4)) / 3))
    assert uniformity(triangle, t=1.0) == pytest.approx(-3.0, abs=1e-6)


def test_uniformity_matches_pdist_reference_and_chunking():
    z = torch.randn(37, 5, generator=torch.Generator().manual_seed(0))
    zn = nn.functional.normalize(z.double(), dim=1)
    reference = torch.pdist(zn, p=2).pow(2).mul(-2).exp().mean().log().item()
    assert uniformity(z) == pytest.approx(reference, rel=1e-10)
    assert uniformity(z, chunk_size=4) == pytest.approx(reference, rel=1e-10)
    with pytest.raises(ValueError, match="at least two rows"):
        uniformity(z[:1])


# ---- domains --------------------------------------------------------------------------------------

def test_domain_and_heldout_domain_accuracy():
    g = torch.Generator().manual_seed(0)
    n = 400
    labels, domains = torch.arange(n) % 4, (torch.arange(n) // 4) % 2
    # Dimensions 0-3: one-hot class; dimension 4: domain. Plus small noise.
    features = torch.cat([nn.functional.one_hot(labels, 4).float(), domains[:, None].float()], 1)
    features = features + 0.1 * torch.randn(n, 5, generator=g)
    tr, te = slice(0, 300), slice(300, None)
    assert domain_accuracy(features[tr], domains[tr], features[te], domains[te]).accuracy >= 0.98
    held = heldout_domain_accuracy(features[tr], labels[tr], domains[tr], features[te], labels[te], domains[te], 1)
    assert held.accuracy >= 0.98
    with pytest.raises(ValueError, match="domain 7 has no test samples"):
        heldout_domain_accuracy(features[tr], labels[tr], domains[tr], features[te], labels[te], domains[te], 7)


def test_heldout_domain_probe_uses_only_other_domains():
    # Class signal flips sign between domains: a probe trained on domain 0 fails on domain 1.
    g = torch.Generator().manual_seed(0)
    n = 400
    labels, domains = torch.arange(n) % 2, (torch.arange(n) // 2) % 2
    sign = 1 - 2 * domains.float()
    features = torch.stack([sign * (2 * labels.float() - 1), torch.randn(n, generator=g)], 1)
    tr, te = slice(0, 300), slice(300, None)
    held = heldout_domain_accuracy(features[tr], labels[tr], domains[tr], features[te], labels[te], domains[te], 1)
    assert held.accuracy <= 0.02


# ---- feature extraction from a frozen encoder ---------------------------------------------------------

def test_extract_features_is_normalised_pixels_for_flatten():
    ds = tiny_dataset()
    feats, labels, domains = extract_features(nn.Flatten(), ds, batch_size=5)
    mean = torch.tensor(ds.mean).view(1, 3, 1, 1)
    std = torch.tensor(ds.std).view(1, 3, 1, 1)
    expected = ((ds.images.float() / 255 - mean) / std).flatten(1)
    torch.testing.assert_close(feats, expected)
    assert torch.equal(labels, ds.labels) and domains is None


def test_probe_and_extraction_never_update_the_encoder():
    torch.manual_seed(0)
    encoder = make_encoder("small_cnn").train()
    before = copy.deepcopy(encoder.state_dict())
    ds = tiny_dataset(n=30)
    view = make_view_transform("simclr", 16, ds.mean, ds.std)
    metrics = evaluate_encoder(encoder, ds, tiny_dataset(n=30, seed=1), view_transform=view, ks=(3,))
    assert {"linear_acc", "knn_acc", "alignment", "uniformity"} <= set(metrics)
    after = encoder.state_dict()
    # Weights and BatchNorm running statistics (which a forward pass in train mode would move).
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert encoder.training, "the encoder's mode is restored"
    assert all(p.grad is None for p in encoder.parameters())


def test_extract_view_features_is_seeded_and_leaves_global_rng():
    ds = tiny_dataset(n=10)
    view = make_view_transform("simclr", 16, ds.mean, ds.std)
    state = torch.get_rng_state()
    a = extract_view_features(nn.Flatten(), ds, view, n_views=3, batch_size=4, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = extract_view_features(nn.Flatten(), ds, view, n_views=3, batch_size=4, seed=5)
    c = extract_view_features(nn.Flatten(), ds, view, n_views=3, batch_size=4, seed=6)
    assert a.shape == (3, 10, 3 * 16 * 16)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])


def test_evaluate_features_reports_domain_metrics_by_name():
    ds_tr, ds_te = tiny_dataset(n=40, domains=True), tiny_dataset(n=40, domains=True, seed=1)
    metrics = evaluate_features(extract_features(nn.Flatten(), ds_tr), extract_features(nn.Flatten(), ds_te),
                                ks=(3, 5), domain_names=ds_te.domain_names)
    assert {"domain_acc", "heldout_domain_acc", "knn_acc_k3", "knn_acc_k5"} <= set(metrics)
    assert metrics["knn_acc"] == metrics["knn_acc_k3"]
    assert set(metrics["heldout_domain_acc_per_domain"]) == {"a", "b"}


@pytest.mark.parametrize("n_train, expected_ks", [(40, (20,)), (250, (20, 200)), (12, (12,))])
def test_default_knn_ks_fit_the_train_split(n_train, expected_ks):
    train = extract_features(nn.Flatten(), tiny_dataset(n=n_train))
    test = extract_features(nn.Flatten(), tiny_dataset(n=10, seed=1))
    metrics = evaluate_features(train, test)
    assert sorted(k for k in metrics if k.startswith("knn_acc_k")) == [f"knn_acc_k{k}" for k in expected_ks]
    assert metrics["knn_acc"] == metrics[f"knn_acc_k{expected_ks[0]}"]


def test_explicit_knn_k_larger_than_the_train_split_is_an_error():
    train = extract_features(nn.Flatten(), tiny_dataset(n=40))
    test = extract_features(nn.Flatten(), tiny_dataset(n=10, seed=1))
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 40\], got 200"):
        evaluate_features(train, test, ks=(20, 200))


def test_extract_features_errors():
    with pytest.raises(TypeError, match="mean"):
        extract_features(nn.Flatten(), torch.utils.data.TensorDataset(torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(nn.Flatten(), tiny_dataset(), batch_size=0)


def test_holdout_split_reports_heldout_accuracy_but_no_domain_probe():
    ds_tr = tiny_dataset(n=40, domains=True)
    ds_te = tiny_dataset(n=40, domains=True, seed=1)
    keep = ds_te.domains == 1
    held = ImageDataset(ds_te.labels[keep], images=ds_te.images[keep], classes=ds_te.classes, mean=ds_te.mean,
                        std=ds_te.std, domains=ds_te.domains[keep], domain_names=ds_te.domain_names)
    train_only_a = ImageDataset(ds_tr.labels[ds_tr.domains == 0], images=ds_tr.images[ds_tr.domains == 0],
                                classes=ds_tr.classes, mean=ds_tr.mean, std=ds_tr.std,
                                domains=ds_tr.domains[ds_tr.domains == 0], domain_names=ds_tr.domain_names)
    metrics = evaluate_features(extract_features(nn.Flatten(), train_only_a), extract_features(nn.Flatten(), held),
                                ks=(3,), domain_names=held.domain_names)
    assert "domain_acc" not in metrics
    assert set(metrics["heldout_domain_acc_per_domain"]) == {"b"}
    assert metrics["heldout_domain_acc"] == metrics["linear_acc"]  # the same probe on the same split


def test_rendered_view_features_are_two_distinct_renderings_of_each_sample(disk):

    dataset = disk.tagged_dataset(n=30, k=3)
    view = make_view_transform("none", dataset.image_size, dataset.mean, dataset.std)

    class FirstPixel(nn.Module):
        """The (sample, rendering) tag of each view, read from its first pixel."""

        def forward(self, x):
            return (x[:, :2, 0, 0] * 255).round()

    views = extract_view_features(FirstPixel(), dataset, view, 2, batch_size=7, seed=3, rendered=True)
    assert views.shape == (2, 30, 2)
    assert torch.equal(views[0, :, 0], torch.arange(30.0)) and torch.equal(views[1, :, 0], torch.arange(30.0))
    assert (views[0, :, 1] != views[1, :, 1]).all() and (views[:, :, 1] < 3).all()
    again = extract_view_features(FirstPixel(), dataset, view, 2, batch_size=30, seed=3, rendered=True)
    assert torch.equal(views, again)
    plain = extract_view_features(FirstPixel(), dataset, view, 2, seed=3)
    assert (plain[:, :, 1] == 255).all()  # without rendered: the evaluation image twice
    without = ImageDataset(dataset.labels, images=dataset.images, classes=dataset.classes, mean=dataset.mean,
                           std=dataset.std)
    with pytest.raises(ValueError, match="rendered=True needs a dataset with renderings"):
        extract_view_features(FirstPixel(), without, view, 2, rendered=True)
