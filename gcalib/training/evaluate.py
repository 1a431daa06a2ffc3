"""Honest evaluation of a frozen encoder: features extracted once, probes tuned on train, scored once on test.

* Features are extracted once from the frozen encoder: eval mode, ``torch.no_grad``, no augmentation
  (images are only scaled to [0, 1] and normalised with the dataset's mean and std).
* Linear probe: multinomial logistic regression on standardised train features; the inverse
  regularisation strength ``C`` is chosen on a held-out split of *train*, the probe is refit on all of
  train and reported once on test.
* kNN: cosine similarity, the ``k`` nearest train features vote with weights ``exp(sim/τ)``, τ = 0.07.
* Alignment ``E‖z − z⁺‖²`` and uniformity ``log E exp(−2‖z − z'‖²)`` on L2-normalised features
  (Wang & Isola, 2020).
* Domain accuracy: the same probe predicting domain labels; held-out-domain accuracy: the class probe
  trained on the other domains and tested on one domain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_ids, check_int, check_positive, check_real, check_sequence
from .data import MultiViewDataset
from .threads import iterate_loader

__all__ = [
    "ProbeResult",
    "DEFAULT_CS",
    "DEFAULT_KS",
    "extract_features",
    "extract_view_features",
    "linear_probe",
    "knn_accuracy",
    "alignment",
    "uniformity",
    "domain_accuracy",
    "heldout_domain_accuracy",
    "evaluate_features",
    "evaluate_encoder",
]

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
DEFAULT_KS = (20, 200)  # kNN neighbourhood sizes reported by default
Device = Union[str, torch.device]


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of :func:`linear_probe`.

    Parameters
    ----------
    accuracy : float
        Test accuracy of the probe refit on all of train with the selected ``C``.
    C : float
        The selected inverse regularisation strength.
    val_accuracy : float
        Accuracy of the selected ``C`` on the held-out part of train.
    """

    accuracy: float
    C: float
    val_accuracy: float


def _normaliser(dataset) -> Callable[[torch.Tensor], torch.Tensor]:
    for attr in ("mean", "std"):
        if not hasattr(dataset, attr):
            raise TypeError(
                f"dataset must expose per-channel `mean` and `std` (a gcalib.training.data.ImageDataset), "
                f"got {type(dataset).__name__} without `{attr}`"
            )
    mean = torch.tensor(dataset.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std, dtype=torch.float32).view(1, -1, 1, 1)

    def normalise(images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"dataset images must be uint8 tensors, got dtype {images.dtype}")
        return (images.float() / 255.0 - mean) / std

    return normalise


def _batches(dataset, batch_size: int) -> Iterable[torch.Tensor]:
    images = getattr(dataset, "images", None)
    if images is not None:
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in loader:
        yield batch[0]


class _FrozenEval:
    """Context: eval mode and no gradients; restores the previous mode on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> nn.Module:
        self.was_training = self.module.training
        self.module.eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        return self.module

    def __exit__(self, *exc) -> None:
        self.no_grad.__exit__(*exc)
        self.module.train(self.was_training)


def extract_features(
    encoder: nn.Module, dataset, batch_size: int = 256, device: Device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Features of every image of ``dataset``, in order, from the frozen encoder without augmentation.

    The encoder runs in eval mode under ``torch.no_grad`` (its mode is restored afterwards) on the images
    scaled to [0, 1] and normalised with the dataset's ``mean`` and ``std``.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps images (B, C, H, W) to features.
    dataset : gcalib.training.data.ImageDataset
        uint8 images with ``labels``, ``mean``, ``std`` and optional ``domains``.
    batch_size : int, default 256
        Images per forward pass.
    device : str or torch.device, default "cpu"
        Where the encoder runs.

    Returns
    -------
    features : torch.Tensor
        (N, D) fp32 on the CPU.
    labels : torch.Tensor
        (N,) int64 class ids.
    domains : torch.Tensor or None
        (N,) int64 domain ids, ``None`` when the dataset has none.

    Raises
    ------
    TypeError
        When the dataset lacks ``mean``/``std`` or its images are not uint8.
    ValueError
        When the dataset is empty or ``batch_size`` < 1.
    """
    check_int("batch_size", batch_size, 1)
    normalise = _normaliser(dataset)
    chunks = []
    with _FrozenEval(encoder):
        for images in _batches(dataset, batch_size):
            chunks.append(encoder(normalise(images).to(device)).float().flatten(1).cpu())
    if not chunks:
        raise ValueError("dataset is empty: no features to extract")
    labels = torch.as_tensor(dataset.labels, dtype=torch.long)
    domains = getattr(dataset, "domains", None)
    return torch.cat(chunks), labels, None if domains is None else torch.as_tensor(domains, dtype=torch.long)


