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

from gcalib import make_loss  # noqa: E402
from gcalib.notebook import insight  # noqa: E402
from gcalib.pretrain.models import Projector, make_encoder  # noqa: E402
from gcalib.pretrain.trainer import PretrainConfig, pretrain  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


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

def test_without_iterations_the_plan_is_the_kernel(make_views):
    views = make_views(noise=0.3)
    eps = 0.3
    mass = insight.positive_pair_mass(views, make_loss("gca_uot", eps=eps, n_iter=0))
    cosine = F.cosine_similarity(views[0], views[1], dim=1)
    torch.testing.assert_close(mass.cosine, cosine)
    torch.testing.assert_close(mass.pair_mass, torch.exp((cosine - 1) / eps))
    z = F.normalize(torch.cat(views), dim=1)
    kernel = torch.exp((z @ z.T - 1) / eps).fill_diagonal_(0.0)
    torch.testing.assert_close(mass.plan, kernel)
    torch.testing.assert_close(mass.row_mass, kernel.sum(1))


def test_converged_unbalanced_plan_matches_pot(make_views):
    views = make_views(batch=5, dim=4, noise=0.3)
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


def test_balanced_plan_sends_one_unit_per_row_and_averages_every_ordered_positive_pair(make_views):
    views = make_views(batch=4, n_views=3, noise=0.3)
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


def test_a_broken_positive_pair_gets_the_least_mass_and_its_rows_send_less(make_views):
    views = make_views(batch=16, dim=32, noise=0.2, seed=3)
    gen = torch.Generator().manual_seed(7)
    views[1][5] = torch.randn(32, generator=gen, dtype=torch.float64) * views[1][5].norm() / math.sqrt(32)
    mass = insight.positive_pair_mass(views, make_loss("gca_uot", eps=0.2))
    assert int(mass.pair_mass.argmin()) == 5
    assert int(mass.cosine.argmin()) == 5
    others = torch.ones(32, dtype=torch.bool)
    others[[5, 21]] = False
    assert float(mass.row_mass[[5, 21]].max()) < float(mass.row_mass[others].min())


def test_positive_pair_mass_checks_its_loss_argument(make_views):
    with pytest.raises(TypeError, match="loss must be a GCALoss"):
        insight.positive_pair_mass(make_views(noise=0.3), "gca_uot")


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


# ----------------------------------------------------------------------------------------- views and domains

