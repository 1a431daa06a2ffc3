"""Figures and explorers: what is drawn is what was computed (read back from the artists)."""
import math
from io import BytesIO

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gcalib import make_loss, sinkhorn  # noqa: E402
from gcalib.notebook import analysis, viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _plan(n=6, m=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    plan = torch.rand(n, m, generator=gen, dtype=torch.float64)
    return plan / plan.sum()


def test_to_numpy_detaches_tensors_that_require_grad():
    value = torch.ones(2, 3, requires_grad=True) * 2
    array = viz.to_numpy(value)
    assert array.dtype == np.float64 and array.shape == (2, 3) and (array == 2).all()
    with pytest.raises(TypeError, match="value must be"):
        viz.to_numpy({"a": 1})


def test_plot_plan_draws_the_plan_with_view_blocks():
    plan = _plan(8, 8)
    ax = viz.plot_plan(plan, title="P", n_views=2, vmax=0.1)
    image = ax.images[0]
    np.testing.assert_allclose(image.get_array(), plan.numpy())
    assert image.get_clim() == (0.0, 0.1)
    assert ax.get_title() == "P"
    block_lines = [line for line in ax.lines if line.get_color() == "white"]
    assert len(block_lines) == 2
    assert len(ax.figure.axes) == 2
    difference = viz.plot_plan(plan - plan.mean(), signed=True)
    top = float((plan - plan.mean()).abs().max())
    assert difference.images[0].get_clim() == pytest.approx((-top, top))
    assert difference.images[0].get_cmap().name == "RdBu_r"
    with pytest.raises(ValueError, match="plan must be a matrix"):
        viz.plot_plan(torch.ones(3))
    with pytest.raises(ValueError, match="n_views=3"):
        viz.plot_plan(plan, n_views=3)
    with pytest.raises(TypeError, match="ax must be"):
        viz.plot_plan(plan, ax="left")


def test_plot_plans_one_panel_per_plan_and_a_shared_scale():
    plans = {"a": _plan(seed=1), "b": 2 * _plan(seed=2), "c": _plan(seed=3)}
    fig = viz.plot_plans(plans, ncols=2, shared_scale=True)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert [ax.get_title() for ax in visible] == ["a", "b", "c"]
    top = max(float(p.max()) for p in plans.values())
    assert all(ax.images[0].get_clim() == (0.0, top) for ax in visible)
    np.testing.assert_allclose(visible[1].images[0].get_array(), plans["b"].numpy())
    with pytest.raises(ValueError, match="non-empty mapping"):
        viz.plot_plans({})


def test_plot_transport_draws_one_segment_per_heavy_pair():
    x, y = analysis.two_clouds(5, 4)
    plan = sinkhorn(analysis.squared_distances(x, y), 0.05, tol=1e-9).plan
    ax = viz.plot_transport(x, y, plan, threshold=0.1)
    segments = ax.collections[0]
    heavy = (plan > 0.1 * plan.max()).nonzero().tolist()
    assert len(segments.get_segments()) == len(heavy)
    first = segments.get_segments()[0]
    i, j = heavy[0]
    np.testing.assert_allclose(first, np.stack([x[i].numpy(), y[j].numpy()]))
    assert max(segments.get_colors()[:, 3]) == pytest.approx(1.0)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), x.numpy())
    faint = viz.plot_transport(x, y, plan, threshold=0.1, vmax=4 * float(plan.max()))
    assert max(faint.collections[0].get_colors()[:, 3]) == pytest.approx(0.25)
    assert len(faint.collections[0].get_segments()) == int((plan > 0.4 * plan.max()).sum())
    with pytest.raises(ValueError, match="plan must have shape"):
        viz.plot_transport(x, y, plan.T)
    with pytest.raises(ValueError, match="2-D point clouds"):
        viz.plot_transport(torch.zeros(5, 3), y, plan)


def test_plot_curves_lines_and_log_scales():
    ax = viz.plot_curves({"fast": [1.0, 0.1, 0.01], "slow": [1.0, 0.5, 0.25]}, logy=True, ylabel="error")
    assert [line.get_label() for line in ax.lines] == ["fast", "slow"]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1.0, 0.5, 0.25])
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    ax = viz.plot_curves({"c": torch.tensor([3.0, 2.0])}, x=[0.1, 1.0], logx=True)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0.1, 1.0])
    with pytest.raises(ValueError, match="log-scaled"):
        viz.plot_curves({"bad": [1.0, 0.0]}, logy=True)
    with pytest.raises(ValueError, match="x has"):
        viz.plot_curves({"c": [1.0, 2.0]}, x=[1.0])


