"""Static figures: what is drawn is what was computed (read back from the artists)."""
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from gcalib import LOSSES, sinkhorn
from gcalib.losses import targets as plans
from gcalib.notebook import analysis, dataset_views, figures, target_design


def _plan(n=6, m=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    plan = torch.rand(n, m, generator=gen, dtype=torch.float64)
    return plan / plan.sum()


def test_to_numpy_detaches_tensors_that_require_grad():
    value = torch.ones(2, 3, requires_grad=True) * 2
    array = figures.to_numpy(value)
    assert array.dtype == np.float64 and array.shape == (2, 3) and (array == 2).all()
    with pytest.raises(TypeError, match="value must be"):
        figures.to_numpy({"a": 1})


def test_plot_plan_draws_the_plan_with_view_blocks():
    plan = _plan(8, 8)
    ax = figures.plot_plan(plan, title="P", n_views=2, vmax=0.1)
    image = ax.images[0]
    np.testing.assert_allclose(image.get_array(), plan.numpy())
    assert image.get_clim() == (0.0, 0.1)
    assert ax.get_title() == "P"
    block_lines = [line for line in ax.lines if line.get_color() == "white"]
    assert len(block_lines) == 2
    assert len(ax.figure.axes) == 2
    difference = figures.plot_plan(plan - plan.mean(), signed=True)
    top = float((plan - plan.mean()).abs().max())
    assert difference.images[0].get_clim() == pytest.approx((-top, top))
    assert difference.images[0].get_cmap().name == "RdBu_r"
    with pytest.raises(ValueError, match="plan must be a matrix"):
        figures.plot_plan(torch.ones(3))
    with pytest.raises(ValueError, match="n_views=3"):
        figures.plot_plan(plan, n_views=3)
    with pytest.raises(TypeError, match="ax must be"):
        figures.plot_plan(plan, ax="left")


def test_plot_plans_one_panel_per_plan_and_a_shared_scale():
    plans = {"a": _plan(seed=1), "b": 2 * _plan(seed=2), "c": _plan(seed=3)}
    fig = figures.plot_plans(plans, ncols=2, shared_scale=True)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert [ax.get_title() for ax in visible] == ["a", "b", "c"]
    top = max(float(p.max()) for p in plans.values())
    assert all(ax.images[0].get_clim() == (0.0, top) for ax in visible)
    np.testing.assert_allclose(visible[1].images[0].get_array(), plans["b"].numpy())
    with pytest.raises(ValueError, match="non-empty mapping"):
        figures.plot_plans({})


def test_plot_transport_draws_one_segment_per_heavy_pair():
    x, y = analysis.two_clouds(5, 4)
    plan = sinkhorn(analysis.squared_distances(x, y), 0.05, tol=1e-9).plan
    ax = figures.plot_transport(x, y, plan, threshold=0.1)
    segments = ax.collections[0]
    heavy = (plan > 0.1 * plan.max()).nonzero().tolist()
    assert len(segments.get_segments()) == len(heavy)
    first = segments.get_segments()[0]
    i, j = heavy[0]
    np.testing.assert_allclose(first, np.stack([x[i].numpy(), y[j].numpy()]))
    assert max(segments.get_colors()[:, 3]) == pytest.approx(1.0)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), x.numpy())
    faint = figures.plot_transport(x, y, plan, threshold=0.1, vmax=4 * float(plan.max()))
    assert max(faint.collections[0].get_colors()[:, 3]) == pytest.approx(0.25)
    assert len(faint.collections[0].get_segments()) == int((plan > 0.4 * plan.max()).sum())
    with pytest.raises(ValueError, match="plan must have shape"):
        figures.plot_transport(x, y, plan.T)
    with pytest.raises(ValueError, match="2-D point clouds"):
        figures.plot_transport(torch.zeros(5, 3), y, plan)


def test_plot_curves_lines_and_log_scales():
    ax = figures.plot_curves({"fast": [1.0, 0.1, 0.01], "slow": [1.0, 0.5, 0.25]}, logy=True, ylabel="error")
    assert [line.get_label() for line in ax.lines] == ["fast", "slow"]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1.0, 0.5, 0.25])
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    ax = figures.plot_curves({"c": torch.tensor([3.0, 2.0])}, x=[0.1, 1.0], logx=True)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0.1, 1.0])
    with pytest.raises(ValueError, match="log-scaled"):
        figures.plot_curves({"bad": [1.0, 0.0]}, logy=True)
    with pytest.raises(ValueError, match="x has"):
        figures.plot_curves({"c": [1.0, 2.0]}, x=[1.0])


def test_plot_bars_heights_per_group_and_series():
    table = {"infonce": {"pull": 1.0, "push": 1.0}, "rince": {"pull": 2.0, "push": 0.5}}
    ax = figures.plot_bars(table, reference=1.0)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [1.0, 2.0, 1.0, 0.5]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["infonce", "rince"]
    with pytest.raises(ValueError, match="group 'b'"):
        figures.plot_bars({"a": {"x": 1}, "b": {"y": 2}})


