"""What the trainer needs of a model: :class:`TrainableModel`.

The trainer (:mod:`gcalib.training.trainer`) knows nothing about the method it trains. It feeds the V·B
blocked views to the model, asks it for the loss of the output (with the batch's target plan when the
model uses one), steps the optimizer over the model's online parameters, and tells the model that a step
was taken. Two models implement the protocol: :class:`gcalib.training.contrastive.ContrastiveModel` (a
plan loss of :mod:`gcalib.losses`) and :class:`gcalib.training.byol.BYOL` (an EMA target network).
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Protocol

import torch
from torch import nn

__all__ = ["TrainableModel"]


class TrainableModel(Protocol):
    """Protocol of the models the trainer trains; implementations are :class:`torch.nn.Module` s.

    Attributes
    ----------
    encoder : torch.nn.Module
        The backbone that is evaluated (and saved as ``encoder.pt``) after training.
    projector : torch.nn.Module
        The projection head on top of the encoder.
    uses_target_plan : bool
        Whether :meth:`loss` scores the output against a target plan (positive pairs, labels or domains,
        :mod:`gcalib.losses.targets`); when False the trainer passes ``target=None``.
    """

    encoder: nn.Module
    projector: nn.Module
    uses_target_plan: bool

    def __call__(self, images: torch.Tensor) -> Any:
        """The model's output for V·B images stacked view by view (what :meth:`loss` scores)."""

    def loss(self, out: Any, n_views: int, target: Optional[torch.Tensor]) -> torch.Tensor:
        """The scalar fp32 training loss of the output of V = ``n_views`` blocked views.

        Parameters
        ----------
        out : Any
            The model's output for the batch.
        n_views : int
            Number of views V the batch was stacked from.
        target : torch.Tensor or None
            The batch's target plan; ``None`` for the positive pairs alone or when the model uses no plan.

        Returns
        -------
        torch.Tensor
            The loss, a 0-d tensor.
        """

    def loss_terms(self, out: Any, n_views: int, target: Optional[torch.Tensor]) -> dict[str, float]:
        """The loss split into named terms (one term when it has no parts), for diagnostics.

        Parameters are those of :meth:`loss`.

        Returns
        -------
        dict of str to float
            Term name → value.
        """

    def online_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the optimizer updates.

        Returns
        -------
        iterator of torch.nn.Parameter
        """

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called after every optimizer step that updated the weights (e.g. BYOL's momentum update).

        Parameters
        ----------
        step : int
            Optimizer steps taken so far (counting this one).
        total_steps : int
            Optimizer steps of the whole run.
        """

    def nonfinite_advice(self) -> list[str]:
        """Method-specific suggestions for the message of a non-finite loss, such as ``"raise eps (eps=0.5)"``.

        Returns
        -------
        list of str
            Suggestions (possibly none).
        """
