"""Notebook helpers: run directories (load-or-train), projections, the mass of positive pairs, pictures."""
import dataclasses
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from gcalib import insight, make_loss  # noqa: E402
from gcalib.models import Projector, make_encoder  # noqa: E402
from gcalib.train import PretrainConfig, pretrain  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _views(batch=6, dim=5, n_views=2, noise=0.3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, dim, generator=gen, dtype=dtype)
    return [base + noise * torch.randn(batch, dim, generator=gen, dtype=dtype) for _ in range(n_views)]


# ----------------------------------------------------------------------------------------- run directories

def test_digest_ignores_resume_free_fields_and_tracks_everything_else():
    config = PretrainConfig(epochs=3, progress=False)
    same = dataclasses.replace(config, progress=True, out_dir="/tmp/elsewhere", device="cpu", resume=False,
                               checkpoint_every=5, evaluate=False)
    assert insight.config_digest(config) == insight.config_digest(same)
    for change in ({"epochs": 4}, {"loss": "gca_uot"}, {"loss_params": {"eps": 0.2}}, {"seed": 1},
                   {"augmentation": "large_erase"}, {"batch_size": 64}):
        assert insight.config_digest(dataclasses.replace(config, **change)) != insight.config_digest(config), change
    assert len(insight.config_digest(config, length=16)) == 16
    with pytest.raises(TypeError, match="config must be a PretrainConfig"):
        insight.config_digest({"epochs": 3})
    with pytest.raises(ValueError, match="length must be"):
        insight.config_digest(config, length=0)


def test_run_directory_names_the_run_and_appends_the_digest(tmp_path):
    config = PretrainConfig(loss="gca_uot")
    path = insight.run_directory(tmp_path, config)
    assert path.parent == tmp_path
    assert path.name == f"digits-small_cnn-gca_uot-{insight.config_digest(config)}"
    assert not path.exists()
    byol = PretrainConfig(loss="byol")
    assert insight.run_directory(tmp_path, byol).name.startswith("digits-small_cnn-byol-")
    assert insight.run_directory(str(tmp_path), config, name="mine").name.startswith("mine-")
    with pytest.raises(ValueError, match="name must be"):
        insight.run_directory(tmp_path, config, name="../escape")
    with pytest.raises(TypeError, match="root must be a path"):
        insight.run_directory(3, config)
    with pytest.raises(TypeError, match="config must be a PretrainConfig"):
        insight.run_directory(tmp_path, {"dataset": "digits"})


def test_a_finished_run_in_its_directory_is_loaded_not_retrained(tmp_path):
    config = PretrainConfig(max_train_samples=48, batch_size=16, epochs=1, warmup_epochs=0, workers=0,
                            projector_hidden_dim=32, evaluate=False, progress=False)
    where = insight.run_directory(tmp_path, config)
    first = pretrain(dataclasses.replace(config, out_dir=str(where), resume=True))
    again = pretrain(dataclasses.replace(config, out_dir=str(where), resume=True))
    assert again.history == first.history and len(again.history) == 1
    for (name, a), (_, b) in zip(first.encoder.state_dict().items(), again.encoder.state_dict().items()):
        assert torch.equal(a, b), name


# ----------------------------------------------------------------------------------------- projections

def test_project_images_is_the_eval_mode_projection_split_into_views():
    torch.manual_seed(0)
    encoder, projector = make_encoder("small_cnn"), Projector(128, 16, 8)
    images = torch.randn(10, 3, 32, 32)
    encoder.train()
    projector.eval()
    h1, h2 = insight.project_images(encoder, projector, images, n_views=2, batch_size=3)
    assert h1.shape == h2.shape == (5, 8)
    assert encoder.training and not projector.training  # modes restored
    encoder.eval()
    with torch.no_grad():
        expected = projector(encoder(images))
    torch.testing.assert_close(torch.cat([h1, h2]), expected)
    assert not h1.requires_grad
    with pytest.raises(ValueError, match="n_views=3"):
        insight.project_images(encoder, projector, images, n_views=3)
    with pytest.raises(TypeError, match="batch_statistics must be a bool"):
        insight.project_images(encoder, projector, images, batch_statistics=1)