def extract_view_features(
    encoder: nn.Module,
    dataset,
    view_transform: Callable[[torch.Tensor], torch.Tensor],
    n_views: int = 2,
    batch_size: int = 256,
    device: Device = "cpu",
    seed: int = 0,
    workers: int = 0,
    rendered: bool = False,
) -> torch.Tensor:
    """Features of ``n_views`` augmented views of every image of ``dataset``.

    The random draws happen under ``seed`` (in ``workers`` loader processes seeded from it, or in this
    process inside a forked RNG), so the caller's RNG state is unchanged.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps images (B, C, H, W) to features; run in eval mode without gradients.
    dataset : gcalib.training.data.ImageDataset
        The images.
    view_transform : callable
        A random view: uint8 image (C, H, W) → normalised float image
        (:func:`gcalib.training.augment.make_view_transform`).
    n_views : int, default 2
        Views per image.
    batch_size : int, default 256
        Images per forward pass.
    device : str or torch.device, default "cpu"
        Where the encoder runs.
    seed : int, default 0
        Seed of the view draws.
    workers : int, default 0
        DataLoader worker processes.
    rendered : bool, default False
        Draw the views from ``n_views`` distinct renderings of each sample (``dataset.renderings``), each
        augmented, as in pretraining with ``views="rendered"``.

    Returns
    -------
    torch.Tensor
        (n_views, N, D) fp32 on the CPU.

    Raises
    ------
    ValueError
        When ``rendered`` is set and the dataset has no renderings, or ``batch_size`` < 1.
    """
    check_int("batch_size", batch_size, 1)
    renderings = getattr(dataset, "renderings", None) if rendered else None
    if rendered and renderings is None:
        raise ValueError(f"rendered=True needs a dataset with renderings (N, K >= {n_views}, C, H, W), got one "
                         f"without: {dataset!r}")
    views = MultiViewDataset(dataset, view_transform, n_views=n_views, renderings=renderings)
    loader = torch.utils.data.DataLoader(views, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         generator=torch.Generator().manual_seed(seed))
    chunks = []
    with torch.random.fork_rng(devices=[]), _FrozenEval(encoder):
        torch.manual_seed(seed)
        for batch, _, _ in iterate_loader(loader):
            b, v = batch.shape[:2]
            flat = batch.transpose(0, 1).reshape(v * b, *batch.shape[2:]).to(device)
            chunks.append(encoder(flat).float().flatten(1).cpu().view(v, b, -1))
    return torch.cat(chunks, dim=1)


def _as_features(name: str, x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[0] == 0 or not x.is_floating_point():
        raise ValueError(f"{name} must be a non-empty float tensor of shape (N, D), got shape {tuple(x.shape)} "
                         f"and dtype {x.dtype}")
    if not torch.isfinite(x).all():
        row, col = (int(i) for i in (~torch.isfinite(x)).nonzero()[0])
        raise ValueError(f"{name} must be finite, got NaN or inf values: {name}[{row}, {col}] = {float(x[row, col])}")
    return x.detach().cpu()


def _as_labels(name: str, y, n: int) -> torch.Tensor:
    return check_ids(name, y, what="one class id per sample", length=n, min_length=0,
                     nonnegative=True).detach().cpu().long()


def _check_pair(train_features, train_labels, test_features, test_labels):
    xtr = _as_features("train_features", train_features)
    xte = _as_features("test_features", test_features)
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train_features and test_features must have the same width, "
                         f"got {xtr.shape[1]} and {xte.shape[1]}")
    ytr, yte = _as_labels("train_labels", train_labels, len(xtr)), _as_labels("test_labels", test_labels, len(xte))
    return xtr, ytr, xte, yte


