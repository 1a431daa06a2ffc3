"""Layer 1 — entropic optimal transport.

Owns the Sinkhorn solver (balanced and unbalanced, log and scaling domain), its convergence residual,
and the gradients through it (unrolled, fused adjoint, implicit). Imports only torch and
:mod:`gcalib.validation`; nothing here knows about losses, training or notebooks.
"""
from .solver import OTResult, sinkhorn

__all__ = ["OTResult", "sinkhorn"]
