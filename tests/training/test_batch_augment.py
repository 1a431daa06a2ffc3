"""gcalib.training.batch_augment: batched views against torchvision's per-image functional ops (same draws),
sampler distributions against the per-image pipeline's own samplers (KS / binomial / chi-square
tests), identity cases, seeding, the blocked multi-view layout, the extreme views."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from gcalib.training.augment import AUGMENTATIONS, blur_kernel_size, brightness_shift, make_view_transform, recipe
from gcalib.training.batch_augment import (
    BatchAugment, Boxes, _color_jitter_, _update_rows_, adjust_brightness, adjust_contrast, adjust_hue,
    adjust_saturation, color_jitter, erase, gaussian_blur, resized_crop, sample_crop_boxes,
    sample_erase_boxes, sample_jitter_params,
)

MEAN = (0.4321, 0.3789, 0.5123)
STD = (0.2345, 0.2567, 0.2789)
ALPHA = 1e-3  # significance of the distribution tests (fixed seeds: each outcome is deterministic)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tensors here are small: one intra-op thread is faster, and immune to stalls when other
    processes load the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(n: int, height: int, width: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, height, width), generator=g, dtype=torch.uint8)


def _unit(out: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """Undo the normalisation: values of the [0, 1] image."""
    return out * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]


def _pipeline_step(name: str, kind: type, image_size: int = 32, blur: bool = True, strength: float = 0.5):
    """The first step of type ``kind`` in make_view_transform's pipeline, looking inside RandomApply."""
    for step in make_view_transform(name, image_size, MEAN, STD, strength=strength, blur=blur).transforms:
        inner = step.transforms[0] if isinstance(step, v2.RandomApply) else step
        if isinstance(inner, kind):
            return step, inner
    raise AssertionError(f"no {kind.__name__} in the {name} pipeline")


def _reference_view(aug: BatchAugment, image: torch.Tensor, params, b: int) -> torch.Tensor:
    """Sample b's view made by torchvision's functional ops on the float image with the same draws."""
    view, size = aug.recipe, aug.image_size
    x = image.float() / 255
    crop = params.crop
    x = TF.resized_crop(x, int(crop.top[b]), int(crop.left[b]), int(crop.height[b]), int(crop.width[b]),
                        [size, size], antialias=True)
    if params.flip[b]:
        x = TF.horizontal_flip(x)
    j = params.jitter
    if j.applied[b]:
        for op in j.order[b].tolist():
            if op not in j.active:
                continue
            fn = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)[op]
            x = fn(x, float((j.brightness, j.contrast, j.saturation, j.hue)[op][b]))
    if params.grayscale[b]:
        x = TF.rgb_to_grayscale(x, x.shape[0])
    if view.blur_p > 0 and params.blur[b]:
        x = TF.gaussian_blur(x, [aug.blur_kernel_size] * 2, [float(params.sigma[b])] * 2)
    if view.brightness_severity is not None:
        x = brightness_shift(x.clamp(0, 1), view.brightness_severity)
    x = TF.normalize(x, list(aug.mean.flatten().tolist()), list(aug.std.flatten().tolist()))
    e = params.erase
    if e.height[b] > 0 and e.width[b] > 0:
        x = TF.erase(x, int(e.top[b]), int(e.left[b]), int(e.height[b]), int(e.width[b]),
                     torch.tensor(view.erase_value))
    return x


# ---------------------------------------------------------------------------------------------- basics


@pytest.mark.parametrize("name", AUGMENTATIONS)
@pytest.mark.parametrize("height,width,size,blur", [(32, 32, 32, False), (40, 36, 24, True)])
def test_shape_dtype_device_and_range(name, height, width, size, blur):
    aug = BatchAugment(name, size, MEAN, STD, blur=blur)
    out = aug(_images(16, height, width), generator=torch.Generator().manual_seed(0))
    assert out.shape == (16, 3, size, size) and out.dtype == torch.float32 and out.device.type == "cpu"
    unit = _unit(out)
    assert unit.min() >= -1e-6 and unit.max() <= 1 + 1e-6


