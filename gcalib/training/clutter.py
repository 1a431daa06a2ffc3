"""``clutter_digits``: scikit-learn's handwritten digits rendered into 32×32 RGB scenes with nuisances.

A scene is composed back to front (ranges are the fields of :data:`SCENE_DESIGN`, a :class:`SceneDesign`):

1. **Background**, one of four families drawn uniformly for every scene (:data:`BACKGROUNDS`): a crop of
   one of the two photographs scikit-learn ships (``load_sample_images``: a temple in China, a flower;
   crop side 24–112 px of the photo halved to 213×320, mirrored with probability ½), a sinusoidal
   grating (two random colours, 1.5–4.5 cycles per scene, any orientation), colour blotches (3 × 5 × 5
   uniform noise upsampled bicubically) or a linear two-colour gradient; its deviation from its mean
   colour is scaled by 0.6, so that the digit is the most salient object.
2. **Clutter**: 0–2 fragments of *other* handwriting samples of the same split (a half-plane through each
   fragment's centre keeps one side), 8–14 px high, any rotation and position, in a random colour at
   70 % opacity.
3. **The digit**: the 8×8 handwriting sample resampled bicubically into a box 18–26 px high, rotated by
   −20°…20°, sheared by −0.3…0.3, anywhere the box fits in the scene. Its colour has a random hue; its
   luminance is moved at least :data:`MIN_CONTRAST` away from the background's mean luminance under the
   stroke, so that the digit stays readable.
4. **Domain** = stroke style, fixed per handwriting sample (:data:`CLUTTER_DOMAINS`): ``solid``,
   ``outline`` (a hollow contour, the background shows inside), ``shadow`` (a dark copy offset by
   2 px beneath the stroke) and ``striped`` (the stroke filled with stripes of two colours, period
   4–6 px). Every other nuisance is drawn independently of the domain, so the domain is carried only by
   the texture of the strokes: present, but not readable from colour or layout statistics.

Every random number comes from one seeded ``torch.Generator`` on the CPU, so the data are a function of
``seed`` alone. Train and test are split **by handwriting sample** (the 75/25 stratified split of the
digits dataset), and clutter fragments come from the scene's own split, so no test stroke is seen in
training. Each train sample is rendered ``renderings`` times (independent nuisances, same domain):
two of them form a *rendered view* pair; the first is its evaluation image. Each test sample is rendered
twice: the first is its test image, the pair measures alignment under rendered views. The design and the reasons for each range are written up in ``data/README.md``.
"""
from __future__ import annotations

import functools
import hashlib
import math
import pickle
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .run_files import atomic_write
from .splits import stratified_split

__all__ = ["CLUTTER_DOMAINS", "BACKGROUNDS", "SCENE_SIZE", "MIN_CONTRAST", "GENERATOR_VERSION", "SceneDesign",
           "SCENE_DESIGN", "ClutterArrays", "render_scenes", "clutter_digits_arrays", "cached_clutter_digits"]

SCENE_SIZE = 32
CLUTTER_DOMAINS = ("solid", "outline", "shadow", "striped")
BACKGROUNDS = ("photo", "grating", "blotches", "gradient")
MIN_CONTRAST = 0.35
GENERATOR_VERSION = 2
_CHUNK = 2048


@dataclass(frozen=True)
class SceneDesign:
    """The ranges of the nuisance factors (lengths in pixels of the 32×32 scene, angles in degrees).

    Parameters
    ----------
    digit_height : (float, float), default (18.0, 26.0)
        Range of the digit box's height.
    rotation : float, default 20.0
        The digit is rotated by an angle in [−rotation, rotation].
    shear : float, default 0.3
        The digit is sheared by a factor in [−shear, shear].
    clutter_max : int, default 2
        At most this many clutter fragments per scene.
    clutter_height : (float, float), default (8.0, 14.0)
        Range of a fragment's height.
    clutter_opacity : float, default 0.7
        Opacity of the fragments.
    background_contrast : float, default 0.6
        Scales every background's deviation from its own mean colour (1: as drawn).
    """

    digit_height: tuple[float, float] = (18.0, 26.0)
    rotation: float = 20.0
    shear: float = 0.3
    clutter_max: int = 2
    clutter_height: tuple[float, float] = (8.0, 14.0)
    clutter_opacity: float = 0.7
    background_contrast: float = 0.6

    def digest(self) -> str:
        """A short stable hash of the field values (it names the cache file).

        Returns
        -------
        str
            Eight hexadecimal digits.
        """
        return hashlib.sha256(repr(sorted(vars(self).items())).encode()).hexdigest()[:8]


