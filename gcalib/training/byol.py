"""BYOL baseline (Grill et al., 2020): an online network regresses a slowly moving target network.

Online branch: encoder → projector → predictor ``q``; target branch: EMA copies of encoder and
projector, no gradient. For V views the loss averages over ordered pairs of different views

.. math::  L = \\frac{1}{V(V-1)} \\sum_{i \\ne j} \\operatorname{mean}_b \\big(2 - 2\\cos(q_i^{(b)}, t_j^{(b)})\\big),

and after every optimizer step the target moves as ``θ_t ← τ θ_t + (1 − τ) θ_o`` with
``τ = 1 − (1 − τ_base)(cos(π k/K) + 1)/2`` rising from ``τ_base`` to 1 over the K training steps.
In the GCA framework this is a KL-free alignment term with an L2 proximal pull and no constraint.
"""
from __future__ import annotations

import copy
import math
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_int
from .models import Projector

__all__ = ["BYOL", "byol_loss", "target_momentum"]


def byol_loss(predictions: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """BYOL's loss ``mean_{i≠j} mean_b (2 − 2 cos(p_i, t_j))`` over ordered pairs of different views, in fp32.

    Parameters
    ----------
    predictions : list of torch.Tensor
        The online predictions p_1 … p_V of the V views, each (B, D).
    targets : list of torch.Tensor
        The target projections t_1 … t_V, each (B, D).

    Returns
    -------
    torch.Tensor
        The loss, a 0-d fp32 tensor in [0, 4].

    Raises
    ------
    ValueError
        When the two lists differ in length or hold fewer than two views.

    Examples
    --------
    >>> a = torch.tensor([[1.0, 0.0]])
    >>> float(byol_loss([a, a], [a, -a]))
    2.0
    """
    if len(predictions) != len(targets) or len(predictions) < 2:
        raise ValueError(f"need the same number (>= 2) of prediction and target views, "
                         f"got {len(predictions)} and {len(targets)}")
    with torch.autocast(device_type=predictions[0].device.type, enabled=False):
        p = [F.normalize(x.float(), dim=1) for x in predictions]
        t = [F.normalize(x.float(), dim=1) for x in targets]
        terms = [(2 - 2 * (p[i] * t[j]).sum(1)).mean() for i in range(len(p)) for j in range(len(t)) if i != j]
    return torch.stack(terms).mean()


def target_momentum(base: float, step: int, total_steps: int) -> float:
    """BYOL's cosine EMA schedule ``τ = 1 − (1 − base)(cos(π·step/total_steps) + 1)/2``.

    Parameters
    ----------
    base : float
        τ at step 0.
    step : int
        Optimizer steps taken; beyond ``total_steps`` τ stays 1.
    total_steps : int
        Optimizer steps of the run, >= 1.

    Returns
    -------
    float
        The momentum τ, rising from ``base`` to 1.

    Raises
    ------
    ValueError
        When ``total_steps`` < 1.

    Examples
    --------
    >>> target_momentum(0.99, 50, 100)
    0.995
    """
    check_int("total_steps", total_steps, 1)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total_steps) / total_steps) + 1.0) / 2.0