def test_rejects_bad_arguments():
    aug = BatchAugment("simclr", 32, MEAN, STD)
    with pytest.raises(TypeError, match="uint8"):
        aug(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="shape"):
        aug(_images(2, 32, 32)[0])
    with pytest.raises(ValueError, match="channels"):
        aug(_images(2, 32, 32, channels=1))
    with pytest.raises(ValueError, match="n_views"):
        aug.multi_view(_images(2, 32, 32), 0)
    with pytest.raises(ValueError, match="unknown augmentation"):
        BatchAugment("cutout", 32, MEAN, STD)
    with pytest.raises(ValueError, match="image_size"):
        BatchAugment("simclr", 0, MEAN, STD)
    with pytest.raises(ValueError, match="std"):
        BatchAugment("simclr", 32, MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="scale"):
        sample_crop_boxes(4, 32, 32, (0.5, 0.2), (0.75, 1.33))
    with pytest.raises(ValueError, match="ratio"):
        sample_erase_boxes(4, 32, 32, (0.2, 0.5), (0.0, 3.3))
    with pytest.raises(ValueError, match="hue"):
        sample_jitter_params(4, (0.4, 0.4, 0.4, 0.6), 0.8)
    with pytest.raises(ValueError, match="no random parameters"):
        BatchAugment("none", 32, MEAN, STD).sample_params(4, 32, 32)


