"""Numerical grid: every loss preset gives a finite loss and finite gradients over ε, n and precision.

Grid (V = 2 views, so n = 2B; D = 32; losses built with their defaults, i.e. the default gradient path):

* every preset × every ε in EPSILONS × n ∈ {4, 8} × {fp32, bf16 autocast, fp16 autocast};
* every preset × ε ∈ {0.005, 2} × n ∈ {64, 512, 2048}: all three precisions at n = 64; fp32 and fp16
  (the narrower autocast range) at n = 512, plus bf16 at ε = 0.005; fp32, plus fp16 at ε = 0.005, at
  n = 2048;
* pathological batches at n = 64 (duplicate, collinear h and 3h, antipodal, all-identical and
  near-identical embeddings) × every preset × every ε in fp32, ε ∈ {0.005, 2} under autocast;
* n = 8192 at ε = 0.005 in fp32 for infonce (default run) and gca_uot (marked slow: > 30 s here);
* the all-identical batch against its closed-form loss, and n = 2 (B = 1) rejected by design.

On random batches the gradient must also be non-zero, and for n ≤ 64 match the float64 gradient at
the same inputs; the RINCE-family cases where it underflows are strict xfails (see UNDERFLOW_CASES).

The smallest valid batch is B = 2, V = 2 (n = 4): a single sample per view has no negatives, so the
losses reject B = 1 with a ValueError, tested below.

Autocast cases cast fp32 leaves to the low dtype inside ``torch.autocast("cpu", dtype)`` (as a
projector output under autocast would be) and backpropagate through the cast into the fp32 leaves.
The losses compute in fp32 whatever the input dtype, so under autocast the loss must equal the fp32
loss of the same rounded inputs.
"""
import math

import pytest
import torch

from gcalib.losses.gca import make_loss
from gcalib.losses.spec import LOSSES

# Small eps is what these tests are about: the robust-term scale warning is tested in tests/losses/test_gca.py.
pytestmark = pytest.mark.filterwarnings("ignore:.*the robust term and its gradients carry:UserWarning")

EPSILONS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0)
EXTREME_EPS = (0.005, 2.0)
DIM = 32
LOW_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PATTERNS = ("duplicate", "collinear", "antipodal", "identical", "near_identical")


