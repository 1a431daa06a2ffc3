"""Helpers behind the pretraining notebooks (04–06), tested in ``tests/notebook/test_insight.py``.

* :func:`run_directory`: where a run lives, ``root/<name>-<digest>``, the digest covering every config
  field that changes the computed numbers, so that ``pretrain(replace(config, out_dir=run_directory(...),
  resume=True))`` is *load-or-train*: a finished run is loaded (only re-evaluated), an interrupted one
  continues from its newest checkpoint, a changed config gets a fresh directory.
* :func:`project_images`: encoder + projector outputs of V blocked views without gradients, with the
  running BatchNorm statistics (evaluation) or the batch's own (what the loss saw in a training step).
* :func:`positive_pair_mass`: how much mass the loss's (unbalanced) Sinkhorn plan puts on each sample's
  positive pairs, and how much each row sends at all; :func:`relative_pull`: how hard a gradient step of a
  loss pulls each positive pair together; :func:`broken_pairs_table`: both, for broken and intact pairs.
* :func:`denormalise`, :func:`plot_image_grid`: normalised views back to pictures.
* :func:`draw_views`, :func:`plot_view_pairs`: the views of a batch as the trainer draws them (augmented
  images or distinct renderings, broken positive pairs included), and their pictures;
  :func:`domain_examples`, :func:`plot_domains`, :func:`plot_renderings`: a dataset's domains and renderings.
* :func:`versus_baseline`: a robustness grid (:func:`gcalib.pretrain.robustness.robustness`) as a table of each
  method's mean ± std against a baseline, with the difference read against the seed-to-seed spread;
  :func:`load_sweep`: a ``sweep.json`` back as a :class:`gcalib.pretrain.sweep.SweepResult` (for ``plot_sweep``).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..losses.gca import GCALoss, embed_views, scored_plan
from ..losses.targets import positive_pairs
from ..pretrain.config import RESUME_FREE_FIELDS, PretrainConfig
from ..validation import check_bool, check_int, check_positive

__all__ = [
    "config_digest",
    "run_directory",
    "project_images",
    "PairMass",
    "positive_pair_mass",
    "relative_pull",
    "broken_pairs_table",
    "denormalise",
    "plot_image_grid",
    "ViewPairs",
    "draw_views",
    "plot_view_pairs",
    "domain_examples",
    "plot_domains",
    "plot_renderings",
    "versus_baseline",
    "load_sweep",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def config_digest(config: PretrainConfig, length: int = 10) -> str:
    """Hex digest (SHA-256, first ``length`` characters) of ``config.to_dict()`` without the fields a
    resumed run may change (:data:`gcalib.pretrain.config.RESUME_FREE_FIELDS`: progress, out_dir, device, …)."""
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}")
    check_int("length", length, 1, 64)
    fields = {k: v for k, v in config.to_dict().items() if k not in RESUME_FREE_FIELDS}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def run_directory(root: Union[str, os.PathLike], config: PretrainConfig, name: Optional[str] = None) -> Path:
    """``root / f"{name}-{config_digest(config)}"``; ``name`` defaults to ``"{dataset}-{arch}-{loss}"``.
    Creates nothing."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    digest = config_digest(config)
    if name is None:
        name = f"{config.dataset}-{config.arch}-{config.loss}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be a non-empty file name of letters, digits, '.', '_' or '-', got {name!r}")
    return Path(root) / f"{name}-{digest}"