# Below this many feature entries a single BLAS thread fits the probe faster (many times so on a busy machine).
_SINGLE_THREAD_PROBE = 4_000_000


def _fit_probe(x: np.ndarray, y: np.ndarray, C: float, max_iter: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1 if x.size < _SINGLE_THREAD_PROBE else None):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(x, y)


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    Cs: Sequence[float] = DEFAULT_CS,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 1000,
) -> ProbeResult:
    """Multinomial logistic regression on standardised features, ``C`` selected on a split of train.

    A fraction ``val_fraction`` of the train features (stratified when every class has two or more
    samples) is held out; for each ``C`` in ``Cs`` a probe (standardiser + logistic regression) is fit on
    the rest and scored on the held-out part. The best ``C`` (the first of ``Cs`` on ties) is refit on all
    of train and scored once on test. Only features are used, so the encoder cannot change.

    Parameters
    ----------
    train_features, test_features : torch.Tensor or array_like
        Finite float features (N, D) of the same width D.
    train_labels, test_labels : torch.Tensor or array_like
        Non-negative integer class ids (N,); train needs at least two classes.
    Cs : sequence of float, default :data:`DEFAULT_CS`
        Candidate inverse regularisation strengths, each > 0.
    val_fraction : float, default 0.2
        Fraction of train held out for selecting ``C``, in (0, 1).
    seed : int, default 0
        Seed of the held-out split.
    max_iter : int, default 1000
        Iterations of the logistic regression solver.

    Returns
    -------
    ProbeResult

    Raises
    ------
    TypeError
        When labels are not integer tensors.
    ValueError
        For features that are not finite 2-d floats, mismatched shapes, negative labels, a single class,
        or out-of-range ``Cs``/``val_fraction``.
    """
    from sklearn.model_selection import train_test_split

    xtr, ytr, xte, yte = _check_pair(train_features, train_labels, test_features, test_labels)
    Cs = tuple(check_sequence("Cs", Cs, check_positive))
    check_real("val_fraction", val_fraction, lambda v: 0 < v < 1, "a number in (0, 1)")
    classes, counts = torch.unique(ytr, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"train_labels must contain at least two classes, got {classes.tolist()}")
    x, y = xtr.double().numpy(), ytr.numpy()
    stratify = y if int(counts.min()) >= 2 else None
    x_fit, x_val, y_fit, y_val = train_test_split(x, y, test_size=val_fraction, random_state=seed, stratify=stratify)
    if len(np.unique(y_fit)) < 2:
        raise ValueError("the train split used for selecting C holds a single class; provide more train samples")
    scores = [float((_fit_probe(x_fit, y_fit, c, max_iter).predict(x_val) == y_val).mean()) for c in Cs]
    best = int(np.argmax(scores))
    probe = _fit_probe(x, y, Cs[best], max_iter)
    accuracy = float((probe.predict(xte.double().numpy()) == yte.numpy()).mean())
    return ProbeResult(accuracy=accuracy, C=float(Cs[best]), val_accuracy=scores[best])


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> float:
    """Weighted cosine kNN accuracy: a test point takes the class maximising ``Σ_{i∈topk} exp(sim_i/τ)·[y_i = c]``.

    Parameters
    ----------
    train_features, test_features : torch.Tensor or array_like
        Finite float features (N, D) of the same width D.
    train_labels, test_labels : torch.Tensor or array_like
        Non-negative integer class ids (N,).
    k : int, default 20
        Neighbours that vote, ``1 <= k <=`` the number of train features.
    temperature : float, default 0.07
        τ of the vote weights, > 0.
    chunk_size : int, default 1024
        Test points scored at once.

    Returns
    -------
    float
        The fraction of test points classified correctly.

    Raises
    ------
    TypeError
        When labels are not integer tensors.
    ValueError
        For bad features or labels, or ``k``, ``temperature`` or ``chunk_size`` out of range.

    Examples
    --------
    >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> knn_accuracy(train, torch.tensor([0, 0, 1, 1]), torch.tensor([[1.0, 0.2]]), torch.tensor([0]), k=2)
    1.0
    """
    xtr, ytr, xte, yte = _check_pair(train_features, train_labels, test_features, test_labels)
    check_int("k", k, 1, len(xtr))
    check_positive("temperature", temperature)
    check_int("chunk_size", chunk_size, 1)
    xtr, xte = F.normalize(xtr.float(), dim=1), F.normalize(xte.float(), dim=1)
    num_classes = int(max(ytr.max(), yte.max())) + 1
    correct = 0
    for start in range(0, len(xte), chunk_size):
        sims, idx = (xte[start : start + chunk_size] @ xtr.T).topk(k, dim=1)
        # Subtracting the row maximum leaves the argmax unchanged and keeps exp() finite.
        weights = ((sims - sims[:, :1]) / temperature).exp()
        votes = torch.zeros(len(sims), num_classes).scatter_add_(1, ytr[idx], weights)
        correct += int((votes.argmax(1) == yte[start : start + chunk_size]).sum())
    return correct / len(xte)


