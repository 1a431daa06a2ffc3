"""Views of a batch drawn as the trainer draws them, pictures back from normalised views, samples per domain."""
import pytest
import torch
from torchvision.transforms import v2

from gcalib.notebook import dataset_views


def test_denormalise_inverts_normalize_and_clips_for_display():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 8, 8, generator=gen)
    mean, std = (0.2, 0.4, 0.6), (0.3, 0.2, 0.1)
    normalised = v2.Normalize(mean, std)(images)
    torch.testing.assert_close(dataset_views.denormalise(normalised, mean, std), images)
    erased = torch.zeros(3, 8, 8)  # RandomErasing's value 0 after normalisation is the mean colour
    assert dataset_views.denormalise(erased, mean, std)[:, 0, 0].tolist() == pytest.approx(list(mean))
    assert float(dataset_views.denormalise(torch.full((3, 2, 2), 50.0), mean, std).max()) == 1.0
    with pytest.raises(ValueError, match="one value per channel"):
        dataset_views.denormalise(images, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std must be positive"):
        dataset_views.denormalise(images, mean, (0.3, 0.0, 0.1))


def test_draw_views_augment_shows_the_sample_image_in_every_view(scenes):
    data = scenes()
    pairs = dataset_views.draw_views(data, [3, 5, 7], augmentation="none")
    assert pairs.views.shape == (6, 3, 8, 8) and pairs.pictures.shape == (2, 3, 3, 8, 8)
    assert pairs.samples.tolist() == [[3, 5, 7], [3, 5, 7]] and pairs.renderings is None
    assert not bool(pairs.corrupted.any())
    torch.testing.assert_close(pairs.pictures[1], data.images[[3, 5, 7]].float() / 255)
    again = dataset_views.draw_views(data, [3, 5, 7], augmentation="simclr", seed=4)
    torch.testing.assert_close(again.views, dataset_views.draw_views(data, [3, 5, 7], augmentation="simclr", seed=4).views)
    assert not torch.equal(again.views[:3], again.views[3:])  # two independent SimCLR draws
    torch.testing.assert_close(dataset_views.denormalise(again.views, data.mean, data.std).unflatten(0, (2, 3)),
                               again.pictures)


def test_draw_views_rendered_shows_distinct_renderings_of_the_same_sample(scenes):
    data = scenes()
    pairs = dataset_views.draw_views(data, torch.arange(12), views="rendered", augmentation="none", n_views=3)
    assert pairs.renderings.shape == (3, 12)
    assert all(len(set(column)) == 3 for column in pairs.renderings.T.tolist())
    assert torch.equal(pairs.samples, torch.arange(12).expand(3, 12))
    for v in range(3):
        expected = data.renderings[torch.arange(12), pairs.renderings[v]].float() / 255
        torch.testing.assert_close(pairs.pictures[v], expected)
    with pytest.raises(ValueError, match="renderings per sample"):
        dataset_views.draw_views(data, [0], views="rendered", n_views=4)
    with pytest.raises(ValueError, match="unknown views"):
        dataset_views.draw_views(data, [0], views="mixed")
    with pytest.raises(ValueError, match="index must hold"):
        dataset_views.draw_views(data, [12])


def test_draw_views_breaks_the_stated_fraction_of_pairs_with_other_samples(scenes):
    data = scenes(n=400, k=2, size=4)
    pairs = dataset_views.draw_views(data, torch.arange(400), views="rendered", augmentation="none", corrupt_pairs=0.3)
    broken = pairs.corrupted
    assert 0.22 < float(broken.float().mean()) < 0.38
    assert bool((pairs.samples[1, broken] != pairs.samples[0, broken]).all())
    assert torch.equal(pairs.samples[1, ~broken], pairs.samples[0, ~broken])


def test_domain_examples_takes_the_first_samples_of_each_domain_in_turn(scenes):
    assert dataset_views.domain_examples(scenes(), 3).tolist() == [0, 2, 4, 1, 3, 5]


def test_view_pairs_select_keeps_the_blocked_layout_of_the_chosen_columns(scenes):
    data = scenes()
    pairs = dataset_views.draw_views(data, torch.arange(6), views="rendered", n_views=3, corrupt_pairs=0.5, seed=2)
    picked = pairs.select([4, 1])
    assert torch.equal(picked.samples, pairs.samples[:, [4, 1]])
    assert torch.equal(picked.renderings, pairs.renderings[:, [4, 1]])
    assert torch.equal(picked.corrupted, pairs.corrupted[[4, 1]])
    torch.testing.assert_close(picked.views, pairs.views[[4, 1, 10, 7, 16, 13]])
    torch.testing.assert_close(picked.pictures, pairs.pictures[:, [4, 1]])
    with pytest.raises(ValueError, match="batch position"):
        pairs.select([6])
