"""Batched view augmentations: a whole uint8 batch (B, C, H, W) at once, on the batch's own device.

:class:`BatchAugment` draws one independent set of parameters per sample from the same
distributions as the per-image torchvision pipeline of :func:`gcalib.training.augment.make_view_transform`
(constants shared through :func:`gcalib.training.augment.recipe`) and applies them with tensor operations
over the batch, without PIL and without a per-image Python loop:

- random resized crop + horizontal flip: PyTorch's antialiased bilinear resize of each sample's box
  (one ``grid_sample`` when every crop is upscaled, else two batched products with per-sample
  resize matrices); boxes follow torchvision's RandomResizedCrop sampler (area fraction ~ U(scale),
  log aspect ratio ~ U(log ratio), first of 10 attempts that fits, else the central fallback);
- colour jitter (p = jitter_p): brightness, contrast, saturation factors ~ U[max(0, 1 − j), 1 + j],
  hue shift ~ U[−j_h, j_h], applied in a random order drawn per sample, as ColorJitter does;
- grayscale (p = grayscale_p), Gaussian blur (p = blur_p, σ ~ U(blur_sigma), reflect padding),
  the CIFAR-10-C brightness shift (:func:`gcalib.training.augment.brightness_shift`), normalisation, and
  random erasing with torchvision's RandomErasing sampler (value after normalisation).

Difference from the per-image pipeline: that one crops, jitters and blurs uint8 images and rounds to
integers after each step; the batched path stays in float32, so outputs differ by at most a few grey
levels where those roundings fall, never in distribution. Values are clipped to [0, 1] after the
crop and the blur only to undo floating-point rounding of convex combinations.

On the CPU each per-sample step runs on the rows that take it (``index_select`` / ``index_copy_``); on
accelerators on the whole batch, kept by torch.where, so that nothing waits for the device.

``multi_view(images, n_views)`` returns V views stacked in the blocked layout: rows
[view 1 of samples 0..B−1; view 2 of samples 0..B−1; ...], row r belongs to sample r mod B.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gcalib.training.augment import ViewRecipe, blur_kernel_size, brightness_shift, recipe
from gcalib.validation import check_int, check_nonnegative, check_real, fail

__all__ = [
    "Boxes", "JitterParams", "ViewParams", "BatchAugment", "sample_crop_boxes", "sample_erase_boxes",
    "sample_jitter_params", "resize_weights", "resized_crop", "adjust_brightness", "adjust_contrast",
    "adjust_saturation", "adjust_hue", "color_jitter", "rgb_to_grayscale", "gaussian_blur", "erase",
]

CROP_ATTEMPTS = 10
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # ColorJitter's op ids

DeviceLike = Union[torch.device, str, None]


@dataclass(frozen=True)
class Boxes:
    """One axis-aligned box per sample: rows top..top+height−1, columns left..left+width−1.

    A box of zero height or width selects nothing.

    Parameters
    ----------
    top, left, height, width : torch.Tensor
        int64 tensors (n,).
    """

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor

    def to(self, device: DeviceLike) -> "Boxes":
        """The boxes on ``device``.

        Parameters
        ----------
        device : str or torch.device

        Returns
        -------
        Boxes
        """
        return Boxes(*(t.to(device) for t in dataclasses.astuple(self)))


@dataclass(frozen=True)
class JitterParams:
    """Per-sample colour-jitter draws (:func:`sample_jitter_params`).

    Parameters
    ----------
    applied : torch.Tensor
        bool (n,): whether the jitter applies to the sample.
    order : torch.Tensor
        int64 (n, 4): each row a permutation of the op ids BRIGHTNESS, CONTRAST, SATURATION, HUE.
    brightness, contrast, saturation : torch.Tensor
        float32 (n,) factors.
    hue : torch.Tensor
        float32 (n,) hue shifts.
    active : tuple of int
        The ops with non-zero strength (the others are skipped, as ColorJitter skips a range of zero width).
    """

    applied: Tensor
    order: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    active: tuple[int, ...]

    def to(self, device: DeviceLike) -> "JitterParams":
        """The draws on ``device``.

        Parameters
        ----------
        device : str or torch.device

        Returns
        -------
        JitterParams
        """
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return JitterParams(**{k: v.to(device) if isinstance(v, Tensor) else v for k, v in fields.items()})


@dataclass(frozen=True)
class ViewParams:
    """Every random draw of one view for n samples (:meth:`BatchAugment.sample_params`).

    Parameters
    ----------
    crop : Boxes
        The crop of each sample.
    flip : torch.Tensor
        bool (n,): mirror the sample.
    jitter : JitterParams
        The colour jitter.
    grayscale : torch.Tensor
        bool (n,): convert to grayscale.
    blur : torch.Tensor
        bool (n,): blur the sample.
    sigma : torch.Tensor
        float (n,): σ of the blur.
    erase : Boxes
        The erased box of each sample; boxes of zero size erase nothing.
    """

    crop: Boxes
    flip: Tensor
    jitter: JitterParams
    grayscale: Tensor
    blur: Tensor
    sigma: Tensor
    erase: Boxes

    def to(self, device: DeviceLike) -> "ViewParams":
        """The draws on ``device``.

        Parameters
        ----------
        device : str or torch.device

        Returns
        -------
        ViewParams
        """
        return ViewParams(self.crop.to(device), self.flip.to(device), self.jitter.to(device),
                          self.grayscale.to(device), self.blur.to(device), self.sigma.to(device),
                          self.erase.to(device))


# ----------------------------------------------------------------------------------------------
# samplers


def _check_range(name: str, value: Sequence[float], positive: bool) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi and (lo > 0 if positive else lo >= 0)):
        raise ValueError(f"{name} must be a finite range (low, high) with "
                         f"{'0 < low' if positive else '0 <= low'} <= high, got {tuple(value)!r}")
    return lo, hi


def _resolve_device(generator: Optional[torch.Generator], device: DeviceLike) -> torch.device:
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def _uniform(shape: tuple[int, ...], lo: float, hi: float, generator: Optional[torch.Generator],
             device: torch.device) -> Tensor:
    """U[lo, hi) as lo + (hi − lo)·U[0, 1), like Tensor.uniform_."""
    return lo + (hi - lo) * torch.rand(shape, generator=generator, device=device)


def _bernoulli(n: int, p: float, generator: Optional[torch.Generator], device: torch.device) -> Tensor:
    """True with probability p: ``rand < p``, the test of RandomApply and the random flips."""
    return torch.rand((n,), generator=generator, device=device) < p


def _randint_below(span: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """Uniform integers in [0, span) per entry (span ≥ 1), bias below span/2⁶²."""
    draws = torch.randint(0, 2 ** 62, span.shape, generator=generator, device=span.device)
    return draws % span


def _sample_sides(n: int, height: int, width: int, scale: tuple[float, float],
                  ratio: tuple[float, float], generator: Optional[torch.Generator],
                  device: torch.device) -> tuple[Tensor, Tensor]:
    """CROP_ATTEMPTS draws per sample of a = H·W·U(scale), r = exp(U(log ratio)); returns
    (round(√(a·r)), round(√(a/r))), each (n, CROP_ATTEMPTS) int64."""
    target = height * width * _uniform((n, CROP_ATTEMPTS), *scale, generator, device)
    aspect = torch.exp(_uniform((n, CROP_ATTEMPTS), math.log(ratio[0]), math.log(ratio[1]),
                                generator, device))
    return torch.round(torch.sqrt(target * aspect)).long(), torch.round(torch.sqrt(target / aspect)).long()


def _first_true(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(index of the first True per row, whether the row has one)."""
    return mask.to(torch.uint8).argmax(dim=1), mask.any(dim=1)


