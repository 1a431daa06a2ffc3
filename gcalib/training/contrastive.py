"""The contrastive model: encoder → projector → a plan loss of :mod:`gcalib.losses` (InfoNCE, GCA-INCE, …)."""
from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import torch
from torch import nn

from ..losses.gca import gca_loss

__all__ = ["ContrastiveModel"]


class ContrastiveModel(nn.Module):
    """Encoder + projector + plan loss; implements :class:`gcalib.training.trainable.TrainableModel`.

    ``forward`` maps V·B images stacked view by view to projections h (V·B, D); ``loss`` splits h into
    its V views and scores them in fp32 with ``loss_fn(h_1, …, h_V, target=target)``.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps images (N, C, H, W) to features (N, F).
    projector : torch.nn.Module
        Maps features (N, F) to projections (N, D).
    loss_fn : torch.nn.Module
        A loss of :func:`gcalib.losses.gca.make_loss`, called as ``loss_fn(*views, target=target)``.
    """

    uses_target_plan = True

    def __init__(self, encoder: nn.Module, projector: nn.Module, loss_fn: nn.Module) -> None:
        super().__init__()
        self.encoder, self.projector, self.loss_fn = encoder, projector, loss_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projections ``projector(encoder(x))``.

        Parameters
        ----------
        x : torch.Tensor
            Images (N, C, H, W); V·B of them stacked view by view in training.

        Returns
        -------
        torch.Tensor
            Projections (N, D).
        """
        return self.projector(self.encoder(x))

    def loss(self, h: torch.Tensor, n_views: int, target: Optional[torch.Tensor]) -> torch.Tensor:
        """The plan loss of the projections ``h`` (V·B, D) of ``n_views`` blocked views, in fp32.

        Parameters
        ----------
        h : torch.Tensor
            Projections of V·B images, view 1 of every sample first.
        n_views : int
            Number of views V.
        target : torch.Tensor or None
            Target plan (V·B, V·B), or ``None`` for the positive pairs.

        Returns
        -------
        torch.Tensor
            The loss, a 0-d tensor.
        """
        return self.loss_fn(*h.float().chunk(n_views), target=target)

    @torch.no_grad()
    def loss_terms(self, h: torch.Tensor, n_views: int, target: Optional[torch.Tensor]) -> dict[str, float]:
        """The weighted cross-entropy and robust terms of a GCA-RINCE loss separately; the whole loss otherwise.

        Parameters are those of :meth:`loss`.

        Returns
        -------
        dict of str to float
            ``{"r1*kl": …, "r2*robust": …}`` when the loss has both terms (``r1 > 0`` and ``r2 > 0``), else
            ``{loss name: value}``.
        """
        spec = getattr(self.loss_fn, "spec", None)
        if spec is None or not (spec.r1 > 0 and spec.r2 > 0):
            return {getattr(self.loss_fn, "name", "loss"): float(self.loss(h, n_views, target))}
        views = h.float().chunk(n_views)
        return {
            "r1*kl": float(gca_loss(*views, target=target, spec=dataclasses.replace(spec, r2=0.0))),
            "r2*robust": float(gca_loss(*views, target=target, spec=dataclasses.replace(spec, r1=0.0, uni_weight=0.0))),
        }

    def online_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter (all of them are trained).

        Returns
        -------
        iterator of torch.nn.Parameter
        """
        return self.parameters()

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Nothing to do after an optimizer step.

        Parameters
        ----------
        step : int
            Optimizer steps taken so far.
        total_steps : int
            Optimizer steps of the whole run.
        """

    def nonfinite_advice(self) -> list[str]:
        """``["raise eps (eps=…)"]`` for a loss with an entropic temperature, else none.

        Returns
        -------
        list of str
        """
        spec = getattr(self.loss_fn, "spec", None)
        return [] if spec is None else [f"raise eps (eps={spec.eps})"]