def test_generator_determinism_and_global_rng_untouched():
    aug = BatchAugment("large_erase", 32, MEAN, STD, blur=True)
    x = _images(32, 32, 32)
    state = torch.get_rng_state()
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    c = aug(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = aug(x)
    torch.manual_seed(5)
    assert torch.equal(d, aug(x)) and not torch.equal(d, aug(x))


def _identity_augment(size: int) -> BatchAugment:
    """simclr with every random step switched off and crop scale (1, 1)."""
    view = dataclasses.replace(recipe("simclr", blur=True), crop_scale=(1.0, 1.0), flip_p=0.0,
                               jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    return BatchAugment.from_recipe(view, size, MEAN, STD)


@pytest.mark.parametrize("height,width,size", [(32, 32, 32), (40, 40, 32), (20, 20, 28)])
def test_identity_recipe_is_resize_and_normalise(height, width, size):
    x = _images(8, height, width, seed=1)
    out = _identity_augment(size)(x, generator=torch.Generator().manual_seed(0))
    expected = TF.normalize(TF.resize(x.float() / 255, [size, size], antialias=True), MEAN, STD)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    if (height, width) == (size, size):
        torch.testing.assert_close(_unit(out), x.float() / 255, atol=1e-6, rtol=0)
    # the per-image pipeline resizes uint8 images with fixed-point weights and rounds: within a grey level
    per_image = torch.stack([make_view_transform("none", size, MEAN, STD)(im) for im in x])
    assert (_unit(out) - _unit(per_image)).abs().max() <= 1 / 255 + 1e-5


@pytest.mark.parametrize("height,width", [(32, 32), (40, 48), (60, 30)])
def test_none_view_is_resize_shorter_side_and_centre_crop(height, width):
    x = _images(4, height, width, seed=2)
    out = BatchAugment("none", 32, MEAN, STD)(x)
    expected = TF.normalize(TF.center_crop(TF.resize(x.float() / 255, 32, antialias=True), [32, 32]),
                            MEAN, STD)
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)


def test_multi_view_blocked_layout():
    x = _images(5, 36, 36, seed=3)
    views = _identity_augment(32).multi_view(x, 3)
    assert views.shape == (15, 3, 32, 32)
    single = _identity_augment(32)(x)
    for r in range(15):
        torch.testing.assert_close(views[r], single[r % 5], atol=0, rtol=0)
    # random views: sample r mod B's colour in every row (flat-coloured images survive crops and
    # flips unchanged), and the views of one sample differ on textured images
    flat = torch.arange(5, dtype=torch.uint8).mul(50)[:, None, None, None].expand(5, 3, 36, 36).contiguous()
    no_colour = dataclasses.replace(recipe("simclr"), jitter_p=0.0, grayscale_p=0.0)
    out = _unit(BatchAugment.from_recipe(no_colour, 32, MEAN, STD).multi_view(flat, 3))
    torch.testing.assert_close(out, (flat.float() / 255).repeat(3, 1, 1, 1)[:, :, :32, :32],
                               atol=1e-5, rtol=0)
    random_views = BatchAugment("simclr", 32, MEAN, STD).multi_view(x, 2, torch.Generator().manual_seed(0))
    assert all(not torch.allclose(random_views[b], random_views[b + 5]) for b in range(5))


# ------------------------------------------------------------ same draws, torchvision functional ops


@pytest.mark.parametrize("name,channels,strength,height,width,size", [
    ("simclr", 3, 1.0, 32, 32, 32), ("simclr", 1, 1.0, 40, 36, 24), ("large_erase", 3, 0.5, 32, 32, 32),
    ("strong_crop", 3, 2.0, 40, 36, 24), ("brightness", 3, 0.5, 30, 20, 32),
])
def test_batched_view_equals_torchvision_ops_with_the_same_draws(name, channels, strength, height, width,
                                                                 size):
    """Both crop paths: grid_sample (inputs no larger than the output) and matrix products."""
    mean, std = (MEAN, STD) if channels == 3 else ((0.5,), (0.25,))
    aug = BatchAugment(name, size, mean, std, strength=strength, blur=True)
    x = _images(32, height, width, channels=channels, seed=4)
    params = aug.sample_params(32, height, width, generator=torch.Generator().manual_seed(5))
    out = aug.apply(x, params)
    expected = torch.stack([_reference_view(aug, x[b], params, b) for b in range(32)])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    # the draws exercised every branch
    assert params.flip.any() and (~params.flip).any() and params.blur.any() and params.grayscale.any()
    assert params.jitter.applied.any() and (~params.jitter.applied).any()


def test_colour_ops_match_torchvision_per_sample_on_edge_cases():
    """Greys (max = min), ties for the maximum, black and white pixels, factors 0 and 2, hue ±0.5."""
    g = torch.Generator().manual_seed(23)
    levels = torch.tensor([0.0, 0.25, 0.5, 1.0])
    x = levels[torch.randint(0, 4, (8, 3, 6, 6), generator=g)]  # many ties and greys
    x = torch.cat([x, torch.rand(4, 3, 6, 6, generator=g)])
    factors = torch.tensor([0.0, 0.5, 1.0, 2.0] * 3)
    shifts = torch.tensor([-0.5, -0.25, 0.0, 0.1, 0.5, 0.33] * 2)
    for ours, theirs, values in ((adjust_brightness, TF.adjust_brightness, factors),
                                 (adjust_contrast, TF.adjust_contrast, factors),
                                 (adjust_saturation, TF.adjust_saturation, factors),
                                 (adjust_hue, TF.adjust_hue, shifts)):
        expected = torch.stack([theirs(x[b], float(values[b])) for b in range(12)])
        torch.testing.assert_close(ours(x, values), expected, atol=2e-6, rtol=0)
    boxes = sample_erase_boxes(12, 6, 6, (0.1, 0.5), (0.5, 2.0), generator=g)
    expected = torch.stack([TF.erase(x[b], *(int(v[b]) for v in dataclasses.astuple(boxes)),
                                     torch.tensor(0.7)) for b in range(12)])
    assert torch.equal(erase(x, boxes, 0.7), expected)


def test_row_update_strategies_agree():
    """Selected rows only (CPU default) and whole batch + torch.where (accelerator default) compute
    the same function, and leave the other rows untouched."""
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    params = sample_jitter_params(64, (0.8, 0.8, 0.8, 0.5), 0.8, generator=torch.Generator().manual_seed(7))
    gathered = _color_jitter_(x.clone(), params, gather=True)
    masked = _color_jitter_(x.clone(), params, gather=False)
    torch.testing.assert_close(gathered, masked, atol=1e-6, rtol=0)
    torch.testing.assert_close(color_jitter(x, params), gathered, atol=0, rtol=0)
    assert torch.equal(masked[~params.applied], x[~params.applied])
    assert torch.equal(gathered[~params.applied], x[~params.applied])
    rows = torch.arange(64) % 3 == 0
    sigma = torch.linspace(0.1, 2.0, 64)
    blur = lambda images, s: gaussian_blur(images, 5, s)  # noqa: E731
    a = _update_rows_(x.clone(), rows, blur, sigma, gather=True)
    b = _update_rows_(x.clone(), rows, blur, sigma, gather=False)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.testing.assert_close(a[rows], gaussian_blur(x, 5, sigma)[rows], atol=1e-6, rtol=0)
    assert torch.equal(a[~rows], x[~rows])


def test_flip_reverses_columns_and_crop_box_is_respected():
    x = _images(3, 20, 20, seed=8).float()
    boxes = Boxes(*(torch.tensor(v) for v in ([0, 5, 2], [0, 3, 10], [20, 10, 6], [20, 10, 7])))
    plain = resized_crop(x, boxes, 10)
    flipped = resized_crop(x, boxes, 10, flip=torch.tensor([True, False, True]))
    torch.testing.assert_close(flipped[0], plain[0].flip(-1), atol=1e-4, rtol=0)
    torch.testing.assert_close(flipped[1], plain[1], atol=0, rtol=0)
    # a 10x10 box resized to 10x10 is the box itself
    torch.testing.assert_close(plain[1], x[1, :, 5:15, 3:13], atol=1e-4, rtol=0)


# ------------------------------------------------------------------- the extreme views


def test_brightness_view_is_brightness_shift_of_the_simclr_view():
    x = _images(32, 32, 32, seed=9)
    simclr = _unit(BatchAugment("simclr", 32, MEAN, STD)(x, torch.Generator().manual_seed(1)))
    bright = _unit(BatchAugment("brightness", 32, MEAN, STD)(x, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(bright, brightness_shift(simclr.clamp(0, 1), 5), atol=1e-5, rtol=0)
    assert (bright.amax(dim=1) >= 0.5 - 1e-5).all()  # V + 0.5 clipped: every pixel at least half bright


def test_large_erase_zeroes_one_box_of_the_stated_area():
    n, size = 256, 32
    x = _images(n, 32, 32, seed=10)
    simclr = BatchAugment("simclr", size, MEAN, STD)(x, torch.Generator().manual_seed(2))
    aug = BatchAugment("large_erase", size, MEAN, STD)
    params = aug.sample_params(n, 32, 32, generator=torch.Generator().manual_seed(2))
    out = aug.apply(x, params)
    box = params.erase
    h, w = box.height.double(), box.width.double()
    assert (h > 0).float().mean() > 0.98  # p = 1: erased unless 10 attempts all miss
    ys, xs = torch.arange(size)[None, :, None], torch.arange(size)[None, None, :]
    inside = ((ys >= box.top[:, None, None]) & (ys < (box.top + box.height)[:, None, None])
              & (xs >= box.left[:, None, None]) & (xs < (box.left + box.width)[:, None, None]))
    inside = inside[:, None].expand_as(out)
    assert (out[inside] == 0).all()
    torch.testing.assert_close(out[~inside], simclr[~inside], atol=0, rtol=0)  # same draws elsewhere
    erased = h > 0
    h, w = h[erased], w[erased]
    # area a = S²·U(0.25, 0.5) and sides h = round(√(a r)), w = round(√(a/r)), r in [0.3, 3.3]
    assert ((h + 0.5) * (w + 0.5) >= 0.25 * size ** 2).all()
    assert ((h - 0.5) * (w - 0.5) <= 0.5 * size ** 2).all()
    frac = h * w / size ** 2
    assert 0.2 < frac.min() and frac.max() < 0.56 and 0.3 < frac.median() < 0.45
    assert ((h - 0.5) / (w + 0.5) <= 3.3).all() and ((h + 0.5) / (w - 0.5) >= 0.3).all()


# -------------------------------------------------- parameter distributions vs torchvision's samplers


def _ks(a, b) -> float:
    return stats.ks_2samp(np.asarray(a, dtype=float), np.asarray(b, dtype=float)).pvalue


@pytest.mark.parametrize("name,height,width", [("simclr", 32, 32), ("strong_crop", 32, 32),
                                               ("simclr", 24, 40), ("strong_crop", 50, 20)])
def test_crop_boxes_match_random_resized_crop(name, height, width):
    n = 4000
    _, crop = _pipeline_step(name, v2.RandomResizedCrop)
    torch.manual_seed(11)
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    ref = [crop.make_params([image]) for _ in range(n)]
    ours = sample_crop_boxes(n, height, width, crop.scale, crop.ratio,
                             generator=torch.Generator().manual_seed(12))
    mine = {"top": ours.top, "left": ours.left, "height": ours.height, "width": ours.width}
    for key in mine:
        theirs = [p[key] for p in ref]
        assert _ks(mine[key], theirs) > ALPHA, key
    ref_area = [p["height"] * p["width"] for p in ref]
    assert _ks(ours.height * ours.width, ref_area) > ALPHA
    assert ((ours.top + ours.height) <= height).all() and ((ours.left + ours.width) <= width).all()
    assert (ours.top >= 0).all() and (ours.left >= 0).all() and (ours.height > 0).all()


def test_crop_fallback_is_the_central_crop():
    # ratio range excludes 1:1 crops of the whole square image and scale (1, 1) asks for the whole
    # area, so no attempt fits: every box is torchvision's central fallback
    boxes = sample_crop_boxes(50, 30, 30, (1.0, 1.0), (2.0, 3.0), generator=torch.Generator().manual_seed(0))
    crop = v2.RandomResizedCrop(16, scale=(1.0, 1.0), ratio=(2.0, 3.0))
    expected = crop.make_params([torch.zeros(3, 30, 30)])
    assert expected == {"top": 7, "left": 0, "height": 15, "width": 30}
    for key, value in zip(("top", "left", "height", "width"), dataclasses.astuple(boxes)):
        assert (value == expected[key]).all(), key


def test_jitter_draws_match_color_jitter():
    n = 4000
    apply, jitter = _pipeline_step("simclr", v2.ColorJitter, strength=1.0)
    torch.manual_seed(13)
    ref = [jitter.make_params([torch.zeros(3, 4, 4)]) for _ in range(n)]
    ours = sample_jitter_params(n, recipe("simclr", 1.0).jitter, apply.p,
                                generator=torch.Generator().manual_seed(14))
    for key, mine in (("brightness_factor", ours.brightness), ("contrast_factor", ours.contrast),
                      ("saturation_factor", ours.saturation), ("hue_factor", ours.hue)):
        assert _ks(mine, [p[key] for p in ref]) > ALPHA, key
    # op orders: both uniform over the 24 permutations, compared as a 2 x 24 contingency table
    ref_orders = [tuple(p["fn_idx"].tolist()) for p in ref]
    perms = {order: i for i, order in enumerate(sorted(set(ref_orders)))}
    assert len(perms) == 24
    counts = np.zeros((2, 24))
    for row, orders in enumerate((ours.order.tolist(), ref_orders)):
        for order in orders:
            counts[row, perms[tuple(order)]] += 1
    assert stats.chi2_contingency(counts).pvalue > ALPHA
    assert stats.binomtest(int(ours.applied.sum()), n, apply.p).pvalue > ALPHA
    assert ours.active == (0, 1, 2, 3)


def test_flip_grayscale_blur_probabilities_and_sigma_match_the_pipeline():
    n = 4000
    aug = BatchAugment("simclr", 32, MEAN, STD, blur=True)
    params = aug.sample_params(n, 32, 32, generator=torch.Generator().manual_seed(15))
    flip, _ = _pipeline_step("simclr", v2.RandomHorizontalFlip)
    gray, _ = _pipeline_step("simclr", v2.RandomGrayscale)
    blur_apply, blur = _pipeline_step("simclr", v2.GaussianBlur)
    for flags, p in ((params.flip, flip.p), (params.grayscale, gray.p), (params.blur, blur_apply.p)):
        assert stats.binomtest(int(flags.sum()), n, p).pvalue > ALPHA
    torch.manual_seed(16)
    ref_sigma = [blur.make_params([torch.zeros(3, 32, 32)])["sigma"][0] for _ in range(n)]
    assert _ks(params.sigma, ref_sigma) > ALPHA
    assert list(blur.kernel_size) == [aug.blur_kernel_size] * 2 == [blur_kernel_size(32)] * 2


@pytest.mark.parametrize("size", [32, 24])
def test_erase_boxes_match_random_erasing(size):
    n = 4000
    _, erasing = _pipeline_step("large_erase", v2.RandomErasing, image_size=size)
    torch.manual_seed(17)
    ref = [erasing.make_params([torch.zeros(3, size, size)]) for _ in range(n)]
    ours = sample_erase_boxes(n, size, size, erasing.scale, erasing.ratio, p=erasing.p,
                              generator=torch.Generator().manual_seed(18))
    ref_erased = np.array([p["v"] is not None for p in ref])
    ours_erased = (ours.height > 0).numpy()
    assert stats.fisher_exact([[ours_erased.sum(), n - ours_erased.sum()],
                               [ref_erased.sum(), n - ref_erased.sum()]]).pvalue > ALPHA
    for key, mine in (("i", ours.top), ("j", ours.left), ("h", ours.height), ("w", ours.width)):
        theirs = np.array([p[key] for p in ref])[ref_erased]
        assert _ks(mine.numpy()[ours_erased], theirs) > ALPHA, key


def test_samplers_reject_what_they_cannot_distinguish():
    """Power check: the tests above do detect a sampler with width and height swapped."""
    n = 4000
    torch.manual_seed(19)
    crop = v2.RandomResizedCrop(32, scale=(0.2, 1.0), ratio=(0.5, 1.0))
    ref = [crop.make_params([torch.zeros(3, 24, 40)]) for _ in range(n)]
    ours = sample_crop_boxes(n, 24, 40, (0.2, 1.0), (1.0, 2.0), generator=torch.Generator().manual_seed(20))
    assert _ks(ours.width, [p["width"] for p in ref]) < ALPHA


# ---------------------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_the_same_draws():
    aug = BatchAugment("large_erase", 32, MEAN, STD, blur=True, strength=1.0)
    x = _images(64, 40, 40, seed=21)
    params = aug.sample_params(64, 40, 40, generator=torch.Generator().manual_seed(22))
    out = aug.apply(x.cuda(), params)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), aug.apply(x, params), atol=1e-4, rtol=0)
    g = torch.Generator(device="cuda")
    a = aug.multi_view(x.cuda(), 2, g.manual_seed(1))
    assert a.device.type == "cuda" and torch.equal(a, aug.multi_view(x.cuda(), 2, g.manual_seed(1)))
