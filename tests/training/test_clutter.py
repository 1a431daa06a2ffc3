"""clutter_digits: deterministic generation, a split by handwriting sample, rendered views, the cache."""
import warnings

import pytest
import torch

from gcalib.training import clutter
from gcalib.training.clutter import CLUTTER_DOMAINS, MIN_CONTRAST, SCENE_SIZE, SceneDesign
from gcalib.training.data import load_dataset

RENDERINGS = 3


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root shared by the tests that load the dataset (generated once, then read from the cache)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def arrays():
    return clutter.clutter_digits_arrays(seed=0, renderings=RENDERINGS)


def _strokes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _render(seed: int, n: int = 16, design: SceneDesign = clutter.SCENE_DESIGN) -> torch.Tensor:
    strokes = _strokes(n)
    styles = torch.arange(n) % len(CLUTTER_DOMAINS)
    return clutter.render_scenes(strokes, styles, _strokes(5, 1), torch.Generator().manual_seed(seed), design)


def test_render_is_a_function_of_the_seed():
    first, again, other = _render(3), _render(3), _render(4)
    assert first.dtype == torch.uint8 and first.shape == (16, 3, SCENE_SIZE, SCENE_SIZE)
    assert torch.equal(first, again)
    assert (first.float() - other.float()).abs().mean() > 20


def test_generated_arrays_are_a_function_of_the_seed_and_clutter_comes_from_the_scene_split(arrays, monkeypatch):
    pools = []
    render = clutter.render_scenes

    def recording(strokes, styles, pool, generator, design):
        pools.append(pool.clone())
        return render(strokes, styles, pool, generator, design)

    monkeypatch.setattr(clutter, "render_scenes", recording)
    again = clutter.clutter_digits_arrays(seed=0, renderings=RENDERINGS)
    for field in ("train_renderings", "test_renderings", "train_domains"):
        assert torch.equal(getattr(arrays, field), getattr(again, field))
    from sklearn.datasets import load_digits

    strokes = torch.from_numpy(load_digits().images).float().div(16.0).unsqueeze(1)
    assert torch.equal(pools[0], strokes[arrays.train_samples])
    assert torch.equal(pools[1], strokes[arrays.test_samples])


def test_split_by_handwriting_sample(arrays):
    train, test = set(arrays.train_samples.tolist()), set(arrays.test_samples.tolist())
    assert not train & test
    assert train | test == set(range(1797))
    assert len(test) == 451
    assert arrays.train_renderings.shape == (len(train), RENDERINGS, 3, SCENE_SIZE, SCENE_SIZE)
    # Every class and every domain is in both splits, the domains balanced within each class.
    for labels, domains in ((arrays.train_labels, arrays.train_domains), (arrays.test_labels, arrays.test_domains)):
        assert set(labels.tolist()) == set(range(10))
        assert set(domains.tolist()) == set(range(len(CLUTTER_DOMAINS)))
    counts = torch.bincount(torch.cat([arrays.train_domains, arrays.test_domains]))
    assert counts.max() - counts.min() <= 10


@pytest.mark.parametrize("split", ["train_renderings", "test_renderings"])
def test_renderings_of_a_sample_differ_in_nuisances(arrays, split):
    renderings = getattr(arrays, split)
    a, b = renderings[:, 0].float(), renderings[:, 1].float()
    per_sample = (a - b).abs().mean((1, 2, 3))
    assert per_sample.min() > 5  # grey levels: no two renderings of a sample are alike
    assert (per_sample > 30).float().mean() > 0.5


def test_contrasting_colour_keeps_its_distance_from_the_background():
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(500, 3, 1, 1, generator=g)
    under = torch.rand(500, 1, 1, 1, generator=g)
    moved = clutter._contrasting(colours, under)
    assert ((clutter._luma(moved) - under).abs() >= MIN_CONTRAST - 1e-5).all()
    assert ((moved >= 0) & (moved <= 1)).all()
    luma = clutter._luma(colours)
    # Over dark backgrounds strokes are lighter, over light ones darker; colours already far enough stay.
    kept = torch.where(under < 0.5, luma >= under + MIN_CONTRAST, luma <= under - MIN_CONTRAST).flatten()
    assert torch.allclose(moved[kept], colours[kept], atol=1e-5)
    assert ((clutter._luma(moved) > under) == (under < 0.5)).all()


def test_stroke_styles_draw_differently():
    """The same strokes and nuisances in two styles differ only where the digit is."""
    strokes = _strokes(8)
    scenes = [clutter.render_scenes(strokes, torch.full((8,), k), _strokes(4, 1), torch.Generator().manual_seed(0))
              for k in range(len(CLUTTER_DOMAINS))]
    for k in range(1, len(CLUTTER_DOMAINS)):
        assert (scenes[k].float() - scenes[0].float()).abs().mean() > 1


def test_load_dataset_splits_and_renderings(root):
    train = load_dataset("clutter_digits", "train", root=root, renderings=2)
    test = load_dataset("clutter_digits", "test", root=root, renderings=2)
    assert (len(train), len(test)) == (1346, 451)
    assert train.renderings.shape == (1346, 2, 3, SCENE_SIZE, SCENE_SIZE)
    assert test.renderings.shape == (451, 2, 3, SCENE_SIZE, SCENE_SIZE)
    assert torch.equal(train.images, train.renderings[:, 0]) and torch.equal(test.images, test.renderings[:, 0])
    assert train.domain_names == list(CLUTTER_DOMAINS) and train.mean == test.mean
    held = load_dataset("clutter_digits", "test", root=root, renderings=2, holdout_domain="outline")
    rest = load_dataset("clutter_digits", "train", root=root, renderings=2, holdout_domain="outline")
    outline = CLUTTER_DOMAINS.index("outline")
    assert set(held.domains.tolist()) == {outline} and outline not in set(rest.domains.tolist())
    assert len(rest) == int((train.domains != outline).sum()) and rest.renderings.shape[0] == len(rest)
    assert held.renderings.shape == (len(held), 2, 3, SCENE_SIZE, SCENE_SIZE)


def test_cache_is_read_back_and_rewritten_when_corrupt(root, monkeypatch, tmp_path):
    first = clutter.cached_clutter_digits(root, seed=0, renderings=2)
    (cached,) = (root / "clutter_digits").iterdir()
    assert cached.suffix == ".pt"
    copy = tmp_path / "clutter_digits" / cached.name
    copy.parent.mkdir()
    copy.write_bytes(cached.read_bytes())

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached dataset must not be generated again")

    monkeypatch.setattr(clutter, "clutter_digits_arrays", forbidden)
    assert torch.equal(clutter.cached_clutter_digits(tmp_path, seed=0, renderings=2).test_images, first.test_images)
    monkeypatch.undo()
    copy.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="cannot be read"):
        again = clutter.cached_clutter_digits(tmp_path, seed=0, renderings=2)
    assert torch.equal(again.test_images, first.test_images)
    assert [f.name for f in copy.parent.iterdir()] == [cached.name]  # rewritten in place, no temporary left
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clutter.cached_clutter_digits(tmp_path, seed=0, renderings=2)


def test_load_dataset_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="renderings must be an int >= 2, got 1"):
        load_dataset("clutter_digits", root=tmp_path, renderings=1)
    with pytest.raises(ValueError, match="holdout_domain='plain' is not a domain of clutter_digits"):
        load_dataset("clutter_digits", root=tmp_path, renderings=2, holdout_domain="plain")
    assert not (tmp_path / "clutter_digits").exists()