def project_images(encoder: nn.Module, projector: nn.Module, images: torch.Tensor, n_views: int = 2,
                   batch_size: int = 512, *, batch_statistics: bool = False) -> list[torch.Tensor]:
    """Projector outputs ``h`` of ``images`` (V·B, C, H, W) stacked blocked, split into ``n_views``
    tensors (B, D) on the CPU, under ``torch.no_grad`` on the encoder's device, ``batch_size`` images
    at a time.

    By default both modules run in eval mode (BatchNorm uses its running statistics; the modules' modes
    are restored afterwards). ``batch_statistics=True`` normalises with the statistics of each chunk
    instead, as during a training step (pass ``batch_size >= len(images)`` to see exactly what the loss
    saw for that batch); it runs on copies, so the modules' running statistics are left untouched.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (V*B, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    check_int("n_views", n_views, 2)
    if len(images) % n_views or len(images) < 2 * n_views:
        raise ValueError(f"images must hold n_views={n_views} blocks of at least two samples each, "
                         f"got {len(images)} images")
    check_int("batch_size", batch_size, 1)
    check_bool("batch_statistics", batch_statistics)
    device = next(encoder.parameters()).device
    if batch_statistics:
        encoder, projector = copy.deepcopy(encoder).train(), copy.deepcopy(projector).train()
    modes = (encoder.training, projector.training)
    encoder.train(batch_statistics)
    projector.train(batch_statistics)
    try:
        with torch.no_grad():
            h = torch.cat([projector(encoder(chunk.to(device))).float().cpu() for chunk in images.split(batch_size)])
    finally:
        encoder.train(modes[0])
        projector.train(modes[1])
    return list(h.chunk(n_views))


@dataclass(frozen=True)
class PairMass:
    """Output of :func:`positive_pair_mass` for V views of B samples (n = V·B rows, blocked layout).

    ``plan`` (n, n): the Sinkhorn plan ``P = exp(φ_r + log K_rs + γ_s)``; ``row_mass`` (n,): ``P𝟙``, the
    mass each embedding sends (1 for every row of a balanced plan with unit marginals); ``pair_mass`` (B,):
    the mean of ``P_rs`` over the V(V−1) ordered positive pairs of each sample; ``cosine`` (B,): their mean
    cosine similarity.
    """

    plan: torch.Tensor
    row_mass: torch.Tensor
    pair_mass: torch.Tensor
    cosine: torch.Tensor


def positive_pair_mass(views: Sequence[torch.Tensor], loss: GCALoss) -> PairMass:
    """Where the transport plan behind ``loss`` sends each embedding's unit of mass.

    With ``z`` the normalised, blocked views, ``log K = (z zᵀ − 1)/ε`` (``K_rr = 0``) and the loss's
    ``n_iter`` unit-marginal Sinkhorn iterations relaxed by its ``reg_a, reg_b`` (ρ), the plan is
    ``P = exp(φ ⊕ γ + log K)``. A balanced plan sends exactly one unit from every row (after its last row
    update). An unbalanced row update only goes the fraction κ = ρ/(ρ+ε) of the way, so at convergence row
    r sends ``(Σ_s K_rs e^{γ_s})^{1−κ}``: views far from every other embedding send less than views in dense
    regions (at ε = 0.5 most rows send more than one unit: the entropy term creates mass). Positive pairs
    whose views look unrelated receive little mass. (Losses with a projected plan score
    ``rownorm(K·diag e^γ)``; ``P`` is the plan whose column potentials ``γ`` they use.)
    """
    if not isinstance(loss, GCALoss):
        raise TypeError(f"loss must be a GCALoss (from gcalib.make_loss), got {type(loss).__name__}")
    with torch.no_grad():
        z = embed_views(views)
        log_plan, _ = scored_plan(z, dataclasses.replace(loss.spec, plan="sinkhorn"))
        plan = log_plan.exp()
        n_views, batch_size = len(views), views[0].shape[0]
        target = positive_pairs(batch_size, n_views, device=z.device, dtype=z.dtype)
        pairs = n_views * (n_views - 1)
        pair_mass = (plan * target).sum(1).view(n_views, batch_size).sum(0) / pairs
        cosine = ((z @ z.T) * target).sum(1).view(n_views, batch_size).sum(0) / pairs
    return PairMass(plan=plan, row_mass=plan.sum(1), pair_mass=pair_mass, cosine=cosine)


def relative_pull(loss: GCALoss, views: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B,): how hard a gradient step of ``loss`` pulls each sample's positive pairs together, relative to
    the batch: ``−∂loss/∂cos`` (:func:`gcalib.notebook.analysis.similarity_gradient`) summed over the sample's
    unordered positive pairs, divided by its mean over the B samples (1: an average pull)."""
    from .analysis import similarity_gradient

    if not isinstance(loss, GCALoss):
        raise TypeError(f"loss must be a GCALoss (from gcalib.make_loss), got {type(loss).__name__}")
    n_views, batch_size = len(views), views[0].shape[0]
    gradient = similarity_gradient(loss, *views)
    target = torch.triu(positive_pairs(batch_size, n_views, dtype=gradient.dtype), diagonal=1)
    pull = -(gradient * target).sum(1).view(n_views, batch_size).sum(0)
    return pull / pull.mean()


