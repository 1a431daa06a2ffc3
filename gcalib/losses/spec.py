"""The hyper-parameters of a GCA loss (:class:`LossSpec`) and the named presets of the family.

The presets: ``infonce`` / ``hs_ince`` (no Sinkhorn iteration: InfoNCE), ``gca_ince`` (ten iterations),
``rince`` / ``gca_rince`` (the robust divergence alone), ``gca_uot`` (relaxed marginals, KL plus a robust
term) and ``iot`` / ``iot_uni`` (the Sinkhorn plan itself is scored, the latter with a uniform-plan term).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ot.solver import GRAD_MODES, check_relaxation
from ..validation import check_bool, check_choice, check_int, check_nonnegative, check_positive, check_real, fail

__all__ = ["LossSpec", "PRESETS", "LOSSES", "SCORED_PLANS", "EPS_MIN", "robust_scale"]

SCORED_PLANS = ("projected", "sinkhorn")
"""Which transport plan the divergences score: the row-projected plan ``P̂`` or the Sinkhorn plan ``P``."""

EPS_MIN = 1e-30
"""Smallest ε: costs (up to 2) over ε, the loss and its gradient must stay far inside float32's range (3.4e38)."""


@dataclass(frozen=True)
class LossSpec:
    """Hyper-parameters of one member of the GCA loss family (formulas in :mod:`gcalib.losses.gca`).

    Parameters
    ----------
    eps : float
        Entropic regularisation ``ε ≥ EPS_MIN``; the loss runs in float32 and scales like ``1/ε``.
    n_iter : int
        Sinkhorn iterations ``≥ 0`` (0 is InfoNCE).
    reg_a, reg_b : float
        Marginal relaxations ``ρ > 0``; ``inf`` is a hard (balanced) marginal.
    r1, r2 : float
        Weights ``≥ 0`` of the cross-entropy and robust divergences (not both 0).
    q : float
        Robust exponent in (0, 1].
    lam : float
        Robust weight ``λ > 0`` of the total mass.
    scored : {"projected", "sinkhorn"}
        The transport plan the divergences score: ``"projected"``, the Sinkhorn plan after a final row
        projection ``P̂ = rownorm(exp W)``; ``"sinkhorn"``, the Sinkhorn plan ``P`` itself (IOT).
    uni_weight : float
        Weight ``≥ 0`` of the cross-entropy against the uniform plan over candidates (IOT-uni).
    grad : {"fused", "unroll", "implicit", "detach"}
        ``"fused"`` (default): the exact gradient from one fused backward; ``"unroll"``: autograd through the
        iterations (the reference); ``"implicit"``: for large ``n_iter``, exact at convergence except that with
        both marginals hard a term that changes when ``γ`` shifts by a constant (the robust term on the
        projected plan) misses that direction of its gradient; ``"detach"``: no gradient through the
        potentials (see :func:`gcalib.ot.solver.sinkhorn`).
    gather_distributed : bool
        Solve over the global batch gathered from every process (:mod:`gcalib.losses.distributed`).
    shard_plan : bool
        Each process holds only its samples' rows of that plan (:mod:`gcalib.losses.sharded`); needs
        ``gather_distributed=True`` and ``grad="fused"``.

    Raises
    ------
    TypeError
        When a field has the wrong type (a number that is not a number, a bool that is not a bool).
    ValueError
        When a field is out of range, ``r1 = r2 = 0``, a name is unknown, or ``shard_plan`` comes without
        ``gather_distributed`` or with another ``grad`` than ``"fused"``.
    """

    eps: float = 0.5
    n_iter: int = 0
    reg_a: float = math.inf
    reg_b: float = math.inf
    r1: float = 1.0
    r2: float = 0.0
    q: float = 0.6
    lam: float = 0.01
    scored: str = "projected"
    uni_weight: float = 0.0
    grad: str = "fused"
    gather_distributed: bool = False
    shard_plan: bool = False

    def __post_init__(self) -> None:
        check_positive("eps", self.eps)
        check_real("eps", self.eps, lambda v: v >= EPS_MIN,
                   f"at least EPS_MIN = {EPS_MIN:g} (smaller values overflow float32)")
        check_int("n_iter", self.n_iter, 0)
        check_relaxation("reg_a", self.reg_a)
        check_relaxation("reg_b", self.reg_b)
        for name in ("r1", "r2", "uni_weight"):
            check_nonnegative(name, getattr(self, name))
        if self.r1 == 0 and self.r2 == 0:
            raise ValueError("r1 and r2 are both 0: the loss would be identically zero; set r1 > 0 or r2 > 0")
        check_real("q", self.q, lambda v: 0 < v <= 1, "a number in (0, 1]")
        check_positive("lam", self.lam)
        check_choice("scored plan", self.scored, SCORED_PLANS)
        check_choice("grad", self.grad, GRAD_MODES)
        check_bool("gather_distributed", self.gather_distributed)
        if check_bool("shard_plan", self.shard_plan):
            if not self.gather_distributed:
                fail("gather_distributed", self.gather_distributed,
                     "True when shard_plan=True (the plan's rows are split over the processes of the global batch)")
            if self.grad != "fused":
                fail("grad", self.grad, "'fused' when shard_plan=True (the row-sharded plan has only the fused backward)")


_ROBUST = dict(r1=0.0, r2=1.0)
PRESETS: dict[str, LossSpec] = {
    "infonce": LossSpec(n_iter=0),
    "hs_ince": LossSpec(n_iter=0),
    "gca_ince": LossSpec(n_iter=10),
    "rince": LossSpec(n_iter=0, **_ROBUST),
    "gca_rince": LossSpec(n_iter=10, **_ROBUST),
    "gca_uot": LossSpec(n_iter=10, reg_a=0.2, reg_b=0.2, r1=1.0, r2=0.2),
    "iot": LossSpec(n_iter=10, scored="sinkhorn"),
    "iot_uni": LossSpec(n_iter=10, scored="sinkhorn", uni_weight=0.1),
}
"""The named members of the family, by name."""

LOSSES = tuple(PRESETS)
"""The preset names, in order."""


def robust_scale(spec: LossSpec) -> float:
    """The constant ``e^{−q/ε}`` that scales the robust term and its gradients, relative to Chuang et al.'s RINCE.

    Parameters
    ----------
    spec : LossSpec
        The loss's hyper-parameters.

    Returns
    -------
    float
        ``exp(−spec.q/spec.eps)``.
    """
    return math.exp(-spec.q / spec.eps)