def alignment(z1, z2) -> float:
    """Alignment ``E‖z₁ − z₂‖²`` over rows, after L2-normalising each row (Wang & Isola, 2020).

    Parameters
    ----------
    z1, z2 : torch.Tensor or array_like
        Finite float features (N, D) of the same shape; row i of each is a positive pair.

    Returns
    -------
    float
        The mean squared distance, in [0, 4].

    Raises
    ------
    ValueError
        When the inputs are not finite 2-d float arrays of the same shape.

    Examples
    --------
    >>> alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    2.0
    """
    a, b = _as_features("z1", z1), _as_features("z2", z2)
    if a.shape != b.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = F.normalize(a.double(), dim=1), F.normalize(b.double(), dim=1)
    return float((a - b).pow(2).sum(1).mean())


def uniformity(z, t: float = 2.0, chunk_size: int = 2048) -> float:
    """Uniformity ``log mean_{i≠j} exp(−t‖z_i − z_j‖²)`` over distinct rows, after L2-normalising each row.

    Parameters
    ----------
    z : torch.Tensor or array_like
        Finite float features (N, D) with N >= 2.
    t : float, default 2.0
        Scale of the Gaussian potential, > 0.
    chunk_size : int, default 2048
        Rows compared at once.

    Returns
    -------
    float
        The uniformity, in [−4t, 0] (lower: more uniform on the sphere).

    Raises
    ------
    ValueError
        When ``z`` has fewer than two rows or is not finite, or ``t``/``chunk_size`` are out of range.

    Examples
    --------
    >>> uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    -8.0
    """
    x = _as_features("z", z)
    if len(x) < 2:
        raise ValueError(f"z must have at least two rows, got {len(x)}")
    check_positive("t", t)
    check_int("chunk_size", chunk_size, 1)
    x = F.normalize(x.double(), dim=1)
    n = len(x)
    parts = []
    for start in range(0, n, chunk_size):
        block = x[start : start + chunk_size]
        # ‖z_i − z_j‖² = 2 − 2⟨z_i, z_j⟩ on the unit sphere.
        logits = -t * (2.0 - 2.0 * block @ x.T)
        rows = torch.arange(len(block))
        logits[rows, rows + start] = -math.inf
        parts.append(torch.logsumexp(logits, dim=1))
    return float(torch.logsumexp(torch.cat(parts), dim=0) - math.log(n * (n - 1)))