def broken_pairs_table(mass: PairMass, corrupted: torch.Tensor, pulls: Optional[dict] = None):
    """Broken against intact positive pairs of one batch (``corrupted`` (B,) bool, e.g.
    :attr:`ViewPairs.corrupted`): number of ``pairs``, mean ``cosine`` and mean ``pair mass`` of
    :func:`positive_pair_mass`, the ``share of the k lowest-mass pairs`` (k = the number of broken
    pairs; a plan that finds every broken pair gives them 1.0, one that ranks at random their share of the
    batch), and for each ``pulls`` entry (name → :func:`relative_pull`) the mean ``pull (<name>)``.
    Returns a pandas DataFrame with rows ``broken`` and ``intact``."""
    import pandas as pd

    if not isinstance(mass, PairMass):
        raise TypeError(f"mass must be a PairMass (from positive_pair_mass), got {type(mass).__name__}")
    corrupted = torch.as_tensor(corrupted, dtype=torch.bool).cpu()
    if corrupted.shape != mass.pair_mass.shape:
        raise ValueError(f"corrupted must have shape {tuple(mass.pair_mass.shape)}, got {tuple(corrupted.shape)}")
    k = int(corrupted.sum())
    lowest = torch.zeros_like(corrupted)
    lowest[mass.pair_mass.cpu().argsort()[:k]] = True
    rows = {}
    for name, group in (("broken", corrupted), ("intact", ~corrupted)):
        count = int(group.sum())
        row = {"pairs": count}
        if count:
            row["cosine"] = float(mass.cosine.cpu()[group].mean())
            row["pair mass"] = float(mass.pair_mass.cpu()[group].mean())
            row["share of the k lowest-mass pairs"] = float((lowest & group).sum()) / k if k else float("nan")
            for key, pull in (pulls or {}).items():
                row[f"pull ({key})"] = float(torch.as_tensor(pull).cpu()[group].mean())
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def denormalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``x·std + mean`` per channel for normalised images (..., C, H, W), clipped to [0, 1] for display
    (normalisation and rounding leave values a hair outside; erased patches come back as the mean)."""
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


def plot_image_grid(images: torch.Tensor, *, row_labels: Optional[Sequence[str]] = None,
                    col_labels: Optional[Sequence[str]] = None, title: Optional[str] = None,
                    panel_size: float = 1.1) -> Figure:
    """A grid of pictures: ``images`` (rows, cols, C, H, W) with values in [0, 1] (see :func:`denormalise`),
    one axis per image without ticks; ``row_labels`` on the left, ``col_labels`` above each column."""
    if not isinstance(images, torch.Tensor) or images.ndim != 5 or images.shape[2] not in (1, 3):
        raise ValueError(f"images must be a tensor (rows, cols, C, H, W) with C in (1, 3), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    rows, cols = images.shape[:2]
    if images.numel() and not bool(((images >= 0) & (images <= 1)).all()):
        raise ValueError("images must lie in [0, 1]; pass normalised views through denormalise first")
    for label, labels, size in (("row_labels", row_labels, rows), ("col_labels", col_labels, cols)):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{label} must have {size} entries, got {len(labels)}")
    check_positive("panel_size", panel_size)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size * cols + 0.8, panel_size * rows + 0.4), squeeze=False)
    pictures = images.detach().to("cpu", torch.float32).permute(0, 1, 3, 4, 2).numpy()
    for i in range(rows):
        for j in range(cols):
            ax = axes[i, j]
            picture = pictures[i, j]
            if picture.shape[-1] == 1:
                ax.imshow(picture[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(np.ascontiguousarray(picture), vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if col_labels is not None and i == 0:
                ax.set_title(str(col_labels[j]), fontsize="small")
            if row_labels is not None and j == 0:
                ax.set_ylabel(str(row_labels[i]), fontsize="small")
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------- views and domains

@dataclass(frozen=True)
class ViewPairs:
    """Output of :func:`draw_views` for V views of B samples.

    ``views`` (V·B, C, S, S): the normalised views, blocked (row v·B + b is view v of sample b), as the
    encoder sees them; ``pictures`` (V, B, C, S, S): the same in [0, 1] for display; ``samples`` (V, B): the
    dataset index each view shows (``samples[0]`` is the batch); ``renderings`` (V, B): the rendering
    each view starts from, or None for ``views="augment"``.
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
        """The views of the batch positions ``columns`` (e.g. ``mass.pair_mass.argsort()[:8]``), in that order."""
        columns = torch.as_tensor(columns, dtype=torch.long).flatten()
        n_views, batch = self.samples.shape
        if len(columns) == 0 or int(columns.min()) < 0 or int(columns.max()) >= batch:
            raise ValueError(f"columns must hold at least one batch position in [0, {batch}), got {columns.tolist()[:8]}")
        rows = (torch.arange(n_views)[:, None] * batch + columns[None, :]).flatten()
        return ViewPairs(views=self.views[rows], pictures=self.pictures[:, columns], samples=self.samples[:, columns],
                         renderings=None if self.renderings is None else self.renderings[:, columns])