SCENE_DESIGN = SceneDesign()
_LUMA = torch.tensor([0.299, 0.587, 0.114])

Generator = torch.Generator


def _uniform(n: int, low: float, high: float, g: Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


def _colours(n: int, g: Generator) -> torch.Tensor:
    """(n, 3, 1, 1) uniform RGB colours in [0, 1]."""
    return torch.rand(n, 3, 1, 1, generator=g)


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [−1, 1], each (n, 1, S, S): x along columns, y along rows."""
    axis = (torch.arange(SCENE_SIZE) + 0.5) / SCENE_SIZE * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return x.expand(n, 1, -1, -1), y.expand(n, 1, -1, -1)


@functools.lru_cache(maxsize=1)
def _photos() -> torch.Tensor:
    """scikit-learn's two sample photographs, halved by 2×2 averaging: float (2, 3, 213, 320) in [0, 1]."""
    from sklearn.datasets import load_sample_images

    images = [torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255.0)
              for image in load_sample_images().images]
    return F.avg_pool2d(torch.stack(images), 2)


def _photo_backgrounds(n: int, g: Generator) -> torch.Tensor:
    """Square crops (side 24–112 px, mirrored with probability ½) of the halved photographs."""
    photos = _photos()
    _, _, height, width = photos.shape
    which = torch.randint(0, len(photos), (n,), generator=g)
    side = _uniform(n, 24.0, 112.0, g)
    cx = side / 2 + torch.rand(n, generator=g) * (width - side)
    cy = side / 2 + torch.rand(n, generator=g) * (height - side)
    mirror = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = mirror * side / width, 2 * cx / width - 1
    theta[:, 1, 1], theta[:, 1, 2] = side / height, 2 * cy / height - 1
    grid = F.affine_grid(theta, [n, 3, SCENE_SIZE, SCENE_SIZE], align_corners=False)
    out = torch.empty(n, 3, SCENE_SIZE, SCENE_SIZE)
    for k in range(len(photos)):
        rows = torch.nonzero(which == k).flatten()
        if len(rows):
            source = photos[k:k + 1].expand(len(rows), -1, -1, -1)
            out[rows] = F.grid_sample(source, grid[rows], mode="bilinear", align_corners=False)
    return out


def _grating_backgrounds(n: int, g: Generator) -> torch.Tensor:
    """``c₁ + (c₂ − c₁)·(1 + sin(π f (x cos φ + y sin φ) + ψ))/2`` with f in 1.5–4.5 cycles per scene."""
    first, second = _colours(n, g), _colours(n, g)
    cycles, angle, phase = _uniform(n, 1.5, 4.5, g), _uniform(n, 0.0, math.pi, g), _uniform(n, 0.0, 2 * math.pi, g)
    x, y = _grid(n)
    view = (n, 1, 1, 1)
    wave = torch.sin(math.pi * cycles.view(view) * (x * angle.cos().view(view) + y * angle.sin().view(view))
                     + phase.view(view))
    return first + (second - first) * (1 + wave) / 2