def domain_accuracy(train_features, train_domains, test_features, test_domains, **probe_options) -> ProbeResult:
    """The linear probe of :func:`linear_probe` predicting domain labels instead of classes.

    Parameters
    ----------
    train_features, test_features : torch.Tensor or array_like
        Features (N, D).
    train_domains, test_domains : torch.Tensor or array_like
        Non-negative integer domain ids (N,).
    **probe_options
        ``Cs``, ``val_fraction``, ``seed``, ``max_iter`` of :func:`linear_probe`.

    Returns
    -------
    ProbeResult

    Raises
    ------
    TypeError, ValueError
        As :func:`linear_probe`.
    """
    return linear_probe(train_features, train_domains, test_features, test_domains, **probe_options)


def heldout_domain_accuracy(
    train_features, train_labels, train_domains, test_features, test_labels, test_domains, domain: int, **probe_options
) -> ProbeResult:
    """Accuracy on one domain of the class probe trained on the other domains.

    The probe (:func:`linear_probe`) is trained on the train samples *not* in ``domain`` and tested on the
    test samples *in* it.

    Parameters
    ----------
    train_features, test_features : torch.Tensor or array_like
        Features (N, D).
    train_labels, test_labels : torch.Tensor or array_like
        Integer class ids (N,).
    train_domains, test_domains : torch.Tensor or array_like
        Non-negative integer domain ids (N,).
    domain : int
        The held-out domain id.
    **probe_options
        ``Cs``, ``val_fraction``, ``seed``, ``max_iter`` of :func:`linear_probe`.

    Returns
    -------
    ProbeResult

    Raises
    ------
    ValueError
        When no test sample is in ``domain`` or every train sample is, and as :func:`linear_probe`.
    """
    tr_dom = _as_labels("train_domains", train_domains, len(train_features))
    te_dom = _as_labels("test_domains", test_domains, len(test_features))
    keep_tr, keep_te = tr_dom != domain, te_dom == domain
    if not bool(keep_te.any()):
        raise ValueError(f"domain {domain!r} has no test samples; test domains are {torch.unique(te_dom).tolist()}")
    if not bool(keep_tr.any()):
        raise ValueError(f"every train sample is in domain {domain!r}: nothing left to train the probe on")
    tr_labels = torch.as_tensor(train_labels)
    te_labels = torch.as_tensor(test_labels)
    return linear_probe(
        torch.as_tensor(train_features)[keep_tr], tr_labels[keep_tr],
        torch.as_tensor(test_features)[keep_te], te_labels[keep_te], **probe_options,
    )