def _autocast_supported(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            return torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == dtype
    except (RuntimeError, ValueError):
        return False


def _precision(name: str):
    if name == "fp32":
        return pytest.param(name, id=name)
    dtype = LOW_DTYPES[name]
    reason = f"torch {torch.__version__} has no CPU autocast to {dtype}"
    return pytest.param(name, id=name, marks=pytest.mark.skipif(not _autocast_supported(dtype), reason=reason))


PRECISIONS = [_precision(p) for p in ("fp32", "bf16", "fp16")]


def _random_views(n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n // 2, DIM, generator=gen) for _ in range(2)]


def _pathological_views(pattern: str, n: int = 64, seed: int = 0) -> list[torch.Tensor]:
    """Two (n/2, DIM) views with the named degenerate geometry."""
    gen = torch.Generator().manual_seed(seed)
    batch = n // 2
    base = torch.randn(batch, DIM, generator=gen)
    if pattern == "duplicate":  # both views equal, and samples 2k and 2k+1 equal
        first = base[0::2].repeat_interleave(2, dim=0)
        return [first, first.clone()]
    if pattern == "collinear":  # view 2 = 3 × view 1, and sample 2k+1 = 3 × sample 2k
        first = base.clone()
        first[1::2] = 3 * first[0::2]
        return [first, 3 * first]
    if pattern == "antipodal":  # view 2 = −view 1, and sample 2k+1 = −sample 2k
        first = base.clone()
        first[1::2] = -first[0::2]
        return [first, -first]
    if pattern == "identical":
        first = base[:1].expand(batch, DIM).clone()
        return [first, first.clone()]
    if pattern == "near_identical":  # perturbations of size 1e-6: cosines differ below fp32 resolution
        first = base[:1].expand(batch, DIM)
        return [first + 1e-6 * torch.randn(batch, DIM, generator=gen) for _ in range(2)]
    raise ValueError(f"unknown pattern {pattern!r}")


def _loss_and_grads(name: str, eps: float, views: list[torch.Tensor], precision: str, **hparams):
    """Loss (detached) and the gradients of the leaves the views are made from (cast under autocast)."""
    leaves = [view.clone().requires_grad_(True) for view in views]
    loss_fn = make_loss(name, eps=eps, **hparams)
    if precision == "fp32":
        loss = loss_fn(*leaves)
    else:
        dtype = LOW_DTYPES[precision]
        with torch.autocast("cpu", dtype=dtype):
            loss = loss_fn(*(leaf.to(dtype) for leaf in leaves))
    loss.backward()
    return loss.detach(), [leaf.grad for leaf in leaves]


# Relative L2 error allowed between a gradient and the float64 gradient at the same (rounded) inputs:
# fp32 arithmetic, or the rounding of the gradient passed back through the low-precision cast (unit
# roundoff 2^-9 for bf16, 2^-12 for fp16). Measured outside the xfail cases: ≤ 1e-5 for ε ≥ 0.05, 2e-3, 5e-4.
GRAD_RTOL = {"fp32": 1e-4, "bf16": 1e-2, "fp16": 1e-2}
FP32_ROUNDOFF = 2.0 ** -24


def grad_rtol(precision: str, eps: float) -> float:
    """The logits (cos − 1)/ε carry an fp32 rounding error of about u/ε and the plan's sensitivity to them
    grows like 1/ε, so in fp32 the gradient's relative error may grow like u/ε² (2.4e-3 at ε = 0.005, where
    gca_ince measures 1.6e-4 on some CPUs); the floor is GRAD_RTOL."""
    if precision == "fp32":
        return max(GRAD_RTOL["fp32"], FP32_ROUNDOFF / eps ** 2)
    return GRAD_RTOL[precision]


def _check_finite(name, eps, views, precision, *, nonzero_grad: bool):
    """fp32 finite loss and finite (and, when asked, not all-zero) gradients; returns them."""
    loss, grads = _loss_and_grads(name, eps, views, precision)
    assert loss.dtype == torch.float32, f"loss dtype {loss.dtype}"
    assert torch.isfinite(loss), f"{name} eps={eps} {precision}: loss {float(loss)}"
    for k, grad in enumerate(grads):
        assert grad is not None and torch.isfinite(grad).all(), f"{name} eps={eps} {precision}: view {k} gradient"
    if nonzero_grad:
        assert any(bool((grad != 0).any()) for grad in grads), f"{name} eps={eps} {precision}: gradient is all zero"
    return loss, grads


def _check_against_references(name, eps, views, precision, loss, grads):
    """Under autocast the loss equals the fp32 loss of the rounded inputs (the losses compute in fp32);
    the gradient matches the float64 gradient at those inputs to :func:`grad_rtol`."""
    rounded = views if precision == "fp32" else [view.to(LOW_DTYPES[precision]).float() for view in views]
    if precision != "fp32":
        with torch.no_grad():
            fp32_loss = make_loss(name, eps=eps)(*rounded)
        torch.testing.assert_close(loss, fp32_loss, rtol=1e-6, atol=1e-6)
    _, exact = _loss_and_grads(name, eps, [view.double() for view in rounded], "fp32")
    got, want = torch.cat(grads).double(), torch.cat(exact)
    error = float((got - want).norm() / want.norm())
    assert error <= grad_rtol(precision, eps), f"{name} eps={eps} {precision}: gradient relative error {error:.2e}"


# The robust divergence carries the factor e^{−q(1 − cos)/ε} (the cost is 1 − cos so that nothing
# overflows). On random embeddings (largest off-diagonal cosine 0.2–0.6) at ε ≤ 0.01 that makes the
# whole RINCE/GCA-RINCE gradient ~1e-42..1e-13: subnormal in fp32 (inaccurate) and below the fp16 range
# (exactly 0 once passed back through the fp16 cast), i.e. silently no learning signal.
ROBUST_UNDERFLOW = (
    "robust divergence underflow (gcalib/losses/composite.py robust_divergence; same formula in gcalib/losses/fused.py): "
    "loss and gradient scale as e^{-q(1-cos_max)/eps}; at eps <= 0.01 on random embeddings the gradient "
    "(~1e-42..1e-13 in float64) is subnormal in fp32 or flushed to 0 through the bf16/fp16 cast"
)
UNDERFLOW_CASES = {
    # (name, eps, n, precision) measured to fail the non-zero or float64-reference gradient check
    (name, eps, n, precision)
    for name in ("rince", "gca_rince")
    for eps, n, precision in (
        (0.005, 4, "fp32"), (0.005, 4, "bf16"), (0.005, 4, "fp16"), (0.01, 4, "fp16"),
        (0.005, 8, "fp16"), (0.01, 8, "fp16"), (0.005, 64, "fp16"), (0.005, 512, "fp16"),
        (0.005, 2048, "fp16"),
    )
} | {("gca_rince", 0.005, 8, "fp32"), ("gca_rince", 0.005, 8, "bf16")}


def _case(name, eps, n, precision):
    marks = list(precision.marks)
    if (name, eps, n, precision.values[0]) in UNDERFLOW_CASES:
        marks.append(pytest.mark.xfail(strict=True, reason=ROBUST_UNDERFLOW))
    return pytest.param(name, eps, n, precision.values[0], marks=marks, id=f"{name}-eps{eps}-n{n}-{precision.id}")


SMALL_CASES = [_case(name, eps, n, p) for name in LOSSES for eps in EPSILONS for n in (4, 8) for p in PRECISIONS]


@pytest.mark.parametrize("name,eps,n,precision", SMALL_CASES)
def test_every_preset_and_eps_on_small_batches(name, eps, n, precision):
    views = _random_views(n, seed=n)
    loss, grads = _check_finite(name, eps, views, precision, nonzero_grad=True)
    _check_against_references(name, eps, views, precision, loss, grads)


def _large_precisions(n: int, eps: float):
    """fp32 always; all three precisions at n = 64; fp16 (the narrowest range) at n = 512 and, for
    ε = 0.005, at n = 2048; bf16 at n = 512 for ε = 0.005."""
    for precision in PRECISIONS:
        kind = precision.values[0]
        if n == 64 or kind == "fp32" or (kind == "fp16" and (n == 512 or eps == 0.005)) or (
            kind == "bf16" and n == 512 and eps == 0.005
        ):
            yield precision


LARGE_CASES = [
    _case(name, eps, n, p) for name in LOSSES for n in (64, 512, 2048) for eps in EXTREME_EPS
    for p in _large_precisions(n, eps)
]


@pytest.mark.parametrize("name,eps,n,precision", LARGE_CASES)
def test_every_preset_at_every_batch_size_for_the_extreme_eps(name, eps, n, precision):
    views = _random_views(n, seed=n)
    loss, grads = _check_finite(name, eps, views, precision, nonzero_grad=True)
    if n <= 64:
        _check_against_references(name, eps, views, precision, loss, grads)


def _pathological_cases():
    for precision in PRECISIONS:
        for eps in EPSILONS if precision.values[0] == "fp32" else EXTREME_EPS:
            yield pytest.param(eps, precision.values[0], id=f"eps{eps}-{precision.id}", marks=precision.marks)


@pytest.mark.parametrize("eps,precision", list(_pathological_cases()))
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("name", LOSSES)
def test_pathological_batches_are_finite(name, pattern, eps, precision):
    views = _pathological_views(pattern)
    loss, _ = _check_finite(name, eps, views, precision, nonzero_grad=False)
    if precision != "fp32":
        with torch.no_grad():
            fp32_loss = make_loss(name, eps=eps)(*(view.to(LOW_DTYPES[precision]).float() for view in views))
        torch.testing.assert_close(loss, fp32_loss, rtol=1e-6, atol=1e-6)


def _identical_batch_loss(name: str, n: int, eps: float, q: float, lam: float, rho: float, uni: float) -> float:
    """Closed form on a batch of n equal embeddings: every off-diagonal cost is 0.

    With log K = 0 off the diagonal, potentials stay constant across rows: φ = −κ(L + γ),
    γ = −κ(L + φ), κ = ρ/(ρ+ε) (1 when balanced), L = log(n−1), starting at γ = 0. The projected plan
    is uniform over the n−1 candidates (KL term L); the robust term has pos = e^γ, tot = (n−1)e^γ.
    """
    log_candidates = math.log(n - 1)
    robust_at = lambda gamma: (math.exp(q * (math.log(lam) + log_candidates + gamma)) - math.exp(q * gamma)) / q
    if name in ("infonce", "hs_ince", "gca_ince", "iot"):
        return log_candidates
    if name == "iot_uni":
        return (1 + uni) * log_candidates
    if name in ("rince", "gca_rince"):  # balanced: γ returns to 0 after every iteration
        return robust_at(0.0)
    if name == "gca_uot":
        kappa, gamma = rho / (rho + eps), 0.0
        for _ in range(10):
            phi = -kappa * (log_candidates + gamma)
            gamma = -kappa * (log_candidates + phi)
        return log_candidates + 0.2 * robust_at(gamma)
    raise AssertionError(f"no closed form for {name!r}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("eps", EPSILONS)
@pytest.mark.parametrize("name", LOSSES)
def test_all_identical_batch_has_the_closed_form_loss_and_no_gradient(name, eps, dtype):
    n, q, lam, rho, uni = 64, 0.6, 0.01, 0.2, 0.1
    hparams = dict(q=q, lam=lam)
    if name == "gca_uot":
        hparams.update(reg_a=rho, reg_b=rho, r1=1.0, r2=0.2, n_iter=10)
    if name == "iot_uni":
        hparams.update(uni_weight=uni)
    views = [view.to(dtype) for view in _pathological_views("identical", n)]
    loss, grads = _loss_and_grads(name, eps, views, "fp32", **hparams)
    # In fp32, z·z = 1 − δ with δ a few units of roundoff (≤ 2e-7), so W = (S − 1)/ε is off by up to δ/ε.
    rel = 1e-10 if dtype == torch.float64 else 2e-6 / eps
    assert float(loss) == pytest.approx(_identical_batch_loss(name, n, eps, q, lam, rho, uni), rel=rel, abs=1e-6)
    # Every z is the same unit vector, so dL/dz is parallel to z and the normalisation projects it away.
    for grad in grads:
        assert float(grad.abs().max()) < (1e-12 if dtype == torch.float64 else 1e-4)


@pytest.mark.parametrize(
    "name", ["infonce", pytest.param("gca_uot", marks=pytest.mark.slow)]
)
def test_largest_batch_forward_and_backward_are_finite(name):
    _check_finite(name, 0.005, _random_views(8192, seed=8192), "fp32", nonzero_grad=True)


def test_one_sample_per_view_is_rejected_by_design():
    """n = 2 as B = 1, V = 2 has no negatives; as B = 2, V = 1 it has no positives."""
    loss_fn = make_loss("infonce")
    with pytest.raises(ValueError, match="at least two samples per view.*batch size 1"):
        loss_fn(torch.randn(1, DIM), torch.randn(1, DIM))
    with pytest.raises(ValueError, match="at least two views.*got 1"):
        loss_fn(torch.randn(2, DIM))