def _in_memory(dataset) -> None:
    if getattr(dataset, "images", None) is None or not hasattr(dataset, "labels"):
        raise TypeError(f"dataset must be an in-memory gcalib.pretrain.data.ImageDataset, got {type(dataset).__name__}")


def _index(dataset, index) -> torch.Tensor:
    index = torch.as_tensor(index, dtype=torch.long).flatten()
    if len(index) == 0 or int(index.min()) < 0 or int(index.max()) >= len(dataset):
        raise ValueError(f"index must hold at least one sample id in [0, {len(dataset)}), got {index.tolist()[:8]}")
    return index


def draw_views(dataset, index, *, views: str = "augment", augmentation: str = "simclr", n_views: int = 2,
               corrupt_pairs: float = 0.0, strength: float = 0.5, seed: int = 0) -> ViewPairs:
    """The ``n_views`` views of the samples ``index`` of an in-memory ``dataset`` drawn the way the trainer
    draws them (:func:`gcalib.pretrain.data.draw_view_sources`, then :class:`gcalib.pretrain.batch_augment.BatchAugment`),
    from one generator seeded with ``seed``.

    ``views="augment"``: every view augments the sample's image; ``views="rendered"``: each view augments
    a different one of the sample's renderings (``dataset.renderings``). With ``corrupt_pairs`` = P, views
    2..V of a sample show, with probability P, another sample of ``dataset`` (uniform among the rest).
    """
    from ..pretrain.augment import AUGMENTATIONS
    from ..pretrain.batch_augment import BatchAugment
    from ..pretrain.config import VIEWS
    from ..pretrain.data import draw_view_sources
    from ..validation import check_choice, check_real

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


def _describe(dataset, sample: int) -> str:
    """``"<label>"`` or ``"<label> · <domain name>"`` of one sample."""
    text = str(dataset.classes[int(dataset.labels[sample])]) if getattr(dataset, "classes", None) else \
        str(int(dataset.labels[sample]))
    domains = getattr(dataset, "domains", None)
    if domains is not None and int(domains[sample]) >= 0:
        text += f" · {dataset.domain_names[int(domains[sample])]}"
    return text


def plot_view_pairs(pairs: ViewPairs, dataset, *, title: Optional[str] = None, panel_size: float = 1.1) -> Figure:
    """The pictures of :func:`draw_views`, one column per sample and one row per view, each column titled
    with its label (and domain); a broken pair's column says which labels its views show and is marked
    ``broken``."""
    if not isinstance(pairs, ViewPairs):
        raise TypeError(f"pairs must be a ViewPairs (from draw_views), got {type(pairs).__name__}")
    _in_memory(dataset)
    titles = []
    for b in range(pairs.samples.shape[1]):
        column = pairs.samples[:, b].tolist()
        if len(set(column)) == 1:
            titles.append(_describe(dataset, column[0]))
        else:
            titles.append("broken\n" + " / ".join(str(int(dataset.labels[s])) for s in column))
    rows = [f"view {v + 1}" for v in range(pairs.samples.shape[0])]
    return plot_image_grid(pairs.pictures, row_labels=rows, col_labels=titles, title=title, panel_size=panel_size)


def domain_examples(dataset, per_domain: int) -> torch.Tensor:
    """The first ``per_domain`` samples of every domain of ``dataset``, domain by domain (fewer where a
    domain has fewer)."""
    check_int("per_domain", per_domain, 1)
    domains = getattr(dataset, "domains", None)
    if domains is None:
        raise ValueError("dataset has no domains (its domains attribute is None)")
    ids = sorted(set(int(d) for d in domains.tolist() if int(d) >= 0))
    return torch.cat([torch.nonzero(domains == d).flatten()[:per_domain] for d in ids])


def plot_domains(dataset, per_domain: int = 8, *, title: Optional[str] = None, panel_size: float = 1.0) -> Figure:
    """One row per domain of an in-memory ``dataset``: its first ``per_domain`` images (of the domains that
    have that many), each titled with its label in the first row and labelled with the domain on the left."""
    _in_memory(dataset)
    index = domain_examples(dataset, per_domain)
    domains = dataset.domains[index]
    ids = [d for d in dict.fromkeys(domains.tolist()) if int((domains == d).sum()) == per_domain]
    if not ids:
        raise ValueError(f"no domain has {per_domain} samples; lower per_domain")
    grid = torch.stack([dataset.images[index[domains == d]] for d in ids]).float() / 255
    return plot_image_grid(grid, row_labels=[dataset.domain_names[d] for d in ids], title=title,
                           panel_size=panel_size)


