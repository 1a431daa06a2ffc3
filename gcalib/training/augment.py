"""View augmentations: the SimCLR recipe, the paper's extreme views, and the CIFAR-10-C brightness shift.

Every preset is described by a frozen :class:`ViewRecipe` (``recipe(name, strength, blur)``) so that a
batched implementation can share the exact constants; :func:`make_view_transform` turns a recipe into a
``torchvision.transforms.v2`` pipeline mapping a uint8 image (C, H, W) to a normalised float32 view
(C, image_size, image_size). Order: random resized crop → horizontal flip → colour jitter (p 0.8) →
grayscale (p 0.2) → optional Gaussian blur (p 0.5) → to [0, 1] → brightness shift (``brightness``) →
normalise → random erasing with value 0 (``large_erase``). torchvision is imported when a pipeline is built,
so that the recipes (which the batched pipeline and the config checks use) load without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from ..validation import check_bool, check_choice, check_int, check_real

__all__ = [
    "AUGMENTATIONS", "BRIGHTNESS_SHIFTS", "ViewRecipe", "recipe", "blur_kernel_size",
    "brightness_shift", "BrightnessShift", "make_view_transform", "eval_transform",
]

AUGMENTATIONS = ("simclr", "large_erase", "strong_crop", "brightness", "none")

SIMCLR_CROP_SCALE = (0.2, 1.0)
STRONG_CROP_SCALE = (0.02, 0.15)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
FLIP_P = 0.5
JITTER_FACTORS = (0.8, 0.8, 0.8, 0.2)  # brightness, contrast, saturation, hue = factor · strength
JITTER_P = 0.8
GRAYSCALE_P = 0.2
BLUR_P = 0.5
BLUR_SIGMA = (0.1, 2.0)
ERASE_SCALE = (0.25, 0.5)
ERASE_RATIO = (0.3, 3.3)
ERASE_VALUE = 0.0
BRIGHTNESS_SEVERITY = 5
BRIGHTNESS_SHIFTS = (0.1, 0.2, 0.3, 0.4, 0.5)  # CIFAR-10-C: c = BRIGHTNESS_SHIFTS[severity - 1]
MAX_STRENGTH = 2.5  # hue jitter 0.2·strength must stay <= 0.5


@dataclass(frozen=True)
class ViewRecipe:
    """All constants of one view preset (:func:`recipe`), shared by the per-image and the batched pipeline.

    A probability of 0 means the step is absent.

    Parameters
    ----------
    name : str
        The preset (:data:`AUGMENTATIONS`).
    crop_scale : tuple of float or None
        Area range of the random resized crop; ``None``: no random crop (the deterministic ``none`` view).
    crop_ratio : tuple of float
        Aspect-ratio range of the crop.
    flip_p : float
        Probability of a horizontal flip.
    jitter : tuple of float
        Brightness, contrast, saturation and hue jitter of ``ColorJitter``.
    jitter_p : float
        Probability of the colour jitter.
    grayscale_p : float
        Probability of converting to grayscale.
    blur_p : float
        Probability of the Gaussian blur.
    blur_sigma : tuple of float
        Range of the blur's σ.
    brightness_severity : int or None
        CIFAR-10-C brightness severity (:func:`brightness_shift`), or ``None``.
    erase_p : float
        Probability of random erasing.
    erase_scale, erase_ratio : tuple of float
        Area and aspect-ratio ranges of the erased box.
    erase_value : float
        Value of the erased pixels (after normalisation).
    """

    name: str
    crop_scale: Optional[tuple[float, float]]
    crop_ratio: tuple[float, float] = CROP_RATIO
    flip_p: float = 0.0
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    jitter_p: float = 0.0
    grayscale_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = BLUR_SIGMA
    brightness_severity: Optional[int] = None
    erase_p: float = 0.0
    erase_scale: tuple[float, float] = ERASE_SCALE
    erase_ratio: tuple[float, float] = ERASE_RATIO
    erase_value: float = ERASE_VALUE


def recipe(name: str, strength: float = 0.5, blur: bool = False) -> ViewRecipe:
    """The constants of a view preset; its jitter is ``ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)`` with probability 0.8.

    Parameters
    ----------
    name : str
        One of :data:`AUGMENTATIONS`; ``none`` (no randomness) ignores ``strength`` and ``blur`` once they are
        validated.
    strength : float, default 0.5
        The jitter strength s, in [0, 2.5].
    blur : bool, default False
        Add the Gaussian blur (probability 0.5).

    Returns
    -------
    ViewRecipe

    Raises
    ------
    TypeError, ValueError
        For an unknown preset or an out-of-range argument.

    Examples
    --------
    >>> recipe("simclr", strength=0.5).jitter
    (0.4, 0.4, 0.4, 0.1)
    """
    check_choice("augmentation", name, AUGMENTATIONS)
    check_real("strength", strength, lambda v: 0 <= v <= MAX_STRENGTH, f"a number in [0, {MAX_STRENGTH}]")
    check_bool("blur", blur)
    if name == "none":
        return ViewRecipe(name="none", crop_scale=None)
    return ViewRecipe(
        name=name,
        crop_scale=STRONG_CROP_SCALE if name == "strong_crop" else SIMCLR_CROP_SCALE,
        flip_p=FLIP_P,
        jitter=tuple(float(f * strength) for f in JITTER_FACTORS),
        jitter_p=JITTER_P,
        grayscale_p=GRAYSCALE_P,
        blur_p=BLUR_P if blur else 0.0,
        brightness_severity=BRIGHTNESS_SEVERITY if name == "brightness" else None,
        erase_p=1.0 if name == "large_erase" else 0.0,
    )


def blur_kernel_size(image_size: int) -> int:
    """The odd Gaussian-blur kernel size ≈ image_size/10: ``2·⌊image_size/20⌋ + 1``, at least 3.

    Parameters
    ----------
    image_size : int
        Side of the views.

    Returns
    -------
    int

    Examples
    --------
    >>> [blur_kernel_size(n) for n in (32, 96, 224)]
    [3, 9, 23]
    """
    return max(3, 2 * (image_size // 20) + 1)


def brightness_shift(images: torch.Tensor, severity: int) -> torch.Tensor:
    """CIFAR-10-C brightness on float images (..., C, H, W) in [0, 1], C ∈ {1, 3}.

    RGB → HSV, V ← clip(V + c, 0, 1) with c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity − 1], HSV → RGB.
    With H and S fixed every channel is proportional to V = max(R, G, B), so the result is
    V' · (rgb/V) (never above 1: rgb/V <= 1 in floating point), and (V', V', V') where V = 0
    (black has S = 0). One channel: clip(x + c, 0, 1).

    Parameters
    ----------
    images : torch.Tensor
        Floating-point images (..., C, H, W) with values in [0, 1], C ∈ {1, 3}.
    severity : int
        1 to 5.

    Returns
    -------
    torch.Tensor
        The brightened images, same shape and dtype.

    Raises
    ------
    TypeError
        When ``images`` is not a floating-point tensor.
    ValueError
        For another shape, values outside [0, 1] or a severity outside 1..5.
    """
    check_int("severity", severity, 1, len(BRIGHTNESS_SHIFTS))
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError("images must be a floating-point tensor with values in [0, 1], got "
                        f"{images.dtype if isinstance(images, torch.Tensor) else type(images).__name__}")
    if images.ndim < 3 or images.shape[-3] not in (1, 3):
        raise ValueError(f"images must have shape (..., C, H, W) with C in (1, 3), got "
                         f"{tuple(images.shape)}")
    if images.numel() and not bool(((images >= 0) & (images <= 1)).all()):
        raise ValueError(f"images must lie in [0, 1], got range [{images.min().item():.4g}, "
                         f"{images.max().item():.4g}]")
    c = BRIGHTNESS_SHIFTS[severity - 1]
    if images.shape[-3] == 1:
        return (images + c).clamp(0.0, 1.0)
    value = images.amax(dim=-3, keepdim=True)
    new_value = (value + c).clamp(0.0, 1.0)
    scaled = new_value * (images / value.clamp_min(torch.finfo(images.dtype).tiny))
    return torch.where(value > 0, scaled, new_value.expand_as(images))


class BrightnessShift:
    """Transform applying :func:`brightness_shift` with a fixed severity to one float image in [0, 1].

    Parameters
    ----------
    severity : int
        1 to 5.

    Raises
    ------
    ValueError
        For a severity outside 1..5.
    """

    def __init__(self, severity: int) -> None:
        check_int("severity", severity, 1, len(BRIGHTNESS_SHIFTS))
        self.severity = severity

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """:func:`brightness_shift` of ``image`` (C, H, W) in [0, 1].

        Parameters
        ----------
        image : torch.Tensor

        Returns
        -------
        torch.Tensor
        """
        return brightness_shift(image, self.severity)

    def __repr__(self) -> str:
        return f"BrightnessShift(severity={self.severity})"


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    mean, std = [float(m) for m in mean], [float(s) for s in std]
    if len(mean) != len(std) or not mean:
        raise ValueError(f"mean and std need the same non-zero length, got mean={mean}, std={std}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive per channel, got {std}")
    return mean, std


def eval_transform(mean: Sequence[float], std: Sequence[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The deterministic view: uint8 image (C, H, W) → float32 ``(x/255 − mean)/std``.

    Parameters
    ----------
    mean, std : sequence of float
        Per-channel statistics on the [0, 1] scale; ``std`` > 0.

    Returns
    -------
    callable
        The ``torchvision.transforms.v2`` pipeline.

    Raises
    ------
    ValueError
        When ``mean`` and ``std`` differ in length, are empty, or ``std`` is not positive.
    """
    from torchvision.transforms import v2

    mean, std = _check_stats(mean, std)
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def make_view_transform(name: str, image_size: int, mean: Sequence[float], std: Sequence[float], *,
                        strength: float = 0.5, blur: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The random view of preset ``name``: uint8 image (C, H, W) → normalised float32 (C, image_size, image_size).

    The steps are those of the module docstring, with the constants of :func:`recipe`. ``none`` resizes
    (shorter side, then centre crop; the identity when the input is already image_size square) and
    normalises, i.e. :func:`eval_transform` on a correctly sized input.

    Parameters
    ----------
    name : str
        One of :data:`AUGMENTATIONS`.
    image_size : int
        Side of the views, >= 1.
    mean, std : sequence of float
        Per-channel statistics on the [0, 1] scale; ``std`` > 0.
    strength : float, default 0.5
        Colour-jitter strength s.
    blur : bool, default False
        Add the Gaussian blur.

    Returns
    -------
    callable
        The ``torchvision.transforms.v2`` pipeline (a ``Compose``).

    Raises
    ------
    TypeError, ValueError
        For an unknown preset or out-of-range arguments.

    Examples
    --------
    >>> view = make_view_transform("simclr", 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    >>> tuple(view(torch.zeros(3, 20, 20, dtype=torch.uint8)).shape)
    (3, 16, 16)
    """
    from torchvision.transforms import v2

    spec = recipe(name, strength, blur)
    check_int("image_size", image_size, 1)
    mean, std = _check_stats(mean, std)
    steps: list = []
    if spec.crop_scale is None:
        steps += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    else:
        steps.append(v2.RandomResizedCrop(image_size, scale=spec.crop_scale, ratio=spec.crop_ratio,
                                          antialias=True))
    if spec.flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(spec.flip_p))
    if spec.jitter_p > 0:
        steps.append(v2.RandomApply([v2.ColorJitter(*spec.jitter)], p=spec.jitter_p))
    if spec.grayscale_p > 0:
        steps.append(v2.RandomGrayscale(spec.grayscale_p))
    if spec.blur_p > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(blur_kernel_size(image_size), spec.blur_sigma)],
                                    p=spec.blur_p))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if spec.brightness_severity is not None:
        steps.append(BrightnessShift(spec.brightness_severity))
    steps.append(v2.Normalize(mean, std))
    if spec.erase_p > 0:
        steps.append(v2.RandomErasing(p=spec.erase_p, scale=spec.erase_scale, ratio=spec.erase_ratio,
                                      value=spec.erase_value))
    return v2.Compose(steps)