def test_plot_bars_heights_per_group_and_series():
    table = {"infonce": {"pull": 1.0, "push": 1.0}, "rince": {"pull": 2.0, "push": 0.5}}
    ax = viz.plot_bars(table, reference=1.0)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [1.0, 2.0, 1.0, 0.5]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["infonce", "rince"]
    with pytest.raises(ValueError, match="group 'b'"):
        viz.plot_bars({"a": {"x": 1}, "b": {"y": 2}})


def test_plot_mass_bars_reference_and_highlight():
    ax = viz.plot_mass({"balanced": torch.tensor([0.5, 0.5]), "unbalanced": [0.7, 0.1]},
                       reference=[0.5, 0.5], highlight=[1])
    assert [p.get_height() for p in ax.patches if p.get_width() < 1] == [0.5, 0.5, 0.7, 0.1]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[0, 0.5], [1, 0.5]])
    with pytest.raises(ValueError, match="same length"):
        viz.plot_mass({"a": [1.0], "b": [1.0, 2.0]})


def test_plot_embedding_principal_plane_preserves_planar_geometry():
    gen = torch.Generator().manual_seed(0)
    plane = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(6, 2, generator=gen, dtype=torch.float64))
    z = plane @ basis.T + 3.0
    labels = torch.arange(30) % 3
    ax = viz.plot_embedding(z, labels)
    shown = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.linalg.norm(shown[:, None] - shown[None], axis=-1),
                               torch.cdist(plane, plane).numpy(), atol=1e-7)  # cdist: ~1e-8 on its diagonal
    np.testing.assert_allclose(ax.collections[0].get_array(), labels.numpy())
    flat = viz.plot_embedding(plane)
    np.testing.assert_allclose(flat.collections[0].get_offsets(), (plane - plane.mean(0)).numpy())
    with pytest.raises(ValueError, match="labels must have shape"):
        viz.plot_embedding(z, labels[:5])


def test_plot_alignment_uniformity_places_points_at_uniformity_alignment():
    ax = viz.plot_alignment_uniformity({"infonce": (0.4, -3.1), "gca": (0.5, -3.5)})
    assert [tuple(c.get_offsets()[0]) for c in ax.collections] == [(-3.1, 0.4), (-3.5, 0.5)]
    assert [t.get_text() for t in ax.texts] == ["infonce", "gca"]
    with pytest.raises(ValueError, match="alignment, uniformity"):
        viz.plot_alignment_uniformity({"bad": (1.0,)})



def _grid():
    def runs(values):
        return [{"linear_acc": v} for v in values]
    return {"dataset": "clutter_digits", "seeds": [0, 1],
            "runs": {"clean": {"infonce": runs([0.4, 0.5]), "gca_uot": runs([0.3, 0.3]),
                               "random-init": runs([0.2, 0.2]), "raw-pixels": runs([0.1])},
                     "corrupt_0.2": {"infonce": runs([0.2, 0.4]), "random-init": runs([0.1, 0.3]),
                                     "raw-pixels": runs([0.1])}}}


def test_plot_robustness_grid_bars_at_seed_means_with_std_error_bars_and_reference_segments():
    ax = viz.plot_robustness_grid(_grid())
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
    ax = viz.plot_robustness_grid(_grid(), settings=["corrupt_0.4", "corrupt_0.2"], title="T")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["corrupt_0.2"]
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.3]
    assert ax.get_title() == "T"
    with pytest.raises(ValueError, match="none of the settings"):
        viz.plot_robustness_grid(_grid(), settings=["brightness"])
    with pytest.raises(ValueError, match="non-empty 'runs'"):
        viz.plot_robustness_grid({"runs": {}})


def test_explorer_draws_at_construction_and_on_every_change():
    calls = []

    def draw(scale, label):
        calls.append((scale, label))
        figure = Figure()
        figure.add_subplot().plot([0, 1], [0, scale], label=label)
        return figure

    slider = widgets.FloatSlider(value=1.0, min=0, max=5)
    explorer = viz.Explorer(draw, {"scale": slider, "label": widgets.Text(value="a")})
    assert calls == [(1.0, "a")] and isinstance(explorer, widgets.VBox)
    assert explorer.values == {"scale": 1.0, "label": "a"}
    slider.value = 3.0
    assert calls[-1] == (3.0, "a")
    assert explorer.figure.axes[0].lines[0].get_ydata()[1] == 3.0
    assert explorer.children[1] is explorer.image


def _shown(explorer):
    """The pixels the explorer's image shows, decoded from its PNG bytes."""
    return plt.imread(BytesIO(explorer.image.value), format="png")