def test_plot_mass_bars_reference_and_highlight():
    ax = figures.plot_mass({"balanced": torch.tensor([0.5, 0.5]), "unbalanced": [0.7, 0.1]},
                       reference=[0.5, 0.5], highlight=[1])
    assert [p.get_height() for p in ax.patches if p.get_width() < 1] == [0.5, 0.5, 0.7, 0.1]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0, 0.5], [1, 0.5]])
    with pytest.raises(ValueError, match="same length"):
        figures.plot_mass({"a": [1.0], "b": [1.0, 2.0]})


def test_plot_embedding_principal_plane_preserves_planar_geometry():
    gen = torch.Generator().manual_seed(0)
    plane = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(6, 2, generator=gen, dtype=torch.float64))
    z = plane @ basis.T + 3.0
    labels = torch.arange(30) % 3
    ax = figures.plot_embedding(z, labels)
    shown = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.linalg.norm(shown[:, None] - shown[None], axis=-1),
                               torch.cdist(plane, plane).numpy(), atol=1e-7)  # cdist: ~1e-8 on its diagonal
    np.testing.assert_allclose(ax.collections[0].get_array(), labels.numpy())
    flat = figures.plot_embedding(plane)
    np.testing.assert_allclose(flat.collections[0].get_offsets(), (plane - plane.mean(0)).numpy())
    with pytest.raises(ValueError, match="labels must have shape"):
        figures.plot_embedding(z, labels[:5])


def test_plot_alignment_uniformity_places_points_at_uniformity_alignment():
    ax = figures.plot_alignment_uniformity({"infonce": (0.4, -3.1), "gca": (0.5, -3.5)})
    assert [tuple(c.get_offsets()[0]) for c in ax.collections] == [(-3.1, 0.4), (-3.5, 0.5)]
    assert [t.get_text() for t in ax.texts] == ["infonce", "gca"]
    with pytest.raises(ValueError, match="alignment, uniformity"):
        figures.plot_alignment_uniformity({"bad": (1.0,)})


def test_loss_colors_cover_every_preset_distinctly_and_plots_use_them():
    assert set(LOSSES) <= set(figures.LOSS_COLORS)
    distinct = {figures.LOSS_COLORS[name] for name in LOSSES if name != "hs_ince"}
    assert len(distinct) == len(LOSSES) - 1 and figures.loss_color("hs_ince") == figures.loss_color("infonce")
    with pytest.raises(ValueError, match="unknown loss 'simclr'"):
        figures.loss_color("simclr")
    ax = figures.plot_curves({"rince": [1.0, 2.0], "other": [2.0, 1.0]}, colors=figures.LOSS_COLORS)
    assert matplotlib.colors.to_hex(ax.lines[0].get_color()) == matplotlib.colors.to_hex("tab:green")
    bars = figures.plot_bars({"rince": {"pull": 2.0, "push": 1.0}, "iot": {"pull": 1.0, "push": 1.0}},
                         group_colors=figures.LOSS_COLORS)
    drawn = [(p.get_height(), matplotlib.colors.to_hex(p.get_facecolor()), p.get_hatch()) for p in bars.patches
             if not np.isnan(p.get_height())]
    green, brown = matplotlib.colors.to_hex("tab:green"), matplotlib.colors.to_hex("tab:brown")
    assert [(float(h), c, str(hatch or "")) for h, c, hatch in drawn] == [(2.0, green, ""), (1.0, brown, ""), (1.0, green, "//"), (1.0, brown, "//")]
    assert [t.get_text() for t in bars.get_legend().get_texts()] == ["pull", "push"]


def _grid():
    def runs(values):
        return [{"linear_acc": v} for v in values]
    return {"dataset": "clutter_digits", "seeds": [0, 1],
            "runs": {"clean": {"infonce": runs([0.4, 0.5]), "gca_uot": runs([0.3, 0.3]),
                               "random-init": runs([0.2, 0.2]), "raw-pixels": runs([0.1])},
                     "corrupt_0.2": {"infonce": runs([0.2, 0.4]), "random-init": runs([0.1, 0.3]),
                                     "raw-pixels": runs([0.1])}}}


