"""How a loss treats each positive pair of one batch: the mass its transport plan puts on the pair, how
hard its gradient pulls the pair together, and both compared between broken and intact pairs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch

from ..losses.gca import GCALoss, scored_plan
from ..losses.kernel import embed_views
from ..losses.targets import positive_pairs

__all__ = ["PairMass", "positive_pair_mass", "relative_pull", "broken_pairs_table"]


def _check_loss(loss) -> None:
    if not isinstance(loss, GCALoss):
        raise TypeError(f"loss must be a GCALoss (from gcalib.make_loss), got {type(loss).__name__}")


@dataclass(frozen=True)
class PairMass:
    """Output of :func:`positive_pair_mass` for V views of B samples (n = V·B rows, blocked layout).

    Parameters
    ----------
    plan : torch.Tensor
        (n, n) Sinkhorn plan ``P = exp(φ_r + log K_rs + γ_s)``.
    row_mass : torch.Tensor
        (n,) ``P𝟙``, the mass each embedding sends (1 for every row of a balanced plan with unit marginals).
    pair_mass : torch.Tensor
        (B,) mean of ``P_rs`` over the V(V−1) ordered positive pairs of each sample.
    cosine : torch.Tensor
        (B,) mean cosine similarity of those pairs.
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

    Parameters
    ----------
    views : sequence of torch.Tensor
        V >= 2 embeddings (B, D) of the same B samples.
    loss : GCALoss
        The loss whose plan is read (from :func:`gcalib.make_loss`).

    Returns
    -------
    PairMass
        The plan, the mass each row sends, and each sample's mean positive-pair mass and cosine.

    Raises
    ------
    TypeError
        If ``loss`` is not a :class:`gcalib.GCALoss`.
    """
    _check_loss(loss)
    with torch.no_grad():
        z = embed_views(views)
        log_plan, _ = scored_plan(z, dataclasses.replace(loss.spec, scored="sinkhorn"))
        plan = log_plan.exp()
        n_views, batch_size = len(views), views[0].shape[0]
        target = positive_pairs(batch_size, n_views, device=z.device, dtype=z.dtype)
        pairs = n_views * (n_views - 1)
        pair_mass = (plan * target).sum(1).view(n_views, batch_size).sum(0) / pairs
        cosine = ((z @ z.T) * target).sum(1).view(n_views, batch_size).sum(0) / pairs
    return PairMass(plan=plan, row_mass=plan.sum(1), pair_mass=pair_mass, cosine=cosine)


def relative_pull(loss: GCALoss, views: Sequence[torch.Tensor]) -> torch.Tensor:
    """How hard a gradient step of ``loss`` pulls each sample's positive pairs together, relative to the batch.

    ``pull_b = −Σ ∂loss/∂cos(z_r, z_s)`` over the unordered positive pairs (r, s) of sample b
    (:func:`gcalib.notebook.analysis.similarity_gradient`), divided by its mean over the B samples.

    Parameters
    ----------
    loss : GCALoss
        The loss (from :func:`gcalib.make_loss`).
    views : sequence of torch.Tensor
        V >= 2 embeddings (B, D) of the same B samples.

    Returns
    -------
    torch.Tensor
        (B,) relative pulls with mean 1 (1: an average pull).

    Raises
    ------
    TypeError
        If ``loss`` is not a :class:`gcalib.GCALoss`.
    """
    from .analysis import similarity_gradient

    _check_loss(loss)
    n_views, batch_size = len(views), views[0].shape[0]
    gradient = similarity_gradient(loss, *views)
    target = torch.triu(positive_pairs(batch_size, n_views, dtype=gradient.dtype), diagonal=1)
    pull = -(gradient * target).sum(1).view(n_views, batch_size).sum(0)
    return pull / pull.mean()


def broken_pairs_table(mass: PairMass, corrupted: torch.Tensor, pulls: Optional[Mapping[str, torch.Tensor]] = None):
    """Broken against intact positive pairs of one batch, as a table.

    Parameters
    ----------
    mass : PairMass
        The batch's :func:`positive_pair_mass`.
    corrupted : torch.Tensor
        (B,) bool, True where the sample's views show different samples (e.g.
        :attr:`gcalib.notebook.dataset_views.ViewPairs.corrupted`).
    pulls : mapping of str to torch.Tensor, optional
        Name → (B,) :func:`relative_pull` of a loss.

    Returns
    -------
    pandas.DataFrame
        Rows ``broken`` and ``intact``; columns ``pairs`` (their number), mean ``cosine``, mean
        ``pair mass``, ``share of the k lowest-mass pairs`` (k = the number of broken pairs: a plan that
        finds every broken pair gives them 1.0, one that ranks at random their share of the batch),
        ``share of the k lowest-cosine pairs`` (the same for a ranking by the cosine alone, no plan: what the
        plan adds to the encoder's similarities is the difference of the two shares), and
        ``pull (<name>)``, the mean pull of each ``pulls`` entry.

    Raises
    ------
    TypeError
        If ``mass`` is not a :class:`PairMass`.
    ValueError
        If ``corrupted`` does not have one entry per sample.
    """
    import pandas as pd

    if not isinstance(mass, PairMass):
        raise TypeError(f"mass must be a PairMass (from positive_pair_mass), got {type(mass).__name__}")
    corrupted = torch.as_tensor(corrupted, dtype=torch.bool).cpu()
    if corrupted.shape != mass.pair_mass.shape:
        raise ValueError(f"corrupted must have shape {tuple(mass.pair_mass.shape)}, got {tuple(corrupted.shape)}")
    k = int(corrupted.sum())
    lowest = {name: torch.zeros_like(corrupted) for name in ("mass", "cosine")}
    lowest["mass"][mass.pair_mass.cpu().argsort()[:k]] = True
    lowest["cosine"][mass.cosine.cpu().argsort()[:k]] = True
    rows = {}
    for name, group in (("broken", corrupted), ("intact", ~corrupted)):
        count = int(group.sum())
        row = {"pairs": count}
        if count:
            row["cosine"] = float(mass.cosine.cpu()[group].mean())
            row["pair mass"] = float(mass.pair_mass.cpu()[group].mean())
            for ranking, selected in lowest.items():
                share = float((selected & group).sum()) / k if k else float("nan")
                row[f"share of the k lowest-{ranking} pairs"] = share
            for key, pull in (pulls or {}).items():
                row[f"pull ({key})"] = float(torch.as_tensor(pull).cpu()[group].mean())
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
