"""gcalib.training.augment: view shapes and ranges, seeding, the CIFAR-10-C brightness definition, extreme presets."""
from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from gcalib.training.augment import (
    AUGMENTATIONS, BRIGHTNESS_SHIFTS, ViewRecipe, blur_kernel_size, brightness_shift, eval_transform,
    make_view_transform, recipe,
)

MEAN = (0.4321, 0.3789, 0.5123)
STD = (0.2345, 0.2567, 0.2789)
ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def _image(size: int = 32, seed: int = 0, channels: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (channels, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name", AUGMENTATIONS)
@pytest.mark.parametrize("in_size,out_size,blur", [(32, 32, False), (40, 24, True)])
def test_view_shape_dtype_and_range(name, in_size, out_size, blur):
    t = make_view_transform(name, out_size, MEAN, STD, blur=blur)
    torch.manual_seed(0)
    for seed in range(5):
        out = t(_image(in_size, seed))
        assert out.shape == (3, out_size, out_size) and out.dtype == torch.float32
        unit = out * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]
        assert unit.min() >= -1e-6 and unit.max() <= 1 + 1e-6  # normalised values of a [0, 1] image


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_one_channel_input(name):
    out = make_view_transform(name, 16, (0.5,), (0.5,), blur=True)(_image(20, channels=1))
    assert out.shape == (1, 16, 16) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_deterministic_under_manual_seed(name):
    t = make_view_transform(name, 32, MEAN, STD, blur=True)
    x = _image()
    torch.manual_seed(7)
    a = t(x)
    torch.manual_seed(7)
    b = t(x)
    assert torch.equal(a, b)
    if name != "none":
        c = t(x)  # the generator has moved on
        assert not torch.equal(a, c)


def test_eval_and_none_are_the_closed_form():
    x = _image(32, 3)
    expected = (x.double() / 255 - torch.tensor(MEAN, dtype=torch.float64)[:, None, None]) \
        / torch.tensor(STD, dtype=torch.float64)[:, None, None]
    assert torch.allclose(eval_transform(MEAN, STD)(x).double(), expected, atol=1e-5)
    assert torch.allclose(make_view_transform("none", 32, MEAN, STD)(x).double(), expected, atol=1e-5)


# ---- brightness ------------------------------------------------------------------------------------

def _colorsys_brightness(rgb: np.ndarray, severity: int) -> np.ndarray:
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    out = []
    for r, g, b in rgb:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        out.append(colorsys.hsv_to_rgb(h, s, min(max(v + c, 0.0), 1.0)))
    return np.array(out)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_brightness_matches_hsv_reference(severity):
    rng = np.random.default_rng(severity)
    special = [[0, 0, 0], [1, 1, 1], [0.3, 0.3, 0.3], [1, 0, 0], [0.9, 0.95, 0.2], [0.6, 0, 0.05],
               [0.02, 0.01, 0.0], [0.7, 0.99, 0.98]]
    pixels = np.concatenate([np.array(special, dtype=np.float64), rng.random((60, 3))])
    ref = _colorsys_brightness(pixels, severity)
    img64 = torch.from_numpy(pixels.T.copy()).reshape(3, 4, -1)  # (3, H, W)
    got64 = brightness_shift(img64, severity).reshape(3, -1).T.numpy()
    assert np.allclose(got64, ref, atol=1e-12)
    got32 = brightness_shift(img64.float(), severity).reshape(3, -1).T.numpy()
    assert np.allclose(got32, ref, atol=1e-6)
    assert got32.max() <= 1.0 and got32.min() >= 0.0


def test_brightness_batched_and_one_channel():
    g = torch.Generator().manual_seed(0)
    batch = torch.rand(2, 3, 3, 5, 5, generator=g)
    out = brightness_shift(batch, 4)
    for i in range(2):
        for j in range(3):
            assert torch.equal(out[i, j], brightness_shift(batch[i, j], 4))
    gray = torch.rand(4, 1, 6, 6, generator=g)
    assert torch.equal(brightness_shift(gray, 2), (gray + BRIGHTNESS_SHIFTS[1]).clamp(0, 1))


@pytest.mark.parametrize("bad,kind,match", [
    (dict(severity=0), ValueError, "severity.*0"),
    (dict(severity=True), TypeError, r"severity must be an int in \[1, 5\], got True \(bool\)"),
    (dict(images=torch.full((3, 2, 2), 1.5)), ValueError, r"\[0, 1\].*1\.5"),
    (dict(images=torch.zeros(3, 2, 2, dtype=torch.uint8)), TypeError, "floating-point.*uint8"),
    (dict(images=torch.zeros(2, 4, 4)), ValueError, r"C in \(1, 3\).*\(2, 4, 4\)"),
])
def test_brightness_errors(bad, kind, match):
    args = dict(images=torch.zeros(3, 2, 2), severity=5) | bad
    with pytest.raises(kind, match=match):
        brightness_shift(**args)


def test_brightness_preset_is_shifted_simclr():
    simclr = make_view_transform("simclr", 32, ZERO, ONE)
    bright = make_view_transform("brightness", 32, ZERO, ONE)
    for seed in range(5):
        x = _image(32, seed)
        torch.manual_seed(seed)
        base = simclr(x)
        torch.manual_seed(seed)
        out = bright(x)
        assert torch.equal(out, brightness_shift(base, 5))
        assert out.amax(0).min() >= 0.5  # V' = clip(V + 0.5, 0, 1) >= 0.5 everywhere


# ---- extreme presets -------------------------------------------------------------------------------

def test_large_erase_zeroes_one_rectangle_of_the_stated_area():
    simclr = make_view_transform("simclr", 32, MEAN, STD)
    erase = make_view_transform("large_erase", 32, MEAN, STD)
    fractions = []
    for seed in range(15):
        x = _image(32, seed)
        torch.manual_seed(seed)
        base = simclr(x)
        torch.manual_seed(seed)
        out = erase(x)
        zero = (out == 0).all(0)
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert rows.max() - rows.min() + 1 == h and cols.max() - cols.min() + 1 == w
        assert zero.sum() == h * w  # the zeros form one full rectangle
        slack = 0.5 * (h + w) + 1  # h and w are rounded to whole pixels
        assert 0.25 * 1024 - slack <= h * w <= 0.5 * 1024 + slack
        assert (h + 0.5) / (w - 0.5) >= 0.3 and (h - 0.5) / (w + 0.5) <= 3.3
        assert torch.equal(out[:, ~zero], base[:, ~zero])  # nothing else changed
        fractions.append(h * w / 1024)
    assert min(fractions) < 0.33 and max(fractions) > 0.42


def _crop_area_fraction(transform: v2.Compose, seed: int) -> float:
    """Area of the source region that the crop step maps to the output, on a coordinate image."""
    crop = transform.transforms[0]
    assert isinstance(crop, v2.RandomResizedCrop)
    coords = torch.arange(128, dtype=torch.uint8)
    image = torch.stack([coords.expand(128, 128), coords[:, None].expand(128, 128),
                         torch.zeros(128, 128, dtype=torch.uint8)])
    torch.manual_seed(seed)
    out = crop(image).float()
    width = out[0].max() - out[0].min() + 1
    height = out[1].max() - out[1].min() + 1
    return float(width * height) / 128 ** 2


def test_crop_scales_of_simclr_and_strong_crop():
    simclr = [_crop_area_fraction(make_view_transform("simclr", 32, MEAN, STD), s) for s in range(20)]
    strong = [_crop_area_fraction(make_view_transform("strong_crop", 32, MEAN, STD), s) for s in range(20)]
    # the measured extent loses at most one output pixel's share (1/32) per side of the true crop
    assert min(simclr) >= 0.2 * (1 - 1 / 32) ** 2 * 0.98 and max(simclr) <= 1.0
    assert min(strong) >= 0.02 * (1 - 1 / 32) ** 2 * 0.9 and max(strong) <= 0.15 * 1.05
    assert max(strong) < min(simclr)


def test_grayscale_probability():
    t = make_view_transform("simclr", 8, ZERO, ONE)
    x = _image(8, 1)
    torch.manual_seed(0)
    gray = [bool(torch.equal(v[0], v[1]) and torch.equal(v[1], v[2])) for v in (t(x) for _ in range(250))]
    assert 0.11 < np.mean(gray) < 0.29  # p = 0.2; 250 draws give sd 0.025


# ---- recipe constants and validation ---------------------------------------------------------------

def test_recipe_constants():
    r = recipe("simclr", 0.5)
    assert r.crop_scale == (0.2, 1.0) and r.crop_ratio == pytest.approx((3 / 4, 4 / 3))
    assert r.flip_p == 0.5 and r.jitter == pytest.approx((0.4, 0.4, 0.4, 0.1)) and r.jitter_p == 0.8
    assert r.grayscale_p == 0.2 and r.blur_p == 0.0 and r.erase_p == 0.0 and r.brightness_severity is None
    assert recipe("simclr", 1.0, blur=True).blur_p == 0.5
    assert recipe("simclr", 1.0, blur=True).blur_sigma == (0.1, 2.0)
    assert recipe("strong_crop").crop_scale == (0.02, 0.15)
    erase = recipe("large_erase")
    assert (erase.erase_p, erase.erase_scale, erase.erase_ratio, erase.erase_value) == (1.0, (0.25, 0.5), (0.3, 3.3), 0.0)
    assert recipe("brightness").brightness_severity == 5 and BRIGHTNESS_SHIFTS[4] == 0.5
    assert recipe("none") == ViewRecipe(name="none", crop_scale=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.flip_p = 0.0


def test_blur_kernel_and_presence():
    assert [blur_kernel_size(s) for s in (16, 32, 64, 96, 224)] == [3, 3, 7, 9, 23]
    with_blur = make_view_transform("simclr", 96, MEAN, STD, blur=True)
    blurs = [m for m in with_blur.transforms if isinstance(m, v2.RandomApply)
             and isinstance(m.transforms[0], v2.GaussianBlur)]
    assert len(blurs) == 1 and blurs[0].p == 0.5 and list(blurs[0].transforms[0].kernel_size) == [9, 9]
    assert "GaussianBlur" not in repr(make_view_transform("simclr", 96, MEAN, STD))


@pytest.mark.parametrize("kwargs,kind,match", [
    (dict(name="cutout"), ValueError, "'cutout'.*simclr.*large_erase.*strong_crop.*brightness.*none"),
    (dict(strength=-0.1), ValueError, r"strength.*\[0, 2.5\].*-0.1"),
    (dict(strength=3.0), ValueError, "strength.*3.0"),
    (dict(blur="yes"), TypeError, "blur.*yes"),
    (dict(image_size=0), ValueError, "image_size.*0"),
    (dict(image_size=32.0), TypeError, r"image_size must be an int >= 1, got 32.0 \(float\)"),
    (dict(std=(0.2, 0.0, 0.2)), ValueError, "std.*positive"),
    (dict(mean=(0.5, 0.5)), ValueError, "same non-zero length"),
])
def test_make_view_transform_errors(kwargs, kind, match):
    args = dict(name="simclr", image_size=32, mean=MEAN, std=STD) | kwargs
    with pytest.raises(kind, match=match):
        make_view_transform(**args)