def evaluate_features(
    train: tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]],
    test: tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]],
    *,
    test_views: Optional[torch.Tensor] = None,
    ks: Optional[Sequence[int]] = None,
    domain_names: Optional[Sequence[str]] = None,
    seed: int = 0,
    Cs: Sequence[float] = DEFAULT_CS,
) -> dict:
    """All metrics from extracted features ``(features, labels, domains)`` of train and test.

    Parameters
    ----------
    train, test : tuple
        ``(features (N, D), labels (N,), domains (N,) or None)``, as :func:`extract_features` returns them.
    test_views : torch.Tensor, optional
        Features (V >= 2, N, D) of augmented views of the test images (:func:`extract_view_features`); the
        alignment is measured between views 1 and 2.
    ks : sequence of int, optional
        The k of the kNN accuracies; by default the k of :data:`DEFAULT_KS` that do not exceed the number of
        train features (or that number, when it is below all of them). Explicit ``ks`` must all fit.
    domain_names : sequence of str, optional
        Names of the domain ids, for ``heldout_domain_acc_per_domain`` (default: the ids as str).
    seed : int, default 0
        Seed of the probes' held-out splits.
    Cs : sequence of float, default :data:`DEFAULT_CS`
        The grid from which every probe selects its ``C`` (:func:`linear_probe`).

    Returns
    -------
    dict
        ``linear_acc``, ``linear_C``, ``knn_acc`` (first k), ``knn_acc_k{k}`` for each k, ``uniformity``
        (test features), ``alignment`` when ``test_views`` is given, and, when both splits carry domain ids,
        ``heldout_domain_acc`` (mean over the test domains of the class probe trained on the other domains)
        with ``heldout_domain_acc_per_domain``, and ``domain_acc`` when train has two or more domains and
        every test domain is among them.

    Raises
    ------
    ValueError
        When ``ks`` is empty or a k exceeds the train features, and as :func:`linear_probe`.
    """
    (xtr, ytr, dtr), (xte, yte, dte) = train, test
    probe = linear_probe(xtr, ytr, xte, yte, seed=seed, Cs=Cs)
    metrics: dict = {"linear_acc": probe.accuracy, "linear_C": probe.C}
    ks = (tuple(k for k in DEFAULT_KS if k <= len(xtr)) or (len(xtr),)) if ks is None else tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one k for the kNN accuracy, got ()")
    for k in ks:
        metrics[f"knn_acc_k{k}"] = knn_accuracy(xtr, ytr, xte, yte, k=k)
    metrics["knn_acc"] = metrics[f"knn_acc_k{ks[0]}"]
    if test_views is not None:
        metrics["alignment"] = alignment(test_views[0], test_views[1])
    metrics["uniformity"] = uniformity(xte)
    if dtr is not None and dte is not None:
        train_domains, test_domains = set(torch.unique(dtr).tolist()), set(torch.unique(dte).tolist())
        # A domain probe can only be scored on domains it was trained on (not so for a held-out-domain split).
        if len(train_domains) > 1 and test_domains <= train_domains:
            metrics["domain_acc"] = domain_accuracy(xtr, dtr, xte, dte, seed=seed, Cs=Cs).accuracy
        per_domain = {}
        for d in sorted(test_domains):
            if train_domains - {d}:
                name = domain_names[d] if domain_names is not None else str(d)
                per_domain[name] = heldout_domain_accuracy(xtr, ytr, dtr, xte, yte, dte, d, seed=seed,
                                                           Cs=Cs).accuracy
        if per_domain:
            metrics["heldout_domain_acc"] = float(np.mean(list(per_domain.values())))
            metrics["heldout_domain_acc_per_domain"] = per_domain
    return metrics


def evaluate_encoder(
    encoder: nn.Module,
    train_set,
    test_set,
    *,
    view_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ks: Optional[Sequence[int]] = None,
    batch_size: int = 256,
    device: Device = "cpu",
    seed: int = 0,
    workers: int = 0,
    rendered: bool = False,
    Cs: Sequence[float] = DEFAULT_CS,
) -> dict:
    """Extract the frozen encoder's features of both splits and return :func:`evaluate_features`' metrics.

    Parameters
    ----------
    encoder : torch.nn.Module
        The encoder to evaluate (its mode is restored afterwards).
    train_set, test_set : gcalib.training.data.ImageDataset
        The splits the probes are trained and scored on.
    view_transform : callable, optional
        With a view transform, two augmented views of every test image are encoded for the alignment
        (:func:`extract_view_features`).
    ks : sequence of int, optional
        The k of the kNN accuracies (see :func:`evaluate_features`).
    batch_size : int, default 256
        Images per forward pass.
    device : str or torch.device, default "cpu"
        Where the encoder runs.
    seed : int, default 0
        Seed of the view draws and of the probes' held-out splits.
    workers : int, default 0
        DataLoader worker processes for the views.
    rendered : bool, default False
        Draw the two views from two renderings of each test sample (:func:`extract_view_features`).
    Cs : sequence of float, default :data:`DEFAULT_CS`
        The probes' grid of ``C``.

    Returns
    -------
    dict
        The metrics of :func:`evaluate_features`.

    Raises
    ------
    TypeError, ValueError
        As :func:`extract_features`, :func:`extract_view_features` and :func:`evaluate_features`.
    """
    train = extract_features(encoder, train_set, batch_size, device)
    test = extract_features(encoder, test_set, batch_size, device)
    views = None
    if view_transform is not None:
        views = extract_view_features(encoder, test_set, view_transform, 2, batch_size, device, seed, workers,
                                      rendered)
    return evaluate_features(
        train, test, test_views=views, ks=ks, domain_names=getattr(test_set, "domain_names", None), seed=seed, Cs=Cs
    )