def _blotch_backgrounds(n: int, g: Generator) -> torch.Tensor:
    """Uniform 3 × 5 × 5 colour noise upsampled bicubically to the scene (clipped to [0, 1])."""
    noise = torch.rand(n, 3, 5, 5, generator=g)
    return F.interpolate(noise, size=(SCENE_SIZE, SCENE_SIZE), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def _gradient_backgrounds(n: int, g: Generator) -> torch.Tensor:
    """A linear ramp from ``c₁`` to ``c₂`` along a random direction."""
    first, second = _colours(n, g), _colours(n, g)
    angle = _uniform(n, 0.0, 2 * math.pi, g).view(n, 1, 1, 1)
    x, y = _grid(n)
    ramp = (x * angle.cos() + y * angle.sin()) / math.sqrt(2) / 2 + 0.5
    return first + (second - first) * ramp


_BACKGROUND_RENDERERS: dict[str, Callable[[int, Generator], torch.Tensor]] = {
    "photo": _photo_backgrounds, "grating": _grating_backgrounds,
    "blotches": _blotch_backgrounds, "gradient": _gradient_backgrounds,
}


def _backgrounds(n: int, contrast: float, g: Generator) -> torch.Tensor:
    """(n, 3, S, S) backgrounds, each family drawn with probability ¼, their deviations from their own
    mean colour scaled by ``contrast``."""
    family = torch.randint(0, len(BACKGROUNDS), (n,), generator=g)
    out = torch.empty(n, 3, SCENE_SIZE, SCENE_SIZE)
    for k, name in enumerate(BACKGROUNDS):
        rows = torch.nonzero(family == k).flatten()
        out[rows] = _BACKGROUND_RENDERERS[name](len(rows), g)
    mean = out.mean((2, 3), keepdim=True)
    return mean + (out - mean) * contrast


def _place(strokes: torch.Tensor, height_px: tuple[float, float], rotation: float, g: Generator, *,
           shear: float = 0.0, inside: bool = True) -> torch.Tensor:
    """Resample 8×8 strokes (n, 1, 8, 8) in [0, 1] into the scene: a box ``height_px`` high, rotated by
    ±``rotation`` degrees, sheared by ±``shear``, at a random position (the whole box inside the scene
    when ``inside``)."""
    n = len(strokes)
    side = _uniform(n, *height_px, g)
    angle = _uniform(n, -math.radians(rotation), math.radians(rotation), g)
    skew = _uniform(n, -shear, shear, g)
    room = (SCENE_SIZE - side) / SCENE_SIZE if inside else torch.ones(n)
    shift_x, shift_y = (torch.rand(n, generator=g) * 2 - 1) * room, (torch.rand(n, generator=g) * 2 - 1) * room
    zoom = SCENE_SIZE / side
    cos, sin = angle.cos(), angle.sin()
    # Output → input: undo the shift, rotate by −angle, undo the shear, then zoom into the 8×8 sample.
    a, b = cos * zoom, sin * zoom
    c, d = -sin * zoom, cos * zoom
    a, b = a - skew * c, b - skew * d
    theta = torch.stack([torch.stack([a, b, -(a * shift_x + b * shift_y)], 1),
                         torch.stack([c, d, -(c * shift_x + d * shift_y)], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, SCENE_SIZE, SCENE_SIZE], align_corners=False)
    placed = F.grid_sample(strokes, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    return ((placed - 0.15) / 0.45).clamp(0.0, 1.0)


def _luma(images: torch.Tensor) -> torch.Tensor:
    return (images * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)


def _contrasting(colours: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
    """Move each colour's luminance at least :data:`MIN_CONTRAST` away from ``under`` (n, 1, 1, 1), towards
    white over dark backgrounds and towards black over light ones, keeping its hue."""
    luma = _luma(colours)
    bright = under < 0.5
    goal = torch.where(bright, torch.maximum(luma, under + MIN_CONTRAST), torch.minimum(luma, under - MIN_CONTRAST))
    towards_white = 1 - (1 - colours) * (1 - goal) / (1 - luma).clamp(min=1e-6)
    towards_black = colours * goal / luma.clamp(min=1e-6)
    return torch.where(bright, towards_white, towards_black).clamp(0.0, 1.0)


def _dilate(alpha: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(alpha, 2 * radius + 1, stride=1, padding=radius)


def _stripes(n: int, g: Generator) -> torch.Tensor:
    """(n, 1, S, S) square-wave stripes of period 4–6 px at a random orientation."""
    period, angle = _uniform(n, 4.0, 6.0, g).view(n, 1, 1, 1), _uniform(n, 0.0, math.pi, g).view(n, 1, 1, 1)
    x, y = _grid(n)
    position = (x * angle.cos() + y * angle.sin()) * SCENE_SIZE / 2
    return (torch.sin(2 * math.pi * position / period) > 0).float()


def _over(canvas: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return canvas + (colour - canvas) * alpha


def _add_clutter(canvas: torch.Tensor, pool: torch.Tensor, design: SceneDesign, g: Generator) -> torch.Tensor:
    """0 to ``design.clutter_max`` fragments (half of another handwriting sample each)."""
    n = len(canvas)
    count = torch.randint(0, design.clutter_max + 1, (n,), generator=g)
    for k in range(design.clutter_max):
        rows = torch.nonzero(count > k).flatten()
        m = len(rows)
        if m == 0:
            break
        sources = pool[torch.randint(0, len(pool), (m,), generator=g)]
        alpha = _place(sources, design.clutter_height, 180.0, g, inside=False)
        cut = _uniform(m, 0.0, 2 * math.pi, g).view(m, 1, 1, 1)
        x, y = _grid(m)
        centre_x = (alpha * x).sum((2, 3), keepdim=True) / alpha.sum((2, 3), keepdim=True).clamp(min=1e-6)
        centre_y = (alpha * y).sum((2, 3), keepdim=True) / alpha.sum((2, 3), keepdim=True).clamp(min=1e-6)
        keep = ((x - centre_x) * cut.cos() + (y - centre_y) * cut.sin() > 0).float()
        canvas[rows] = _over(canvas[rows], _colours(m, g), design.clutter_opacity * alpha * keep)
    return canvas


def _draw_digit(canvas: torch.Tensor, strokes: torch.Tensor, styles: torch.Tensor, design: SceneDesign,
                g: Generator) -> torch.Tensor:
    """Paint the handwriting in its domain's stroke style over ``canvas``."""
    n = len(canvas)
    alpha = _place(strokes, design.digit_height, design.rotation, g, shear=design.shear)
    halo = _dilate(alpha, 1)
    under = (_luma(canvas) * halo).sum((2, 3), keepdim=True) / halo.sum((2, 3), keepdim=True).clamp(min=1e-6)
    colour = _contrasting(_colours(n, g), under)
    second = _contrasting(_colours(n, g), under)
    stripes = _stripes(n, g)
    style = styles.view(n, 1, 1, 1)
    solid = style == CLUTTER_DOMAINS.index("solid")
    outline = style == CLUTTER_DOMAINS.index("outline")
    shadow = style == CLUTTER_DOMAINS.index("shadow")
    shadow_alpha = torch.roll(alpha, shifts=(2, 2), dims=(2, 3)) * shadow
    canvas = _over(canvas, colour * 0.15, 0.9 * shadow_alpha)
    contour = (_dilate(alpha, 1) - alpha).clamp(0.0, 1.0)
    paint = torch.where(outline, contour, alpha)
    fill = torch.where(solid | shadow | outline, colour, colour + (second - colour) * stripes)
    return _over(canvas, fill, paint)


def render_scenes(strokes: torch.Tensor, styles: torch.Tensor, clutter_pool: torch.Tensor,
                  generator: Generator, design: SceneDesign = SCENE_DESIGN) -> torch.Tensor:
    """Render handwriting samples into scenes with nuisances (see the module docstring).

    Parameters
    ----------
    strokes : torch.Tensor
        Handwriting samples (n, 1, 8, 8) in [0, 1].
    styles : torch.Tensor
        Stroke style of each sample (n,): indices into :data:`CLUTTER_DOMAINS`.
    clutter_pool : torch.Tensor
        Samples (m, 1, 8, 8) the clutter fragments are cut from.
    generator : torch.Generator
        The source of all randomness (CPU).
    design : SceneDesign, default :data:`SCENE_DESIGN`
        The ranges of the nuisances.

    Returns
    -------
    torch.Tensor
        uint8 scenes (n, 3, 32, 32).
    """
    scenes = []
    for start in range(0, len(strokes), _CHUNK):
        chunk = slice(start, start + _CHUNK)
        canvas = _backgrounds(len(strokes[chunk]), design.background_contrast, generator)
        canvas = _add_clutter(canvas, clutter_pool, design, generator)
        canvas = _draw_digit(canvas, strokes[chunk], styles[chunk], design, generator)
        scenes.append(canvas.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8))
    return torch.cat(scenes) if scenes else torch.empty(0, 3, SCENE_SIZE, SCENE_SIZE, dtype=torch.uint8)


@dataclass(frozen=True)
class ClutterArrays:
    """Both splits of ``clutter_digits`` (:func:`clutter_digits_arrays`).

    Parameters
    ----------
    train_renderings : torch.Tensor
        uint8 (N_train, K, 3, 32, 32): K renderings of every train sample.
    train_labels, train_domains : torch.Tensor
        int64 (N_train,) class and domain ids.
    train_samples : torch.Tensor
        int64 (N_train,) indices of the handwriting samples in scikit-learn's digits.
    test_renderings : torch.Tensor
        uint8 (N_test, 2, 3, 32, 32): the first is the test image, the second serves to measure how well
        two renderings align.
    test_labels, test_domains, test_samples : torch.Tensor
        As for train.
    """

    train_renderings: torch.Tensor
    train_labels: torch.Tensor
    train_domains: torch.Tensor
    train_samples: torch.Tensor
    test_renderings: torch.Tensor
    test_labels: torch.Tensor
    test_domains: torch.Tensor
    test_samples: torch.Tensor

    @property
    def test_images(self) -> torch.Tensor:
        """The test image of each test sample: its first rendering.

        Returns
        -------
        torch.Tensor
            uint8 (N_test, 3, 32, 32).
        """
        return self.test_renderings[:, 0]


def _stroke_styles(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """One domain per handwriting sample: round-robin within each class after a seeded shuffle."""
    g = torch.Generator().manual_seed(seed)
    domains = torch.empty_like(labels)
    for k in labels.unique():
        members = torch.nonzero(labels == k).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        domains[members] = torch.arange(len(members)) % len(CLUTTER_DOMAINS)
    return domains


def clutter_digits_arrays(seed: int = 0, renderings: int = 8,
                          design: SceneDesign = SCENE_DESIGN) -> ClutterArrays:
    """Generate both splits of ``clutter_digits`` from ``seed`` (see the module docstring).

    About a second per thousand scenes on a CPU core.

    Parameters
    ----------
    seed : int, default 0
        Seed of the domains and of every nuisance.
    renderings : int, default 8
        Renderings K of every train sample.
    design : SceneDesign, default :data:`SCENE_DESIGN`
        The ranges of the nuisances.

    Returns
    -------
    ClutterArrays
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    strokes = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    domains = _stroke_styles(labels, seed)
    train, test = stratified_split(labels.numpy())
    g = torch.Generator().manual_seed(seed)
    repeated = train.repeat_interleave(renderings)
    train_scenes = render_scenes(strokes[repeated], domains[repeated], strokes[train], g, design)
    test_scenes = render_scenes(strokes[test], domains[test], strokes[test], g, design)
    second_test_scenes = render_scenes(strokes[test], domains[test], strokes[test], g, design)
    return ClutterArrays(
        train_scenes.view(len(train), renderings, 3, SCENE_SIZE, SCENE_SIZE), labels[train], domains[train], train,
        torch.stack([test_scenes, second_test_scenes], 1), labels[test], domains[test], test,
    )


def _cache_path(root: Path, seed: int, renderings: int) -> Path:
    return root / "clutter_digits" / f"v{GENERATOR_VERSION}_{SCENE_DESIGN.digest()}_seed{seed}_k{renderings}.pt"


def cached_clutter_digits(root: Path, seed: int = 0, renderings: int = 8) -> ClutterArrays:
    """:func:`clutter_digits_arrays`, cached in ``root/clutter_digits/``.

    Read back when generated before, else generated and written there atomically. An unreadable cache
    file is regenerated (with a warning); when the directory is not writable the arrays are returned
    uncached (with a warning).

    Parameters
    ----------
    root : pathlib.Path
        The data directory.
    seed : int, default 0
        Seed of the data.
    renderings : int, default 8
        Renderings of every train sample.

    Returns
    -------
    ClutterArrays
    """
    path = _cache_path(root, seed, renderings)
    if path.exists():
        try:
            return ClutterArrays(**torch.load(path, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError, TypeError, EOFError, pickle.UnpicklingError) as error:
            warnings.warn(f"regenerating clutter_digits: the cached file {path} cannot be read ({error})", UserWarning,
                          stacklevel=2)
    arrays = clutter_digits_arrays(seed, renderings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: torch.save({f.name: getattr(arrays, f.name) for f in fields(arrays)}, handle))
    except OSError as error:
        warnings.warn(f"clutter_digits could not be cached in {path.parent} ({error}); it will be generated again "
                      f"next time. Point root= (CLI --root) or $GCALIB_DATA at a writable directory.", UserWarning,
                      stacklevel=2)
    return arrays