def sample_crop_boxes(n: int, height: int, width: int, scale: Sequence[float],
                      ratio: Sequence[float], *, generator: Optional[torch.Generator] = None,
                      device: DeviceLike = None) -> Boxes:
    """Crop boxes of torchvision's RandomResizedCrop, n at once.

    Per attempt: a = H·W·U(scale), r = exp(U(log ratio)), w = round(√(a·r)), h = round(√(a/r));
    the first of 10 attempts with 0 < w ≤ W and 0 < h ≤ H wins, with top ~ U{0..H−h} and
    left ~ U{0..W−w}; without one, the central crop of the whole image clipped to the ratio range.

    Parameters
    ----------
    n : int
        Number of boxes, >= 0.
    height, width : int
        Image size H × W.
    scale : (float, float)
        Range of the area fraction, ``0 <= low <= high``.
    ratio : (float, float)
        Range of the aspect ratio w/h, ``0 < low <= high``.
    generator : torch.Generator, optional
        Source of the random numbers; the draws live on its device.
    device : str or torch.device, optional
        Device of the draws without a generator (default CPU).

    Returns
    -------
    Boxes

    Raises
    ------
    TypeError, ValueError
        For sizes that are not ints >= 1 or invalid ranges.
    """
    check_int("n", n, 0)
    check_int("height", height, 1)
    check_int("width", width, 1)
    scale = _check_range("scale", scale, positive=False)
    ratio = _check_range("ratio", ratio, positive=True)
    dev = _resolve_device(generator, device)
    w_all, h_all = _sample_sides(n, height, width, scale, ratio, generator, dev)
    ok = (w_all > 0) & (w_all <= width) & (h_all > 0) & (h_all <= height)
    first, found = _first_true(ok)
    h = h_all.gather(1, first[:, None])[:, 0]
    w = w_all.gather(1, first[:, None])[:, 0]
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = int(round(height * ratio[1])), height
    else:
        fallback_w, fallback_h = width, height
    h = torch.where(found, h, fallback_h)
    w = torch.where(found, w, fallback_w)
    top = torch.where(found, _randint_below(height - h + 1, generator), (height - fallback_h) // 2)
    left = torch.where(found, _randint_below(width - w + 1, generator), (width - fallback_w) // 2)
    return Boxes(top, left, h, w)


def sample_erase_boxes(n: int, height: int, width: int, scale: Sequence[float],
                       ratio: Sequence[float], *, p: float = 1.0,
                       generator: Optional[torch.Generator] = None, device: DeviceLike = None) -> Boxes:
    """Erasing boxes of torchvision's RandomErasing, n at once.

    With probability p: per attempt a = H·W·U(scale), r = exp(U(log ratio)), h = round(√(a·r)),
    w = round(√(a/r)); the first of 10 attempts with h < H and w < W wins, with top ~ U{0..H−h},
    left ~ U{0..W−w}. No winner (or not applied): an empty box (nothing erased).

    Parameters
    ----------
    n : int
        Number of boxes, >= 0.
    height, width : int
        Image size H × W.
    scale : (float, float)
        Range of the erased area fraction.
    ratio : (float, float)
        Range of the aspect ratio, ``0 < low <= high``.
    p : float, default 1.0
        Probability that a sample is erased.
    generator : torch.Generator, optional
        Source of the random numbers; the draws live on its device.
    device : str or torch.device, optional
        Device of the draws without a generator (default CPU).

    Returns
    -------
    Boxes

    Raises
    ------
    TypeError, ValueError
        For sizes that are not ints >= 1, invalid ranges or ``p`` outside [0, 1].
    """
    check_int("n", n, 0)
    check_int("height", height, 1)
    check_int("width", width, 1)
    scale = _check_range("scale", scale, positive=False)
    ratio = _check_range("ratio", ratio, positive=True)
    check_real("p", p, lambda v: 0 <= v <= 1, "a probability in [0, 1]")
    dev = _resolve_device(generator, device)
    applied = _bernoulli(n, p, generator, dev)
    h_all, w_all = _sample_sides(n, height, width, scale, ratio, generator, dev)
    first, found = _first_true((h_all < height) & (w_all < width))
    keep = found & applied
    h = torch.where(keep, h_all.gather(1, first[:, None])[:, 0], 0)
    w = torch.where(keep, w_all.gather(1, first[:, None])[:, 0], 0)
    top = _randint_below(height - h + 1, generator)
    left = _randint_below(width - w + 1, generator)
    return Boxes(top, left, h, w)


def _jitter_range(name: str, strength: float, centre: float) -> tuple[float, float]:
    check_nonnegative(f"{name} jitter", strength)
    return (max(0.0, centre - strength), centre + strength) if centre else (-strength, strength)


def sample_jitter_params(n: int, jitter: Sequence[float], p: float, *,
                         generator: Optional[torch.Generator] = None,
                         device: DeviceLike = None) -> JitterParams:
    """Draws of ``RandomApply([ColorJitter(b, c, s, h)], p)``, n at once.

    applied ~ Bernoulli(p), a uniformly random op order (argsort of 4 uniforms), brightness, contrast
    and saturation factors ~ U[max(0, 1 − j), 1 + j], hue shift ~ U[−h, h].

    Parameters
    ----------
    n : int
        Number of samples, >= 0.
    jitter : (float, float, float, float)
        The strengths (b, c, s, h), each >= 0, h <= 0.5.
    p : float
        Probability that the jitter applies, in [0, 1].
    generator : torch.Generator, optional
        Source of the random numbers; the draws live on its device.
    device : str or torch.device, optional
        Device of the draws without a generator (default CPU).

    Returns
    -------
    JitterParams

    Raises
    ------
    ValueError
        When ``jitter`` does not have four entries, a strength is negative, h > 0.5 or p is outside [0, 1].
    """
    check_int("n", n, 0)
    if len(jitter) != 4:
        raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {tuple(jitter)!r}")
    b, c, s, h = (float(v) for v in jitter)
    if h > 0.5:
        raise ValueError(f"hue jitter must be <= 0.5, got {h!r}")
    check_real("p", p, lambda v: 0 <= v <= 1, "a probability in [0, 1]")
    dev = _resolve_device(generator, device)
    applied = _bernoulli(n, p, generator, dev)
    order = torch.rand((n, 4), generator=generator, device=dev).argsort(dim=1)
    ranges = [_jitter_range("brightness", b, 1.0), _jitter_range("contrast", c, 1.0),
              _jitter_range("saturation", s, 1.0), _jitter_range("hue", h, 0.0)]
    draws = [_uniform((n,), lo, hi, generator, dev) for lo, hi in ranges]
    active = tuple(op for op, value in enumerate((b, c, s, h)) if value > 0)
    return JitterParams(applied, order, *draws, active=active)


# ----------------------------------------------------------------------------------------------
# batched image operations (float images in [0, 1], per-sample parameters as (n,) tensors)


def resize_weights(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """Weights (n, out_size, in_size) resizing the segment [start, start+length) of an axis to
    out_size samples with PyTorch's antialiased bilinear filter (align_corners=False):
    scale σ = length/out, support s = max(σ, 1), centre c_o = σ·(o + ½),
    ``w_{o,j} ∝ max(0, 1 − |j − start + ½ − c_o| / s)`` for start ≤ j < start+length, rows
    normalised.

    Parameters
    ----------
    start, length : torch.Tensor
        int64 (n,): the segment of each sample (length >= 1).
    in_size : int
        Length of the axis.
    out_size : int
        Samples of the resized segment.

    Returns
    -------
    torch.Tensor
        float32 (n, out_size, in_size), each row summing to 1.
    """
    dtype = torch.float32
    scale = length.to(dtype)[:, None, None] / out_size
    support = scale.clamp_min(1.0)
    centre = scale * (torch.arange(out_size, device=start.device, dtype=dtype)[None, :, None] + 0.5)
    local = torch.arange(in_size, device=start.device)[None, None, :] - start[:, None, None]
    weights = (1.0 - (local.to(dtype) + 0.5 - centre).abs() / support).clamp_min(0.0)
    weights = weights * ((local >= 0) & (local < length[:, None, None]))
    return weights / weights.sum(dim=2, keepdim=True)


def _source_coordinates(start: Tensor, length: Tensor, size: int) -> Tensor:
    """Bilinear source positions (n, size) of an upscaling resize of [start, start+length) (σ ≤ 1,
    where the antialiased filter is plain bilinear): start + clip(σ·(o + ½) − ½, 0, length − 1)."""
    scale = length.to(torch.float32)[:, None] / size
    centre = scale * (torch.arange(size, device=start.device, dtype=torch.float32) + 0.5)
    local = (centre - 0.5).clamp_min(0.0)
    return start[:, None] + torch.minimum(local, (length - 1)[:, None].to(torch.float32))


def resized_crop(images: Tensor, boxes: Boxes, size: int, flip: Optional[Tensor] = None) -> Tensor:
    """Crop box b of sample b (non-empty, inside the image), resize it to size × size with PyTorch's
    antialiased bilinear filter and mirror the samples where ``flip`` is True.

    Images no larger than size × size (every crop is upscaled, the filter is bilinear) go through one
    ``grid_sample`` at the source positions; larger ones through two batched matrix products
    out_b = A_y,b · x_b · A_x,bᵀ with :func:`resize_weights`.

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W).
    boxes : Boxes
        One non-empty box inside the image per sample.
    size : int
        Side of the output.
    flip : torch.Tensor, optional
        bool (n,): mirror these samples horizontally.

    Returns
    -------
    torch.Tensor
        float (n, C, size, size).
    """
    n, channels, height, width = images.shape
    if height <= size and width <= size:
        ys = _source_coordinates(boxes.top, boxes.height, size)
        xs = _source_coordinates(boxes.left, boxes.width, size)
        if flip is not None:
            xs = torch.where(flip[:, None], xs.flip(1), xs)
        grid_x = ((2.0 * xs + 1.0) / width - 1.0)[:, None, :].expand(n, size, size)
        grid_y = ((2.0 * ys + 1.0) / height - 1.0)[:, :, None].expand(n, size, size)
        grid = torch.stack((grid_x, grid_y), dim=3)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    rows = resize_weights(boxes.top, boxes.height, height, size)
    cols = resize_weights(boxes.left, boxes.width, width, size)
    if flip is not None:
        cols = torch.where(flip[:, None, None], cols.flip(1), cols)
    along_x = torch.bmm(images.reshape(n, channels * height, width), cols.transpose(1, 2))
    along_x = along_x.view(n, channels, height, size).transpose(1, 2).reshape(n, height, channels * size)
    return torch.bmm(rows, along_x).view(n, size, channels, size).transpose(1, 2).contiguous()


def _luma(images: Tensor) -> Tensor:
    """L = 0.2989 R + 0.587 G + 0.114 B as (n, 1, H, W) (torchvision's rgb_to_grayscale)."""
    red, green, blue = images.unbind(dim=1)
    luma = red * GRAY_WEIGHTS[0]
    return luma.add_(green, alpha=GRAY_WEIGHTS[1]).add_(blue, alpha=GRAY_WEIGHTS[2]).unsqueeze(1)


def _per_sample(values: Tensor) -> Tensor:
    return values.to(torch.float32)[:, None, None, None]


# In-place kernels: each overwrites ``x`` (float (n, C, H, W) in [0, 1]) and returns it.

def _brightness_(x: Tensor, factor: Tensor) -> Tensor:
    return x.mul_(_per_sample(factor)).clamp_(0.0, 1.0)


def _blend_(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """clip(f·x + (1 − f)·other, 0, 1), the blend of torchvision's adjust_* functions."""
    f = _per_sample(factor)
    return x.mul_(f).add_(other * (1.0 - f)).clamp_(0.0, 1.0)


def _contrast_(x: Tensor, factor: Tensor) -> Tensor:
    means = x.mean(dim=(2, 3), keepdim=True)
    if x.shape[1] == 3:
        means = _luma(means)
    return _blend_(x, means, factor)


def _saturation_(x: Tensor, factor: Tensor) -> Tensor:
    return x if x.shape[1] == 1 else _blend_(x, _luma(x), factor)


def _hue_(x: Tensor, shift: Tensor) -> Tensor:
    """HSV hue rotation, see :func:`adjust_hue`."""
    if x.shape[1] == 1:
        return x
    red, green, blue = x.unbind(dim=1)
    top, bottom = x.amax(dim=1), x.amin(dim=1)
    spread = top - bottom
    # select with lerp by 0/1 weights (exact, and much faster than a boolean torch.where on the CPU)
    numerator = torch.lerp((red - green).add_(spread, alpha=4.0), (blue - red).add_(spread, alpha=2.0),
                           (green == top).to(x.dtype))
    numerator = torch.lerp(numerator, green - blue, (red == top).to(x.dtype))
    # Δ = 0 implies a zero numerator, so the clamped divisor only turns 0/0 into 0.
    sextant = numerator.div_(spread.clamp_min(torch.finfo(x.dtype).tiny))
    sextant = sextant.add_(6.0 * _per_sample(shift)[:, 0]).unsqueeze(1)
    starts = torch.arange(0.0, 6.0, 2.0, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    x.copy_(sextant.expand_as(x)).sub_(starts)
    x.abs_().sub_(6.0).abs_().sub_(3.0).abs_().sub_(1.0).clamp_(0.0, 1.0)
    return x.mul_(spread.unsqueeze(1)).add_(bottom.unsqueeze(1))


def _grayscale_(x: Tensor) -> Tensor:
    return x if x.shape[1] == 1 else x.copy_(_luma(x).expand_as(x))


def _update_rows_(x: Tensor, rows: Tensor, kernel: Callable[..., Tensor], *per_sample: Tensor,
                  gather: Optional[bool] = None) -> Tensor:
    """x[b] ← kernel(x[b], per_sample[b]) for the samples b with ``rows`` True, in place.

    gather=True (default on the CPU): the kernel runs on the selected rows only. gather=False
    (default elsewhere): it runs on the whole batch and torch.where keeps the selected rows, which
    needs no host synchronisation."""
    if gather if gather is not None else x.device.type == "cpu":
        index = rows.nonzero()[:, 0]
        if index.numel():
            picked = kernel(x.index_select(0, index), *(v.index_select(0, index) for v in per_sample))
            x.index_copy_(0, index, picked)
        return x
    return x.copy_(torch.where(rows[:, None, None, None], kernel(x.clone(), *per_sample), x))


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """Brightness ``clip(f·x, 0, 1)`` with one factor f per sample.

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W) in [0, 1].
    factor : torch.Tensor
        (n,) factors >= 0.

    Returns
    -------
    torch.Tensor
        New images, same shape.
    """
    return _brightness_(images.clone(), factor)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Contrast: blend with the sample's mean luma, ``clip(f·x + (1 − f)·mean(L), 0, 1)``.

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W) in [0, 1], C ∈ {1, 3}.
    factor : torch.Tensor
        (n,) factors >= 0.

    Returns
    -------
    torch.Tensor
        New images, same shape.
    """
    return _contrast_(images.clone(), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Saturation: blend with the per-pixel luma, ``clip(f·x + (1 − f)·L, 0, 1)``; one channel is left unchanged.

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W) in [0, 1], C ∈ {1, 3}.
    factor : torch.Tensor
        (n,) factors >= 0.

    Returns
    -------
    torch.Tensor
        New images, same shape.
    """
    return _saturation_(images.clone(), factor)


def adjust_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue: H ← (H + shift) mod 1, S and V kept; one channel is left unchanged.

    With M = max, m = min and Δ = M − m over the channels, the hue in sextants is
    6H = (G − B)/Δ if M = R, else (B − R)/Δ + 2 if M = G, else (R − G)/Δ + 4 (0 where Δ = 0). The
    rotated pixel is channel_c = m + Δ·clip(d(6H + 6·shift − s_c) − 1, 0, 1), s = (0, 2, 4) for
    R, G, B, where ``d(t) = |||t| − 6| − 3|`` is the distance of t from 3 + 6ℤ (valid for ``|t| ≤ 12``; here
    ``|t| < 8``): torchvision's HSV hexcone map.

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W) in [0, 1], C ∈ {1, 3}.
    shift : torch.Tensor
        (n,) hue shifts in [−0.5, 0.5].

    Returns
    -------
    torch.Tensor
        New images, same shape.
    """
    return _hue_(images.clone(), shift)


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """Luma ``L = 0.2989 R + 0.587 G + 0.114 B`` (torchvision's weights).

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W), C ∈ {1, 3}.

    Returns
    -------
    torch.Tensor
        (n, 1, H, W); one-channel input is returned as it is.
    """
    return images if images.shape[1] == 1 else _luma(images)


def gaussian_blur(images: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with reflect padding, kernel k_t ∝ exp(−t²/(2σ_b²)),
    t = −(K−1)/2..(K−1)/2, one σ per sample (a depthwise convolution over the batch).

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W).
    kernel_size : int
        K, an odd int >= 1 smaller than the image sides (reflect padding).
    sigma : torch.Tensor
        (n,) σ > 0.

    Returns
    -------
    torch.Tensor
        New images, same shape.

    Raises
    ------
    TypeError, ValueError
        When ``kernel_size`` is not an odd int >= 1.
    """
    if check_int("kernel_size", kernel_size, 1) % 2 == 0:
        fail("kernel_size", kernel_size, "an odd int >= 1")
    n, channels, height, width = images.shape
    half = kernel_size // 2
    taps = torch.arange(kernel_size, device=images.device, dtype=images.dtype) - half
    kernel = torch.softmax(-(taps[None, :] ** 2) / (2.0 * sigma.to(images.dtype)[:, None] ** 2), dim=1)
    kernel = kernel.repeat_interleave(channels, dim=0)
    padded = F.pad(images, (half, half, half, half), mode="reflect")
    padded = padded.reshape(1, n * channels, height + 2 * half, width + 2 * half)
    out = F.conv2d(padded, kernel[:, None, :, None], groups=n * channels)
    out = F.conv2d(out, kernel[:, None, None, :], groups=n * channels)
    return out.view(n, channels, height, width)


def erase(images: Tensor, boxes: Boxes, value: float = 0.0) -> Tensor:
    """Set the pixels of box b of sample b (all channels) to ``value``.

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W).
    boxes : Boxes
        One box per sample (empty boxes erase nothing).
    value : float, default 0.0
        The erased pixels' value.

    Returns
    -------
    torch.Tensor
        New images, same shape.
    """
    height, width = images.shape[-2:]
    ys = torch.arange(height, device=images.device)[None, :]
    xs = torch.arange(width, device=images.device)[None, :]
    in_rows = (ys >= boxes.top[:, None]) & (ys < (boxes.top + boxes.height)[:, None])
    in_cols = (xs >= boxes.left[:, None]) & (xs < (boxes.left + boxes.width)[:, None])
    inside = (in_rows.to(images.dtype)[:, :, None] * in_cols.to(images.dtype)[:, None, :]).unsqueeze(1)
    # x·(1 − m) + value·m with m ∈ {0, 1}: exact, and faster than masked_fill on the CPU
    out = images * (1.0 - inside)
    return out.add_(inside, alpha=value) if value else out


_JITTER_KERNELS = {BRIGHTNESS: _brightness_, CONTRAST: _contrast_, SATURATION: _saturation_, HUE: _hue_}


def _color_jitter_(x: Tensor, params: JitterParams, gather: Optional[bool] = None) -> Tensor:
    values = (params.brightness, params.contrast, params.saturation, params.hue)
    for position in range(4):
        for op in params.active:
            rows = params.applied & (params.order[:, position] == op)
            _update_rows_(x, rows, _JITTER_KERNELS[op], values[op], gather=gather)
    return x


def color_jitter(images: Tensor, params: JitterParams) -> Tensor:
    """Per-sample ColorJitter: for the samples with ``applied``, the active ops in the sample's own ``order``.

    Parameters
    ----------
    images : torch.Tensor
        float (n, C, H, W) in [0, 1].
    params : JitterParams
        The draws (:func:`sample_jitter_params`).

    Returns
    -------
    torch.Tensor
        New images, same shape.
    """
    return _color_jitter_(images.clone(), params)


# ----------------------------------------------------------------------------------------------
# the module


def _check_images(images: Tensor, channels: int) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (values 0..255), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != channels:
        raise ValueError(f"images must have shape (B, C, H, W) with C = {channels} channels (the length "
                         f"of mean and std), got {tuple(images.shape)}")


class BatchAugment(nn.Module):
    """Batched random view of a preset: uint8 (B, C, H, W) → normalised float32 (B, C, image_size, image_size).

    The parameters are drawn per sample with the distributions of
    ``gcalib.training.augment.make_view_transform(name, image_size, mean, std, strength=strength, blur=blur)``,
    and the whole batch is transformed at once on its device. Random numbers come from ``generator``
    (parameters are drawn on its device) or from the global RNG of the batch's device.

    Parameters
    ----------
    name : str
        One of :data:`gcalib.training.augment.AUGMENTATIONS`.
    image_size : int
        Side of the views, >= 1.
    mean, std : sequence of float
        Per-channel statistics (1 or 3 channels) on the [0, 1] scale; ``std`` > 0.
    strength : float, default 0.5
        Colour-jitter strength s.
    blur : bool, default False
        Add the Gaussian blur.

    Raises
    ------
    TypeError, ValueError
        For an unknown preset or out-of-range arguments.

    Examples
    --------
    >>> augment = BatchAugment("simclr", 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    >>> images = torch.zeros(4, 3, 20, 20, dtype=torch.uint8)
    >>> tuple(augment.multi_view(images, 2, torch.Generator().manual_seed(0)).shape)
    (8, 3, 16, 16)
    """

    def __init__(self, name: str, image_size: int, mean: Sequence[float], std: Sequence[float], *,
                 strength: float = 0.5, blur: bool = False) -> None:
        super().__init__()
        self._setup(recipe(name, strength, blur), image_size, mean, std)

    @classmethod
    def from_recipe(cls, view: ViewRecipe, image_size: int, mean: Sequence[float],
                    std: Sequence[float]) -> "BatchAugment":
        """A BatchAugment for an explicit (possibly modified) view recipe.

        Parameters
        ----------
        view : gcalib.training.augment.ViewRecipe
            The constants of the view.
        image_size : int
            Side of the views.
        mean, std : sequence of float
            Per-channel statistics.

        Returns
        -------
        BatchAugment

        Raises
        ------
        TypeError
            When ``view`` is not a ViewRecipe.
        ValueError
            For out-of-range arguments.
        """
        if not isinstance(view, ViewRecipe):
            raise TypeError(f"view must be a gcalib.training.augment.ViewRecipe, got {type(view).__name__}")
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module._setup(view, image_size, mean, std)
        return module

    def _setup(self, view: ViewRecipe, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        check_int("image_size", image_size, 1)
        mean, std = [float(m) for m in mean], [float(s) for s in std]
        if len(mean) != len(std) or len(mean) not in (1, 3):
            raise ValueError(f"mean and std need the same length 1 or 3, got mean={mean}, std={std}")
        if min(std) <= 0:
            raise ValueError(f"std must be positive per channel, got {std}")
        self.recipe = view
        self.image_size = image_size
        self.blur_kernel_size = blur_kernel_size(image_size)
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        """The recipe and the image size, for ``repr``.

        Returns
        -------
        str
        """
        return f"recipe={self.recipe}, image_size={self.image_size}"

    def sample_params(self, n: int, height: int, width: int, *,
                      generator: Optional[torch.Generator] = None, device: DeviceLike = None) -> ViewParams:
        """All random draws for n samples of an H × W batch, in a fixed order (a seeded generator reproduces them).

        Parameters
        ----------
        n : int
            Number of samples.
        height, width : int
            Size of the input images.
        generator : torch.Generator, optional
            Source of the random numbers; the draws live on its device.
        device : str or torch.device, optional
            Device of the draws without a generator (default CPU).

        Returns
        -------
        ViewParams

        Raises
        ------
        ValueError
            For the deterministic ``none`` view, which has no random parameters.
        """
        view = self.recipe
        if view.crop_scale is None:
            raise ValueError(f"view {view.name!r} has no random parameters")
        crop = sample_crop_boxes(n, height, width, view.crop_scale, view.crop_ratio,
                                 generator=generator, device=device)
        dev = crop.top.device
        flip = _bernoulli(n, view.flip_p, generator, dev)
        jitter = sample_jitter_params(n, view.jitter, view.jitter_p, generator=generator, device=dev)
        grayscale = _bernoulli(n, view.grayscale_p, generator, dev)
        blur = _bernoulli(n, view.blur_p, generator, dev)
        sigma = _uniform((n,), *_check_range("blur_sigma", view.blur_sigma, positive=True), generator, dev)
        erase_boxes = sample_erase_boxes(n, self.image_size, self.image_size, view.erase_scale,
                                         view.erase_ratio, p=view.erase_p, generator=generator, device=dev)
        return ViewParams(crop, flip, jitter, grayscale, blur, sigma, erase_boxes)

    def apply(self, images: Tensor, params: ViewParams) -> Tensor:
        """The view of each sample under the given draws (deterministic).

        Parameters
        ----------
        images : torch.Tensor
            uint8 (n, C, H, W).
        params : ViewParams
            Draws for n samples (:meth:`sample_params`).

        Returns
        -------
        torch.Tensor
            float32 (n, C, image_size, image_size).

        Raises
        ------
        TypeError
            When ``images`` is not a uint8 tensor.
        ValueError
            When its shape or the number of draws does not fit.
        """
        _check_images(images, self.mean.shape[0])
        view = self.recipe
        if params.flip.shape != (images.shape[0],):
            raise ValueError(f"params are for {params.flip.shape[0]} samples, images has {images.shape[0]}")
        params = params.to(images.device)
        x = resized_crop(images.to(torch.float32), params.crop, self.image_size, params.flip)
        x = x.mul_(1.0 / 255.0).clamp_(0.0, 1.0)
        x = _color_jitter_(x, params.jitter)
        _update_rows_(x, params.grayscale, _grayscale_)
        if view.blur_p > 0:
            _update_rows_(x, params.blur, self._blur, params.sigma)
        return self._finish(x, params.erase)

    def _blur(self, images: Tensor, sigma: Tensor) -> Tensor:
        return gaussian_blur(images, self.blur_kernel_size, sigma).clamp_(0.0, 1.0)

    def _finish(self, x: Tensor, erase_boxes: Optional[Boxes]) -> Tensor:
        view = self.recipe
        if view.brightness_severity is not None:
            x = brightness_shift(x, view.brightness_severity)
        x = x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))
        if view.erase_p > 0 and erase_boxes is not None:
            x = erase(x, erase_boxes, view.erase_value)
        return x

    def _deterministic(self, images: Tensor) -> Tensor:
        """The ``none`` view: shorter side resized to image_size, centre crop, normalise."""
        n, _, height, width = images.shape
        size = self.image_size
        x = images.to(torch.float32) / 255.0
        if (height, width) != (size, size):
            long_side = int(size * max(height, width) / min(height, width))
            resized = (size, long_side) if height <= width else (long_side, size)
            weights = []
            for axis_in, axis_out in zip((height, width), resized):
                whole = resize_weights(torch.zeros(1, dtype=torch.long, device=x.device),
                                       torch.full((1,), axis_in, device=x.device), axis_in, axis_out)
                offset = int(round((axis_out - size) / 2.0))
                weights.append(whole[:, offset:offset + size])
            x = torch.matmul(weights[0], torch.matmul(x, weights[1].transpose(1, 2))).clamp(0.0, 1.0)
        return self._finish(x, None)

    def forward(self, images: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """One random view per sample.

        Parameters
        ----------
        images : torch.Tensor
            uint8 (B, C, H, W).
        generator : torch.Generator, optional
            Source of the random numbers (default: the global RNG of the images' device).

        Returns
        -------
        torch.Tensor
            float32 (B, C, image_size, image_size) on the images' device.
        """
        _check_images(images, self.mean.shape[0])
        if self.recipe.crop_scale is None:
            return self._deterministic(images)
        params = self.sample_params(images.shape[0], images.shape[2], images.shape[3],
                                    generator=generator, device=images.device)
        return self.apply(images, params)

    def multi_view(self, images: Tensor, n_views: int = 2,
                   generator: Optional[torch.Generator] = None) -> Tensor:
        """``n_views`` independent views per sample, in the blocked layout.

        Parameters
        ----------
        images : torch.Tensor
            uint8 (B, C, H, W).
        n_views : int, default 2
            Views per sample, >= 1.
        generator : torch.Generator, optional
            Source of the random numbers.

        Returns
        -------
        torch.Tensor
            float32 (n_views·B, C, image_size, image_size); row r is view r // B of sample r mod B.
        """
        check_int("n_views", n_views, 1)
        _check_images(images, self.mean.shape[0])
        return self(images.repeat(n_views, 1, 1, 1), generator)
