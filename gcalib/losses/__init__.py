"""Layer 2 — the GCA losses.

Owns the loss specification and its presets (InfoNCE, RINCE, GCA-INCE, GCA-RINCE, GCA-UOT, ...), the
target plans T, the divergences between T and the transport plan P, the fused loss, and gathering a
batch across processes (including the row-sharded plan). May import :mod:`gcalib.ot`, never
:mod:`gcalib.training` or :mod:`gcalib.notebook`.

* :mod:`~gcalib.losses.spec` — :class:`LossSpec` and the presets;
* :mod:`~gcalib.losses.targets` — the target plans T;
* :mod:`~gcalib.losses.kernel` — views to the log Gibbs kernel;
* :mod:`~gcalib.losses.composite` — the loss formula by autograd (the reference);
* :mod:`~gcalib.losses.fused` — the same loss in one autograd function (the default);
* :mod:`~gcalib.losses.gca` — :func:`gca_loss`, :class:`GCALoss` and :func:`make_loss`;
* :mod:`~gcalib.losses.distributed` and :mod:`~gcalib.losses.sharded` — the global batch over processes.
"""
from .gca import GCALoss, gca_loss, make_loss
from .spec import LOSSES, LossSpec
from .targets import domain_plan, from_labels, positive_pairs, validate_target

__all__ = [
    "LOSSES", "GCALoss", "LossSpec", "gca_loss", "make_loss",
    "domain_plan", "from_labels", "positive_pairs", "validate_target",
]
