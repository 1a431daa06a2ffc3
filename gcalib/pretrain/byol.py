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

import torch
import torch.nn.functional as F
from torch import nn

from .models import Projector
from ..validation import check_int

__all__ = ["BYOL", "byol_loss", "target_momentum"]


def byol_loss(predictions: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """``mean_{i≠j} mean_b (2 − 2 cos(p_i, t_j))`` in fp32 for lists of V (B, D) tensors."""
    if len(predictions) != len(targets) or len(predictions) < 2:
        raise ValueError(f"need the same number (>= 2) of prediction and target views, "
                         f"got {len(predictions)} and {len(targets)}")
    with torch.autocast(device_type=predictions[0].device.type, enabled=False):
        p = [F.normalize(x.float(), dim=1) for x in predictions]
        t = [F.normalize(x.float(), dim=1) for x in targets]
        terms = [(2 - 2 * (p[i] * t[j]).sum(1)).mean() for i in range(len(p)) for j in range(len(t)) if i != j]
    return torch.stack(terms).mean()


def target_momentum(base: float, step: int, total_steps: int) -> float:
    """BYOL's cosine EMA schedule ``1 − (1 − base)(cos(π·step/total) + 1)/2``."""
    check_int("total_steps", total_steps, 1)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total_steps) / total_steps) + 1.0) / 2.0


class BYOL(nn.Module):
    """Online encoder + projector + predictor, and their EMA target copies.

    ``forward(x)`` takes the V·B images stacked blocked, ``loss(forward(x), n_views)`` scores them;
    call :meth:`update_target` after each optimizer step.
    """

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

    def target_parameters(self):
        yield from self.target_encoder.parameters()
        yield from self.target_projector.parameters()

    def online_parameters(self):
        for module in (self.encoder, self.projector, self.predictor):
            yield from module.parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Online predictions and (gradient-free) target projections of the V·B blocked images."""
        predictions = self.predictor(self.projector(self.encoder(x)))
        with torch.no_grad():
            targets = self.target_projector(self.target_encoder(x))
        return predictions, targets

    def loss(self, out: tuple[torch.Tensor, torch.Tensor], n_views: int, target: None = None) -> torch.Tensor:
        """:func:`byol_loss` over the ``n_views`` blocks of ``forward``'s output."""
        if target is not None:
            raise ValueError("BYOL has no target plan: pass target=None (use method='gca' for target plans)")
        return byol_loss(list(out[0].chunk(n_views)), list(out[1].chunk(n_views)))

    @torch.no_grad()
    def loss_terms(self, out: tuple[torch.Tensor, torch.Tensor], n_views: int, target: None = None) -> dict:
        return {"byol": float(self.loss(out, n_views, target))}

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> float:
        """EMA step with the momentum of :func:`target_momentum`; buffers (BN statistics) are copied."""
        tau = target_momentum(self.base_momentum, step, total_steps)
        for online, tgt in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            for p_o, p_t in zip(online.parameters(), tgt.parameters()):
                p_t.mul_(tau).add_(p_o.detach(), alpha=1.0 - tau)
            for b_o, b_t in zip(online.buffers(), tgt.buffers()):
                b_t.copy_(b_o)
        return tau