def _widget_tree(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widget_tree(child)


def test_explorer_shows_each_figure_as_a_png_image_without_an_output_widget():
    def draw(level):
        figure = Figure(figsize=(2.0, 1.0), dpi=50)
        figure.patch.set_facecolor((level, 0.0, 0.0))
        return figure

    slider = widgets.FloatSlider(value=1.0, min=0, max=1)
    explorer = viz.Explorer(draw, {"level": slider})
    assert explorer.image.format == "png"
    assert _shown(explorer).shape[:2] == (50, 100)
    assert _shown(explorer)[0, 0, 0] == 1.0
    slider.value = 0.0
    assert _shown(explorer)[0, 0, 0] == 0.0
    assert not any(isinstance(w, widgets.Output) for w in _widget_tree(explorer))


def test_explorer_closes_pyplot_figures_once_rendered():
    explorer = viz.Explorer(lambda scale: plt.subplots()[0], {"scale": widgets.IntSlider()})
    explorer.controls["scale"].value = 2
    assert plt.get_fignums() == [] and _shown(explorer).ndim == 3


def test_explorer_rejects_bad_draw_results_and_controls():
    with pytest.raises(TypeError, match="must return a matplotlib Figure"):
        viz.Explorer(lambda v: None, {"v": widgets.IntSlider()})
    with pytest.raises(TypeError, match="ValueWidget"):
        viz.Explorer(lambda v: Figure(), {"v": widgets.Button()})
    with pytest.raises(ValueError, match="non-empty"):
        viz.Explorer(lambda: Figure(), {})


def test_sinkhorn_explorer_shows_the_plan_for_the_current_sliders():
    x, y = analysis.two_clouds(5, 4, n_outliers=1)
    cost = analysis.squared_distances(x, y)
    explorer = viz.sinkhorn_explorer(cost, x=x, y=y, eps=0.1, n_iter=15)
    shown = explorer.figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown, sinkhorn(cost, 0.1, n_iter=15).plan.numpy())
    explorer.controls["eps"].value = 0.01
    np.testing.assert_allclose(explorer.figure.axes[0].images[0].get_array(),
                               sinkhorn(cost, 0.01, n_iter=15).plan.numpy(), rtol=1e-6)
    explorer.controls["unbalanced"].value = True
    explorer.controls["reg"].value = 0.01
    expected = sinkhorn(cost, 0.01, reg_a=0.01, reg_b=0.01, n_iter=15).plan
    np.testing.assert_allclose(explorer.figure.axes[0].images[0].get_array(), expected.numpy(), rtol=1e-6)
    assert "unbalanced" in explorer.figure.axes[0].get_title()
    assert len(explorer.figure.axes[1].collections) == 3
    with pytest.raises(ValueError, match="both x and y"):
        viz.sinkhorn_explorer(cost, x=x)
    with pytest.raises(ValueError, match="ε must be in"):
        viz.sinkhorn_explorer(cost, eps=100.0)


def test_loss_plan_explorer_shows_the_plan_the_loss_scores():
    views = analysis.contrastive_batch(6, 4, seed=1)
    explorer = viz.loss_plan_explorer(views, name="infonce", eps=0.5, n_iter=0)
    plan = make_loss("infonce", eps=0.5).plan(*views)
    np.testing.assert_allclose(explorer.figure.axes[0].images[0].get_array(), plan.numpy())
    explorer.controls["name"].value = "gca_ince"
    explorer.controls["n_iter"].value = 40
    plan = make_loss("gca_ince", eps=0.5, n_iter=40).plan(*views)
    np.testing.assert_allclose(explorer.figure.axes[0].images[0].get_array(), plan.numpy())
    bars = [p.get_height() for p in explorer.figure.axes[1].patches]
    np.testing.assert_allclose(bars, plan.sum(0).numpy())
    assert math.isclose(max(bars), float(plan.sum(0).max()))
    with pytest.raises(ValueError, match="unknown loss 'simclr'; valid: infonce, hs_ince"):
        viz.loss_plan_explorer(views, name="simclr")


def test_explorer_active_disables_controls_that_do_nothing_and_enables_them_again():
    mode, level = widgets.Dropdown(options=["a", "b"], value="a"), widgets.IntSlider(value=1)
    explorer = viz.Explorer(lambda mode, level: Figure(), {"mode": mode, "level": level},
                            active=lambda mode, level: {"level": mode == "b"})
    assert level.disabled and not mode.disabled
    mode.value = "b"
    assert not level.disabled
    mode.value = "a"
    assert level.disabled and explorer.values == {"mode": "a", "level": 1}
    with pytest.raises(KeyError, match="'nope', which is not a control"):
        viz.Explorer(lambda level: Figure(), {"level": widgets.IntSlider()}, active=lambda level: {"nope": True})
    with pytest.raises(TypeError, match="active must be callable"):
        viz.Explorer(lambda level: Figure(), {"level": widgets.IntSlider()}, active=3)


