"""Helpers behind the pretraining notebooks (04–06), tested in ``tests/test_insight.py``.

* :func:`run_directory`: where a run lives, ``root/<name>-<digest>``, the digest covering every config
  field that changes the computed numbers, so that ``pretrain(replace(config, out_dir=run_directory(...),
  resume=True))`` is *load-or-train*: a finished run is loaded (only re-evaluated), an interrupted one
  continues from its newest checkpoint, a changed config gets a fresh directory.
* :func:`project_images`: encoder + projector outputs of V blocked views without gradients, with the
  running BatchNorm statistics (evaluation) or the batch's own (what the loss saw in a training step).
* :func:`positive_pair_mass`: how much mass the loss's (unbalanced) Sinkhorn plan puts on each sample's
  positive pairs, and how much each row sends at all.
* :func:`denormalise`, :func:`plot_image_grid`: normalised views back to pictures.
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

from .losses import GCALoss, embed_views, scored_plan
from .plans import positive_pairs
from .config import RESUME_FREE_FIELDS, PretrainConfig
from .validation import check_bool, check_int, check_positive

__all__ = [
    "config_digest",
    "run_directory",
    "project_images",
    "PairMass",
    "positive_pair_mass",
    "denormalise",
    "plot_image_grid",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def config_digest(config: PretrainConfig, length: int = 10) -> str:
    """Hex digest (SHA-256, first ``length`` characters) of ``config.to_dict()`` without the fields a
    resumed run may change (:data:`gcalib.config.RESUME_FREE_FIELDS`: progress, out_dir, device, …)."""
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