def test_plot_robustness_grid_bars_at_seed_means_with_std_error_bars_and_reference_segments():
    ax = figures.plot_robustness_grid(_grid())
    bars = [(round(p.get_x() + p.get_width() / 2, 6), round(p.get_height(), 6)) for p in ax.patches]
    # infonce in both settings (left of centre), gca_uot only in clean (right of centre)
    assert bars == [(-0.2, 0.45), (0.8, 0.3), (0.2, 0.3)]
    spans = [[round(float(abs(seg[1][1] - seg[0][1])), 6) for seg in bars.errorbar.lines[2][0].get_segments()]
             for bars in ax.containers if hasattr(bars, "errorbar")]
    assert spans == [[round(2 * float(np.std([0.4, 0.5], ddof=1)), 6), round(2 * float(np.std([0.2, 0.4], ddof=1)), 6)],
                     [0.0]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", "corrupt_0.2"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["infonce", "gca_uot", "random-init", "raw-pixels"]
    horizontal = [s for c in ax.collections for s in c.get_segments() if s[0][1] == s[1][1] and s[0][0] != s[1][0]]
    assert sorted(round(float(s[0][1]), 6) for s in horizontal) == [0.1, 0.1, 0.2, 0.2]
    assert "2 seeds" in ax.get_title()


def test_plot_robustness_grid_draws_the_settings_asked_for_that_exist():
    ax = figures.plot_robustness_grid(_grid(), settings=["corrupt_0.4", "corrupt_0.2"], title="T")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["corrupt_0.2"]
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.3]
    assert ax.get_title() == "T"
    with pytest.raises(ValueError, match="none of the settings"):
        figures.plot_robustness_grid(_grid(), settings=["brightness"])
    with pytest.raises(ValueError, match="non-empty 'runs'"):
        figures.plot_robustness_grid({"runs": {}})


def test_plot_target_draws_plan_and_shares():
    domains = torch.tensor([0, 0, 1, 1])
    target = plans.domain_plan(domains, 0.5, 0.0)
    fig = figures.plot_target(target, domains=domains, title="t", figure=Figure())
    heat, bars = fig.axes[0], fig.axes[1]
    assert heat.get_title() == "t" and heat.images[0].get_array().shape == (8, 8)
    mass = target_design.target_mass(target, domains=domains)
    assert [p.get_width() for p in bars.patches] == pytest.approx([mass[k] for k in mass])
    with pytest.raises(TypeError, match="figure must be a matplotlib Figure"):
        figures.plot_target(target, figure="fig")


def test_plot_image_grid_draws_every_picture_with_labels():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 3, 8, 8, generator=gen)
    fig = figures.plot_image_grid(images, row_labels=["view 1", "view 2"], col_labels=["a", "b", "c"], title="T")
    axes = fig.axes
    assert len(axes) == 6
    np.testing.assert_allclose(axes[4].images[0].get_array(), images[1, 1].permute(1, 2, 0).numpy(), rtol=1e-6)
    assert [ax.get_title() for ax in axes[:3]] == ["a", "b", "c"]
    assert axes[3].get_ylabel() == "view 2"
    assert fig._suptitle.get_text() == "T"
    gray = figures.plot_image_grid(images[:, :, :1])
    assert gray.axes[0].images[0].get_cmap().name == "gray"
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        figures.plot_image_grid(images - 0.5)
    with pytest.raises(ValueError, match="col_labels must have 3 entries"):
        figures.plot_image_grid(images, col_labels=["a"])
    with pytest.raises(ValueError, match="images must be a tensor"):
        figures.plot_image_grid(images[0])


def test_plot_view_pairs_marks_broken_pairs_and_titles_intact_ones_with_label_and_domain(scenes):
    data = scenes(n=400, k=2, size=4)
    fig = figures.plot_view_pairs(dataset_views.draw_views(data, torch.arange(10), corrupt_pairs=0.5, seed=1), data)
    titles = [ax.get_title() for ax in fig.axes[:10]]
    corrupted = dataset_views.draw_views(data, torch.arange(10), corrupt_pairs=0.5, seed=1).corrupted.tolist()
    assert [t.startswith("broken") for t in titles] == corrupted
    assert titles[corrupted.index(False)] in {f"{c} · {d}" for c in range(5) for d in ("solid", "outline")}
    assert fig.axes[10].get_ylabel() == "view 2"


def test_plot_domains_shows_each_domain_on_its_row(scenes):
    data = scenes()
    fig = figures.plot_domains(data, 3)
    assert len(fig.axes) == 6 and [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["solid", "outline"]
    np.testing.assert_allclose(fig.axes[4].images[0].get_array(), (data.images[3].float() / 255).permute(1, 2, 0))
    with pytest.raises(ValueError, match="no domain has"):
        figures.plot_domains(data, 7)


def test_plot_renderings_one_row_per_rendering_one_column_per_sample(scenes):
    data = scenes()
    fig = figures.plot_renderings(data, [4, 9], n_renderings=3, title="T")
    assert len(fig.axes) == 6
    np.testing.assert_allclose(fig.axes[5].images[0].get_array(), (data.renderings[9, 2].float() / 255).permute(1, 2, 0))
    assert [ax.get_title() for ax in fig.axes[:2]] == ["4 · solid", "4 · outline"]
    with pytest.raises(ValueError, match="has 3 per sample"):
        figures.plot_renderings(data, [0], n_renderings=4)