def test_sinkhorn_explorer_disables_rho_unless_unbalanced_and_titles_the_marginal_error_of_the_plan():
    x, y = analysis.two_clouds(5, 4, n_outliers=1)
    cost = analysis.squared_distances(x, y)
    explorer = viz.sinkhorn_explorer(cost, x=x, y=y, eps=0.1, n_iter=5, reg=0.1)
    assert explorer.controls["reg"].disabled
    balanced = sinkhorn(cost, 0.1, n_iter=5)
    assert f"marginal error {analysis.marginal_deviation(balanced.plan):.2e}" in explorer.figure.axes[0].get_title()
    explorer.controls["unbalanced"].value = True
    assert not explorer.controls["reg"].disabled
    relaxed = sinkhorn(cost, 0.1, reg_a=0.1, reg_b=0.1, n_iter=5)
    title = explorer.figure.axes[0].get_title()
    assert f"marginal error {analysis.marginal_deviation(relaxed.plan):.2e}" in title
    assert f"optimality residual {relaxed.marginal_error:.2e}" in title
    explorer.controls["unbalanced"].value = False
    assert explorer.controls["reg"].disabled
    assert all(c.style.description_width == "initial" for c in explorer.controls.values())


@pytest.mark.parametrize("name", ["infonce", "hs_ince", "rince"])
def test_loss_plan_explorer_draws_row_projection_presets_at_n_iter_0_whatever_the_slider(name):
    views = analysis.contrastive_batch(6, 4, seed=1)
    explorer = viz.loss_plan_explorer(views, name="gca_ince", eps=0.2, n_iter=10)
    assert not explorer.controls["n_iter"].disabled
    explorer.controls["name"].value = name
    assert explorer.controls["n_iter"].disabled and explorer.controls["n_iter"].value == 10
    expected = make_loss(name, eps=0.2).plan(*views)
    assert make_loss(name).spec.n_iter == 0
    np.testing.assert_allclose(explorer.figure.axes[0].images[0].get_array(), expected.numpy())
    assert not np.allclose(expected.numpy(), make_loss("gca_ince", eps=0.2, n_iter=10).plan(*views).numpy())
    assert "n_iter=0" in explorer.figure.axes[0].get_title()
    explorer.controls["name"].value = "gca_uot"
    assert not explorer.controls["n_iter"].disabled
    np.testing.assert_allclose(explorer.figure.axes[0].images[0].get_array(),
                               make_loss("gca_uot", eps=0.2, n_iter=10).plan(*views).numpy())


def test_loss_plan_explorer_colours_the_column_mass_with_the_loss_colour():
    views = analysis.contrastive_batch(6, 4, seed=1)
    explorer = viz.loss_plan_explorer(views, name="rince", eps=0.5)
    colours = {matplotlib.colors.to_hex(p.get_facecolor()) for p in explorer.figure.axes[1].patches}
    assert colours == {matplotlib.colors.to_hex(viz.loss_color("rince"))}


def test_loss_colors_cover_every_preset_distinctly_and_plots_use_them():
    from gcalib.losses.gca import LOSSES
    assert set(LOSSES) <= set(viz.LOSS_COLORS)
    distinct = {viz.LOSS_COLORS[name] for name in LOSSES if name != "hs_ince"}
    assert len(distinct) == len(LOSSES) - 1 and viz.loss_color("hs_ince") == viz.loss_color("infonce")
    with pytest.raises(ValueError, match="unknown loss 'simclr'"):
        viz.loss_color("simclr")
    ax = viz.plot_curves({"rince": [1.0, 2.0], "other": [2.0, 1.0]}, colors=viz.LOSS_COLORS)
    assert matplotlib.colors.to_hex(ax.lines[0].get_color()) == matplotlib.colors.to_hex("tab:green")
    bars = viz.plot_bars({"rince": {"pull": 2.0, "push": 1.0}, "iot": {"pull": 1.0, "push": 1.0}},
                         group_colors=viz.LOSS_COLORS)
    drawn = [(p.get_height(), matplotlib.colors.to_hex(p.get_facecolor()), p.get_hatch()) for p in bars.patches
             if not np.isnan(p.get_height())]
    green, brown = matplotlib.colors.to_hex("tab:green"), matplotlib.colors.to_hex("tab:brown")
    assert [(float(h), c, str(hatch or "")) for h, c, hatch in drawn] == [(2.0, green, ""), (1.0, brown, ""), (1.0, green, "//"), (1.0, brown, "//")]
    assert [t.get_text() for t in bars.get_legend().get_texts()] == ["pull", "push"]