def plot_renderings(dataset, index, n_renderings: int = 4, *, title: Optional[str] = None,
                    panel_size: float = 1.0) -> Figure:
    """The first ``n_renderings`` renderings (rows) of the samples ``index`` (columns) of a dataset with
    ``renderings``, each column titled with its label and domain."""
    _in_memory(dataset)
    renderings = getattr(dataset, "renderings", None)
    if renderings is None:
        raise ValueError("dataset has no renderings (load a dataset that ships them, e.g. clutter_digits train)")
    index = _index(dataset, index)
    check_int("n_renderings", n_renderings, 1)
    if n_renderings > renderings.shape[1]:
        raise ValueError(f"n_renderings={n_renderings} but the dataset has {renderings.shape[1]} per sample")
    grid = renderings[index, :n_renderings].transpose(0, 1).float() / 255
    return plot_image_grid(grid, row_labels=[f"rendering {k + 1}" for k in range(n_renderings)],
                           col_labels=[_describe(dataset, int(i)) for i in index], title=title, panel_size=panel_size)


# ----------------------------------------------------------------------------------------- committed results

def _seed_values(metrics: Sequence[dict], metric: str) -> list[float]:
    values = [m.get(metric) for m in metrics]
    return [float(v) for v in values if v is not None and np.isfinite(float(v))]


def versus_baseline(grid: dict, baseline: str = "infonce", metric: str = "linear_acc", *,
                    settings: Optional[Sequence[str]] = None):
    """One row per (setting, method) of a robustness grid (``{"runs": {setting: {method: [metrics per
    seed]}}}``, :func:`gcalib.pretrain.robustness.robustness`): ``seeds``, ``mean`` and ``std`` (sample std) of
    ``metric``, and against ``baseline``'s runs in the same setting ``minus baseline`` (difference of the
    means) and ``spread`` (the root mean square of the two stds). ``reading`` is ``"within seed spread"``
    when the difference is no larger than the spread, else ``"above"``/``"below"``, and ``"-"`` for the
    baseline itself and where a std is missing (one seed). Settings: those of ``settings`` present in the
    grid (default all). Returns a pandas DataFrame indexed by (setting, method)."""
    import pandas as pd

    runs = grid.get("runs") if isinstance(grid, dict) else None
    if not isinstance(runs, dict) or not runs:
        raise ValueError("grid must be a robustness grid with a non-empty 'runs' mapping {setting: {method: [metrics]}}")
    names = list(runs) if settings is None else [name for name in settings if name in runs]
    rows = []
    for name in names:
        base = _seed_values(runs[name].get(baseline, []), metric)
        base_mean = float(np.mean(base)) if base else float("nan")
        base_std = float(np.std(base, ddof=1)) if len(base) > 1 else float("nan")
        for method, metrics in runs[name].items():
            values = _seed_values(metrics, metric)
            if not values:
                continue
            mean = float(np.mean(values))
            std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            diff = mean - base_mean if method != baseline else float("nan")
            spread = float(np.sqrt((std ** 2 + base_std ** 2) / 2))
            if method == baseline or not np.isfinite(diff) or not np.isfinite(spread):
                reading = "-"
            elif abs(diff) <= spread:
                reading = "within seed spread"
            else:
                reading = "above" if diff > 0 else "below"
            rows.append({"setting": name, "method": method, "seeds": len(values), "mean": mean, "std": std,
                         "minus baseline": diff, "spread": spread if method != baseline else float("nan"),
                         "reading": reading})
    columns = ["setting", "method", "seeds", "mean", "std", "minus baseline", "spread", "reading"]
    return pd.DataFrame(rows, columns=columns).set_index(["setting", "method"])


def load_sweep(path: Union[str, os.PathLike]):
    """A ``sweep.json`` written by :meth:`gcalib.pretrain.sweep.SweepResult.save` back as a
    :class:`gcalib.pretrain.sweep.SweepResult` (for :func:`gcalib.pretrain.sweep.plot_sweep` and its ``table``)."""
    from ..pretrain.sweep import SweepResult

    data = json.loads(Path(path).read_text())
    names = [f.name for f in dataclasses.fields(SweepResult) if f.name not in ("out_dir", "files")]
    missing = [name for name in names if name not in data]
    if missing:
        raise ValueError(f"{path} is not a sweep.json of gcalib.pretrain.sweep.domain_sweep: it lacks {missing}")
    out_dir = data.get("out_dir")
    return SweepResult(**{name: data[name] for name in names}, out_dir=None if out_dir is None else Path(out_dir))
