"""Images through an encoder and projector: eval-mode or batch-statistics projections, modules left as they were."""
import pytest
import torch

from gcalib.notebook import projections
from gcalib.training.models import Projector, make_encoder


def test_project_images_is_the_eval_mode_projection_split_into_views():
    torch.manual_seed(0)
    encoder, projector = make_encoder("small_cnn"), Projector(128, 16, 8)
    images = torch.randn(10, 3, 32, 32)
    encoder.train()
    projector.eval()
    h1, h2 = projections.project_images(encoder, projector, images, n_views=2, batch_size=3)
    assert h1.shape == h2.shape == (5, 8)
    assert encoder.training and not projector.training  # modes restored
    encoder.eval()
    with torch.no_grad():
        expected = projector(encoder(images))
    torch.testing.assert_close(torch.cat([h1, h2]), expected)
    assert not h1.requires_grad
    with pytest.raises(ValueError, match="n_views=3"):
        projections.project_images(encoder, projector, images, n_views=3)
    with pytest.raises(TypeError, match="batch_statistics must be a bool"):
        projections.project_images(encoder, projector, images, batch_statistics=1)


def test_project_images_with_batch_statistics_normalises_like_a_training_step_and_changes_nothing():
    torch.manual_seed(0)
    encoder, projector = make_encoder("small_cnn"), Projector(128, 16, 8)
    encoder.eval()
    projector.eval()
    images = torch.randn(12, 3, 32, 32)
    before = {k: v.clone() for k, v in {**encoder.state_dict(), **projector.state_dict()}.items()}
    h1, h2 = projections.project_images(encoder, projector, images, batch_statistics=True)
    after = {**encoder.state_dict(), **projector.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics untouched
    assert not encoder.training and not projector.training
    reference_encoder, reference_projector = make_encoder("small_cnn"), Projector(128, 16, 8)
    reference_encoder.load_state_dict(encoder.state_dict())
    reference_projector.load_state_dict(projector.state_dict())
    with torch.no_grad():
        expected = reference_projector.train()(reference_encoder.train()(images))
    torch.testing.assert_close(torch.cat([h1, h2]), expected)
    eval_mode = torch.cat(projections.project_images(encoder, projector, images))
    assert not torch.allclose(eval_mode, expected)  # fresh running statistics differ from the batch's
    chunked = torch.cat(projections.project_images(encoder, projector, images, batch_size=6, batch_statistics=True))
    assert not torch.allclose(chunked, expected)  # statistics are per chunk
    with pytest.raises(ValueError, match="images must be a float tensor"):
        projections.project_images(encoder, projector, images[0])
