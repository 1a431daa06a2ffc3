"""Images through a trained encoder and projector: the embeddings ``h`` a loss sees, without gradients."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..validation import check_bool, check_int

__all__ = ["project_images"]


def project_images(encoder: nn.Module, projector: nn.Module, images: torch.Tensor, n_views: int = 2,
                   batch_size: int = 512, *, batch_statistics: bool = False) -> list[torch.Tensor]:
    """Projector outputs ``h = projector(encoder(x))`` of blocked views, split into one tensor per view.

    Runs under ``torch.no_grad`` on the encoder's device, ``batch_size`` images at a time. By default both
    modules run in eval mode (BatchNorm uses its running statistics; the modules' modes are restored
    afterwards). ``batch_statistics=True`` normalises with the statistics of each chunk instead, as during
    a training step (pass ``batch_size >= len(images)`` to see exactly what the loss saw for that batch); it
    runs on copies, so the modules' running statistics are left untouched.

    Parameters
    ----------
    encoder, projector : torch.nn.Module
        The trained networks.
    images : torch.Tensor
        Float (V·B, C, H, W) views stacked blocked (row v·B + b is view v of sample b), B >= 2.
    n_views : int
        Number of views V, >= 2.
    batch_size : int
        Images per forward pass, >= 1.
    batch_statistics : bool
        Normalise with each chunk's statistics (training mode) instead of the running ones.

    Returns
    -------
    list of torch.Tensor
        ``n_views`` tensors (B, D) on the CPU.

    Raises
    ------
    ValueError
        If ``images`` is not a float 4-d tensor of ``n_views`` blocks of at least two samples.
    TypeError
        If ``n_views``, ``batch_size`` or ``batch_statistics`` has the wrong type.
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