def test_project_images_with_batch_statistics_normalises_like_a_training_step_and_changes_nothing():
    torch.manual_seed(0)
    encoder, projector = make_encoder("small_cnn"), Projector(128, 16, 8)
    encoder.eval()
    projector.eval()
    images = torch.randn(12, 3, 32, 32)
    before = {k: v.clone() for k, v in {**encoder.state_dict(), **projector.state_dict()}.items()}
    h1, h2 = insight.project_images(encoder, projector, images, batch_statistics=True)
    after = {**encoder.state_dict(), **projector.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics untouched
    assert not encoder.training and not projector.training
    reference_encoder, reference_projector = make_encoder("small_cnn"), Projector(128, 16, 8)
    reference_encoder.load_state_dict(encoder.state_dict())
    reference_projector.load_state_dict(projector.state_dict())
    with torch.no_grad():
        expected = reference_projector.train()(reference_encoder.train()(images))
    torch.testing.assert_close(torch.cat([h1, h2]), expected)
    eval_mode = torch.cat(insight.project_images(encoder, projector, images))
    assert not torch.allclose(eval_mode, expected)  # fresh running statistics differ from the batch's
    chunked = torch.cat(insight.project_images(encoder, projector, images, batch_size=6, batch_statistics=True))
    assert not torch.allclose(chunked, expected)  # statistics are per chunk
    with pytest.raises(ValueError, match="images must be a float tensor"):
        insight.project_images(encoder, projector, images[0])


# ----------------------------------------------------------------------------------------- pair mass

def test_without_iterations_the_plan_is_the_kernel():
    views = _views()
    eps = 0.3
    mass = insight.positive_pair_mass(views, make_loss("gca_uot", eps=eps, n_iter=0))
    cosine = F.cosine_similarity(views[0], views[1], dim=1)
    torch.testing.assert_close(mass.cosine, cosine)
    torch.testing.assert_close(mass.pair_mass, torch.exp((cosine - 1) / eps))
    z = F.normalize(torch.cat(views), dim=1)
    kernel = torch.exp((z @ z.T - 1) / eps).fill_diagonal_(0.0)
    torch.testing.assert_close(mass.plan, kernel)
    torch.testing.assert_close(mass.row_mass, kernel.sum(1))


def test_converged_unbalanced_plan_matches_pot():
    views = _views(batch=5, dim=4)
    eps, rho = 0.5, 0.2
    mass = insight.positive_pair_mass(views, make_loss("gca_uot", eps=eps, n_iter=400, reg_a=rho, reg_b=rho))
    z = F.normalize(torch.cat(views), dim=1).numpy()
    cost = 1.0 - z @ z.T
    np.fill_diagonal(cost, 1e4)  # exp(−1e4/ε) = 0: self-pairs carry nothing, as with C_rr = +∞
    ones = np.ones(len(z))
    reference = ot.unbalanced.sinkhorn_unbalanced(ones, ones, cost, eps, rho, numItermax=20000, stopThr=1e-14)
    np.testing.assert_allclose(mass.plan.numpy(), reference, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(mass.row_mass.numpy(), reference.sum(1), rtol=1e-7)
    # At convergence u_r = (K v)_r^{−κ}, so row r sends m_r = (K v)_r^{1−κ}, i.e. u = m^{−κ/(1−κ)}
    # (likewise v from the column masses c): P = diag(u) K diag(v), with κ = ρ/(ρ+ε).
    kappa = rho / (rho + eps)
    u = mass.row_mass.numpy() ** (-kappa / (1 - kappa))
    v = mass.plan.sum(0).numpy() ** (-kappa / (1 - kappa))
    np.testing.assert_allclose(u[:, None] * np.exp(-cost / eps) * v[None, :], reference, rtol=1e-6, atol=1e-12)
    assert float(mass.row_mass.max()) > 1.0  # at ε = 0.5 the entropy term creates mass


def test_balanced_plan_sends_one_unit_per_row_and_averages_every_ordered_positive_pair():
    views = _views(batch=4, n_views=3)
    mass = insight.positive_pair_mass(views, make_loss("gca_ince", eps=0.5, n_iter=300))
    torch.testing.assert_close(mass.row_mass, torch.ones(12, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(mass.plan.sum(0), torch.ones(12, dtype=torch.float64), atol=1e-8, rtol=0)
    z = F.normalize(torch.cat(views), dim=1)
    for b in range(4):
        rows = [b, b + 4, b + 8]
        pairs = [(r, s) for r in rows for s in rows if r != s]
        assert len(pairs) == 6
        assert mass.pair_mass[b] == pytest.approx(sum(float(mass.plan[r, s]) for r, s in pairs) / 6, rel=1e-12)
        assert mass.cosine[b] == pytest.approx(sum(float(z[r] @ z[s]) for r, s in pairs) / 6, rel=1e-12)


def test_a_broken_positive_pair_gets_the_least_mass_and_its_rows_send_less():
    views = _views(batch=16, dim=32, noise=0.2, seed=3)
    gen = torch.Generator().manual_seed(7)
    views[1][5] = torch.randn(32, generator=gen, dtype=torch.float64) * views[1][5].norm() / math.sqrt(32)
    mass = insight.positive_pair_mass(views, make_loss("gca_uot", eps=0.2))
    assert int(mass.pair_mass.argmin()) == 5
    assert int(mass.cosine.argmin()) == 5
    others = torch.ones(32, dtype=torch.bool)
    others[[5, 21]] = False
    assert float(mass.row_mass[[5, 21]].max()) < float(mass.row_mass[others].min())


def test_positive_pair_mass_checks_its_loss_argument():
    with pytest.raises(TypeError, match="loss must be a GCALoss"):
        insight.positive_pair_mass(_views(), "gca_uot")


# ----------------------------------------------------------------------------------------- pictures

def test_denormalise_inverts_normalize_and_clips_for_display():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 8, 8, generator=gen)
    mean, std = (0.2, 0.4, 0.6), (0.3, 0.2, 0.1)
    normalised = v2.Normalize(mean, std)(images)
    torch.testing.assert_close(insight.denormalise(normalised, mean, std), images)
    erased = torch.zeros(3, 8, 8)  # RandomErasing's value 0 after normalisation is the mean colour
    assert insight.denormalise(erased, mean, std)[:, 0, 0].tolist() == pytest.approx(list(mean))
    assert float(insight.denormalise(torch.full((3, 2, 2), 50.0), mean, std).max()) == 1.0
    with pytest.raises(ValueError, match="one value per channel"):
        insight.denormalise(images, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std must be positive"):
        insight.denormalise(images, mean, (0.3, 0.0, 0.1))


def test_plot_image_grid_draws_every_picture_with_labels():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 3, 8, 8, generator=gen)
    fig = insight.plot_image_grid(images, row_labels=["view 1", "view 2"], col_labels=["a", "b", "c"], title="T")
    axes = fig.axes
    assert len(axes) == 6
    np.testing.assert_allclose(axes[4].images[0].get_array(), images[1, 1].permute(1, 2, 0).numpy(), rtol=1e-6)
    assert [ax.get_title() for ax in axes[:3]] == ["a", "b", "c"]
    assert axes[3].get_ylabel() == "view 2"
    assert fig._suptitle.get_text() == "T"
    gray = insight.plot_image_grid(images[:, :, :1])
    assert gray.axes[0].images[0].get_cmap().name == "gray"
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        insight.plot_image_grid(images - 0.5)
    with pytest.raises(ValueError, match="col_labels must have 3 entries"):
        insight.plot_image_grid(images, col_labels=["a"])
    with pytest.raises(ValueError, match="images must be a tensor"):
        insight.plot_image_grid(images[0])
