"""Layer 1 — entropic optimal transport.

Owns the Sinkhorn solver (balanced and unbalanced, log and scaling domain), its convergence residual,
and the gradients through it. Imports only torch and :mod:`gcalib.validation`; nothing here knows about
losses, training or notebooks.

* :mod:`~gcalib.ot.solver` — :func:`sinkhorn`, the checked public solver, and its :class:`OTResult`;
* :mod:`~gcalib.ot.residual` — the marginal residual both engines stop on;
* :mod:`~gcalib.ot.scaling` — the scaling-domain forward solve and its trace;
* :mod:`~gcalib.ot.adjoint` — the fused backward (exact gradient of the unrolled iterations);
* :mod:`~gcalib.ot.implicit` — implicit differentiation at the fixed point;
* :mod:`~gcalib.ot.potentials` — the differentiable potentials that tie the three together.
"""
from .solver import OTResult, sinkhorn

__all__ = ["OTResult", "sinkhorn"]