def _scenes(n=12, k=3, size=8, seed=0):
    """An in-memory dataset with k distinct renderings per sample and two domains."""
    from gcalib.pretrain.data import ImageDataset

    gen = torch.Generator().manual_seed(seed)
    renderings = torch.randint(0, 256, (n, k, 3, size, size), generator=gen, dtype=torch.uint8)
    return ImageDataset(torch.arange(n) % 5, images=renderings[:, 0].clone(), renderings=renderings,
                        domains=torch.arange(n) % 2, domain_names=["solid", "outline"],
                        classes=[str(c) for c in range(5)], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def test_draw_views_augment_shows_the_sample_image_in_every_view():
    data = _scenes()
    pairs = insight.draw_views(data, [3, 5, 7], augmentation="none")
    assert pairs.views.shape == (6, 3, 8, 8) and pairs.pictures.shape == (2, 3, 3, 8, 8)
    assert pairs.samples.tolist() == [[3, 5, 7], [3, 5, 7]] and pairs.renderings is None
    assert not bool(pairs.corrupted.any())
    torch.testing.assert_close(pairs.pictures[1], data.images[[3, 5, 7]].float() / 255)
    again = insight.draw_views(data, [3, 5, 7], augmentation="simclr", seed=4)
    torch.testing.assert_close(again.views, insight.draw_views(data, [3, 5, 7], augmentation="simclr", seed=4).views)
    assert not torch.equal(again.views[:3], again.views[3:])  # two independent SimCLR draws
    torch.testing.assert_close(insight.denormalise(again.views, data.mean, data.std).unflatten(0, (2, 3)),
                               again.pictures)


def test_draw_views_rendered_shows_distinct_renderings_of_the_same_sample():
    data = _scenes()
    pairs = insight.draw_views(data, torch.arange(12), views="rendered", augmentation="none", n_views=3)
    assert pairs.renderings.shape == (3, 12)
    assert all(len(set(column)) == 3 for column in pairs.renderings.T.tolist())
    assert torch.equal(pairs.samples, torch.arange(12).expand(3, 12))
    for v in range(3):
        expected = data.renderings[torch.arange(12), pairs.renderings[v]].float() / 255
        torch.testing.assert_close(pairs.pictures[v], expected)
    with pytest.raises(ValueError, match="renderings per sample"):
        insight.draw_views(data, [0], views="rendered", n_views=4)
    with pytest.raises(ValueError, match="unknown views"):
        insight.draw_views(data, [0], views="mixed")
    with pytest.raises(ValueError, match="index must hold"):
        insight.draw_views(data, [12])


def test_draw_views_breaks_the_stated_fraction_of_pairs_with_other_samples():
    data = _scenes(n=400, k=2, size=4)
    pairs = insight.draw_views(data, torch.arange(400), views="rendered", augmentation="none", corrupt_pairs=0.3)
    broken = pairs.corrupted
    assert 0.22 < float(broken.float().mean()) < 0.38
    assert bool((pairs.samples[1, broken] != pairs.samples[0, broken]).all())
    assert torch.equal(pairs.samples[1, ~broken], pairs.samples[0, ~broken])
    fig = insight.plot_view_pairs(insight.draw_views(data, torch.arange(10), corrupt_pairs=0.5, seed=1), data)
    titles = [ax.get_title() for ax in fig.axes[:10]]
    corrupted = insight.draw_views(data, torch.arange(10), corrupt_pairs=0.5, seed=1).corrupted.tolist()
    assert [t.startswith("broken") for t in titles] == corrupted
    assert titles[corrupted.index(False)] in {f"{c} · {d}" for c in range(5) for d in ("solid", "outline")}
    assert fig.axes[10].get_ylabel() == "view 2"


def test_domain_examples_and_plot_domains_show_each_domain_on_its_row():
    data = _scenes()
    index = insight.domain_examples(data, 3)
    assert index.tolist() == [0, 2, 4, 1, 3, 5]
    fig = insight.plot_domains(data, 3)
    assert len(fig.axes) == 6 and [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["solid", "outline"]
    np.testing.assert_allclose(fig.axes[4].images[0].get_array(), (data.images[3].float() / 255).permute(1, 2, 0))
    with pytest.raises(ValueError, match="no domain has"):
        insight.plot_domains(data, 7)


def test_plot_renderings_one_row_per_rendering_one_column_per_sample():
    data = _scenes()
    fig = insight.plot_renderings(data, [4, 9], n_renderings=3, title="T")
    assert len(fig.axes) == 6
    np.testing.assert_allclose(fig.axes[5].images[0].get_array(), (data.renderings[9, 2].float() / 255).permute(1, 2, 0))
    assert [ax.get_title() for ax in fig.axes[:2]] == ["4 · solid", "4 · outline"]
    with pytest.raises(ValueError, match="has 3 per sample"):
        insight.plot_renderings(data, [0], n_renderings=4)


# ----------------------------------------------------------------------------------------- committed results

def _grid():
    def runs(values):
        return [{"linear_acc": v} for v in values]
    return {"runs": {"clean": {"infonce": runs([0.40, 0.50]), "gca_uot": runs([0.46, 0.48]),
                               "byol": runs([0.20, 0.22]), "random-init": runs([0.18, 0.18]),
                               "raw-pixels": runs([0.10])},
                     "corrupt_0.2": {"infonce": runs([0.30, 0.32]), "gca_uot": runs([0.50, 0.52, None])}}}


def test_versus_baseline_reads_each_difference_against_the_seed_spread():
    table = insight.versus_baseline(_grid())
    clean = table.loc["clean"]
    assert list(clean.index) == ["infonce", "gca_uot", "byol", "random-init", "raw-pixels"]
    assert clean.loc["gca_uot", "mean"] == pytest.approx(0.47)
    assert clean.loc["gca_uot", "minus baseline"] == pytest.approx(0.02)
    spread = math.sqrt((np.var([0.40, 0.50], ddof=1) + np.var([0.46, 0.48], ddof=1)) / 2)
    assert clean.loc["gca_uot", "spread"] == pytest.approx(spread)
    assert clean.loc["gca_uot", "reading"] == "within seed spread"
    assert clean.loc["byol", "reading"] == "below" and clean.loc["infonce", "reading"] == "-"
    assert clean.loc["raw-pixels", "reading"] == "-" and clean.loc["raw-pixels", "seeds"] == 1
    corrupt = table.loc["corrupt_0.2"]
    assert corrupt.loc["gca_uot", "seeds"] == 2 and corrupt.loc["gca_uot", "reading"] == "above"
    only = insight.versus_baseline(_grid(), settings=["corrupt_0.2", "brightness"])
    assert list(only.index.get_level_values(0).unique()) == ["corrupt_0.2"]
    with pytest.raises(ValueError, match="non-empty 'runs'"):
        insight.versus_baseline({"runs": {}})


def test_load_sweep_gives_back_the_saved_result(tmp_path):
    from gcalib.pretrain.sweep import SweepResult, plot_sweep

    summary = [{"alpha_minus_beta": d, "alpha": max(d, 0.0), "beta": max(-d, 0.0), "n_seeds": 1,
                "domain_acc_mean": 0.5 + d / 2, "domain_acc_std": 0.0, "linear_acc_mean": 0.3, "linear_acc_std": 0.0,
                "heldout_domain_acc_mean": 0.2, "heldout_domain_acc_std": 0.0} for d in (-0.5, 0.0, 0.5)]
    result = SweepResult(dataset="clutter_digits", base=0.0, seeds=[0], runs=[], summary=summary,
                         spearman_domain=1.0, spearman_heldout=float("nan"), class_acc_spread=0.0, config={},
                         total_time_s=1.0, reference={"domain_acc": 0.57, "class_acc": 0.18,
                                                      "heldout_domain_acc": 0.14, "seed": 0})
    result.save(tmp_path)
    loaded = insight.load_sweep(tmp_path / "sweep.json")
    assert isinstance(loaded, SweepResult) and loaded.summary == summary and loaded.reference == result.reference
    assert loaded.table() == result.table()
    assert len(plot_sweep(loaded).lines) == 6
    (tmp_path / "bad.json").write_text('{"summary": []}')
    with pytest.raises(ValueError, match="lacks"):
        insight.load_sweep(tmp_path / "bad.json")


def test_relative_pull_averages_to_one_and_follows_the_gradient_on_positive_pairs(make_views):
    from gcalib.notebook import analysis

    z = make_views(batch=8, dim=6, noise=0.3)
    loss = make_loss("rince", eps=0.5)
    pull = insight.relative_pull(loss, z)
    assert pull.shape == (8,) and float(pull.mean()) == pytest.approx(1.0)
    gradient = analysis.similarity_gradient(loss, *z)
    raw = -gradient[torch.arange(8), torch.arange(8) + 8]
    torch.testing.assert_close(pull, raw / raw.mean())
    with pytest.raises(TypeError, match="GCALoss"):
        insight.relative_pull(lambda a, b: 0.0, z)


def test_broken_pairs_table_compares_broken_and_intact_pairs(make_views):
    z = make_views(batch=10, dim=8, noise=0.05)
    gen = torch.Generator().manual_seed(1)
    z[1][:3] = torch.randn(3, 8, generator=gen, dtype=z[1].dtype)  # three broken pairs
    corrupted = torch.arange(10) < 3
    mass = insight.positive_pair_mass(z, make_loss("gca_uot", eps=0.5))
    pulls = {"rince": insight.relative_pull(make_loss("rince", eps=0.5), z)}
    table = insight.broken_pairs_table(mass, corrupted, pulls)
    assert list(table.index) == ["broken", "intact"] and list(table["pairs"]) == [3, 7]
    assert table.loc["broken", "cosine"] == pytest.approx(float(mass.cosine[:3].mean()))
    assert table.loc["broken", "pair mass"] < table.loc["intact", "pair mass"]
    assert table.loc["broken", "share of the k lowest-mass pairs"] == 1.0
    assert table.loc["intact", "share of the k lowest-mass pairs"] == 0.0
    assert table.loc["broken", "pull (rince)"] == pytest.approx(float(pulls["rince"][:3].mean()))
    with pytest.raises(ValueError, match="corrupted must have shape"):
        insight.broken_pairs_table(mass, corrupted[:4])


def test_view_pairs_select_keeps_the_blocked_layout_of_the_chosen_columns():
    data = _scenes()
    pairs = insight.draw_views(data, torch.arange(6), views="rendered", n_views=3, corrupt_pairs=0.5, seed=2)
    picked = pairs.select([4, 1])
    assert torch.equal(picked.samples, pairs.samples[:, [4, 1]])
    assert torch.equal(picked.renderings, pairs.renderings[:, [4, 1]])
    assert torch.equal(picked.corrupted, pairs.corrupted[[4, 1]])
    torch.testing.assert_close(picked.views, pairs.views[[4, 1, 10, 7, 16, 13]])
    torch.testing.assert_close(picked.pictures, pairs.pictures[:, [4, 1]])
    with pytest.raises(ValueError, match="batch position"):
        pairs.select([6])
