"""Layer 2 — the GCA losses.

Owns the loss specification and its presets (InfoNCE, RINCE, GCA-INCE, GCA-RINCE, GCA-UOT, ...), the
target plans T, the divergences between T and the transport plan P, the fused loss, and gathering a
batch across processes (including the row-sharded plan). May import :mod:`gcalib.ot`, never
:mod:`gcalib.pretrain` or :mod:`gcalib.notebook`.
"""
from .gca import LOSSES, GCALoss, LossSpec, gca_loss, make_loss
from .targets import domain_plan, from_labels, positive_pairs, validate_target

__all__ = [
    "LOSSES", "GCALoss", "LossSpec", "gca_loss", "make_loss",
    "domain_plan", "from_labels", "positive_pairs", "validate_target",
]