class BYOL(nn.Module):
    """Online encoder + projector + predictor, and their EMA target copies.

    Implements :class:`gcalib.training.trainable.TrainableModel`: ``forward`` takes the V·B images
    stacked view by view, :meth:`loss` scores its output (BYOL uses no target plan), and
    :meth:`after_optimizer_step` moves the target network (:meth:`update_target`).

    Parameters
    ----------
    encoder : torch.nn.Module
        The online encoder (copied for the target network).
    projector : Projector
        The online projector (copied for the target network).
    predictor_hidden_dim : int, default 512
        Hidden width of the predictor ``Projector(out, hidden, out)``.
    base_momentum : float, default 0.99
        τ_base of :func:`target_momentum`, in [0, 1].

    Raises
    ------
    ValueError
        When ``base_momentum`` is outside [0, 1].
    """

    uses_target_plan = False

    def __init__(self, encoder: nn.Module, projector: Projector, predictor_hidden_dim: int = 512,
                 base_momentum: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= base_momentum <= 1.0:
            raise ValueError(f"base_momentum must lie in [0, 1], got {base_momentum!r}")
        self.encoder = encoder
        self.projector = projector
        self.predictor = Projector(projector.out_dim, predictor_hidden_dim, projector.out_dim)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(projector)
        for p in self.target_parameters():
            p.requires_grad_(False)
        self.base_momentum = base_momentum

    def target_parameters(self) -> Iterator[nn.Parameter]:
        """The target network's parameters (not trained; moved by :meth:`update_target`).

        Returns
        -------
        iterator of torch.nn.Parameter
        """
        yield from self.target_encoder.parameters()
        yield from self.target_projector.parameters()

    def online_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the optimizer updates: encoder, projector and predictor.

        Returns
        -------
        iterator of torch.nn.Parameter
        """
        for module in (self.encoder, self.projector, self.predictor):
            yield from module.parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Online predictions and (gradient-free) target projections of the V·B blocked images.

        Parameters
        ----------
        x : torch.Tensor
            Images (V·B, C, H, W), view 1 of every sample first.

        Returns
        -------
        predictions : torch.Tensor
            ``predictor(projector(encoder(x)))``, (V·B, D).
        targets : torch.Tensor
            ``target_projector(target_encoder(x))`` without gradient, (V·B, D).
        """
        predictions = self.predictor(self.projector(self.encoder(x)))
        with torch.no_grad():
            targets = self.target_projector(self.target_encoder(x))
        return predictions, targets

    def loss(self, out: tuple[torch.Tensor, torch.Tensor], n_views: int,
             target: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:func:`byol_loss` over the ``n_views`` blocks of ``forward``'s output.

        Parameters
        ----------
        out : tuple of torch.Tensor
            ``(predictions, targets)`` of :meth:`forward`.
        n_views : int
            Number of views V.
        target : None
            BYOL has no target plan; present for :class:`gcalib.training.trainable.TrainableModel`.

        Returns
        -------
        torch.Tensor
            The loss, a 0-d tensor.

        Raises
        ------
        ValueError
            When a target plan is given.
        """
        if target is not None:
            raise ValueError("BYOL has no target plan: pass target=None (use method='gca' for target plans)")
        return byol_loss(list(out[0].chunk(n_views)), list(out[1].chunk(n_views)))

    @torch.no_grad()
    def loss_terms(self, out: tuple[torch.Tensor, torch.Tensor], n_views: int,
                   target: Optional[torch.Tensor] = None) -> dict[str, float]:
        """``{"byol": loss}``: the loss has a single term.

        Parameters are those of :meth:`loss`.

        Returns
        -------
        dict of str to float
        """
        return {"byol": float(self.loss(out, n_views, target))}

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        """Move the target network: ``θ_t ← τ θ_t + (1 − τ) θ_o`` with τ of :func:`target_momentum`.

        Buffers (BatchNorm statistics) are copied from the online network.

        Parameters
        ----------
        step : int
            Optimizer steps taken so far.
        total_steps : int
            Optimizer steps of the run.

        Returns
        -------
        float
            The momentum τ used.
        """
        tau = target_momentum(self.base_momentum, step, total_steps)
        for online, tgt in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            for p_o, p_t in zip(online.parameters(), tgt.parameters()):
                p_t.mul_(tau).add_(p_o.detach(), alpha=1.0 - tau)
            for b_o, b_t in zip(online.buffers(), tgt.buffers()):
                b_t.copy_(b_o)
        return tau

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """:meth:`update_target` after every optimizer step.

        Parameters
        ----------
        step : int
            Optimizer steps taken so far.
        total_steps : int
            Optimizer steps of the run.
        """
        self.update_target(step, total_steps)

    def nonfinite_advice(self) -> list[str]:
        """No BYOL-specific suggestion for a non-finite loss.

        Returns
        -------
        list of str
            ``[]``.
        """
        return []
