"""Widget explorers: each control redraws the figure it should, shown as PNG bytes without an Output widget."""
import math
from io import BytesIO

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from gcalib import make_loss, sinkhorn
from gcalib.losses import targets as plans
from gcalib.notebook import analysis, explorers, figures


def test_explorer_draws_at_construction_and_on_every_change():
    calls = []

    def draw(scale, label):
        calls.append((scale, label))
        figure = Figure()
        figure.add_subplot().plot([0, 1], [0, scale], label=label)
        return figure

    slider = widgets.FloatSlider(value=1.0, min=0, max=5)
    explorer = explorers.Explorer(draw, {"scale": slider, "label": widgets.Text(value="a")})
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
    explorer = explorers.Explorer(draw, {"level": slider})
    assert explorer.image.format == "png"
    assert _shown(explorer).shape[:2] == (50, 100)
    assert _shown(explorer)[0, 0, 0] == 1.0
    slider.value = 0.0
    assert _shown(explorer)[0, 0, 0] == 0.0
    assert not any(isinstance(w, widgets.Output) for w in _widget_tree(explorer))


def test_explorer_closes_pyplot_figures_once_rendered():
    explorer = explorers.Explorer(lambda scale: plt.subplots()[0], {"scale": widgets.IntSlider()})
    explorer.controls["scale"].value = 2
    assert plt.get_fignums() == [] and _shown(explorer).ndim == 3


def test_explorer_rejects_bad_draw_results_and_controls():
    with pytest.raises(TypeError, match="must return a matplotlib Figure"):
        explorers.Explorer(lambda v: None, {"v": widgets.IntSlider()})
    with pytest.raises(TypeError, match="ValueWidget"):
        explorers.Explorer(lambda v: Figure(), {"v": widgets.Button()})
    with pytest.raises(ValueError, match="non-empty"):
        explorers.Explorer(lambda: Figure(), {})


def test_explorer_active_disables_controls_that_do_nothing_and_enables_them_again():
    mode, level = widgets.Dropdown(options=["a", "b"], value="a"), widgets.IntSlider(value=1)
    explorer = explorers.Explorer(lambda mode, level: Figure(), {"mode": mode, "level": level},
                            active=lambda mode, level: {"level": mode == "b"})
    assert level.disabled and not mode.disabled
    mode.value = "b"
    assert not level.disabled
    mode.value = "a"
    assert level.disabled and explorer.values == {"mode": "a", "level": 1}
    with pytest.raises(KeyError, match="'nope', which is not a control"):
        explorers.Explorer(lambda level: Figure(), {"level": widgets.IntSlider()}, active=lambda level: {"nope": True})
    with pytest.raises(TypeError, match="active must be callable"):
        explorers.Explorer(lambda level: Figure(), {"level": widgets.IntSlider()}, active=3)


def test_sinkhorn_explorer_shows_the_plan_for_the_current_sliders():
    x, y = analysis.two_clouds(5, 4, n_outliers=1)
    cost = analysis.squared_distances(x, y)
    explorer = explorers.sinkhorn_explorer(cost, x=x, y=y, eps=0.1, n_iter=15)
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
        explorers.sinkhorn_explorer(cost, x=x)
    with pytest.raises(ValueError, match="ε must be in"):
        explorers.sinkhorn_explorer(cost, eps=100.0)


def test_sinkhorn_explorer_disables_rho_unless_unbalanced_and_titles_the_marginal_error_of_the_plan():
    x, y = analysis.two_clouds(5, 4, n_outliers=1)
    cost = analysis.squared_distances(x, y)
    explorer = explorers.sinkhorn_explorer(cost, x=x, y=y, eps=0.1, n_iter=5, reg=0.1)
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


def test_loss_plan_explorer_shows_the_plan_the_loss_scores():
    views = analysis.contrastive_batch(6, 4, seed=1)
    explorer = explorers.loss_plan_explorer(views, name="infonce", eps=0.5, n_iter=0)
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
        explorers.loss_plan_explorer(views, name="simclr")


@pytest.mark.parametrize("name", ["infonce", "hs_ince", "rince"])
def test_loss_plan_explorer_draws_row_projection_presets_at_n_iter_0_whatever_the_slider(name):
    views = analysis.contrastive_batch(6, 4, seed=1)
    explorer = explorers.loss_plan_explorer(views, name="gca_ince", eps=0.2, n_iter=10)
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
    explorer = explorers.loss_plan_explorer(views, name="rince", eps=0.5)
    colours = {matplotlib.colors.to_hex(p.get_facecolor()) for p in explorer.figure.axes[1].patches}
    assert colours == {matplotlib.colors.to_hex(figures.loss_color("rince"))}


def test_plan_inspector_builds_headless_and_redraws_on_change():
    domains, labels = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([1, 0, 1, 0, 1])
    explorer = explorers.plan_inspector(domains, labels, alpha=0.3, beta=0.1)
    assert list(explorer.controls) == ["kind", "alpha", "beta"]
    assert list(explorer.controls["kind"].options) == list(plans.TARGET_KINDS)
    first = explorer.figure
    assert isinstance(first, Figure) and first.axes[0].get_title() == "domain plan, α=0.30, β=0.10"
    heat = first.axes[0].images[0].get_array()
    torch.testing.assert_close(torch.as_tensor(heat.data, dtype=torch.float32), plans.domain_plan(domains, 0.3, 0.1))
    explorer.controls["kind"].value = "labels"
    assert explorer.figure is not first and explorer.figure.axes[0].get_title() == "labels plan"
    explorer.controls["kind"].value = "domain"
    explorer.controls["beta"].value = 0.5
    assert explorer.figure.axes[0].get_title() == "domain plan, α=0.30, β=0.50"
    without_labels = explorers.plan_inspector(domains)
    assert list(without_labels.controls["kind"].options) == ["positive", "domain"]


def test_plan_inspector_errors():
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, max_weight=1.0\], got 2.0"):
        explorers.plan_inspector(torch.tensor([0, 1]), alpha=2.0)
    with pytest.raises(ValueError, match=r"kind='labels' needs labels= \(one class id per sample\)"):
        explorers.plan_inspector(torch.tensor([0, 1]), kind="labels")
    with pytest.raises(ValueError, match=r"labels must hold one id per sample \(2\), got 3"):
        explorers.plan_inspector(torch.tensor([0, 1]), torch.tensor([0, 1, 2]))


def test_plan_inspector_disables_alpha_and_beta_unless_the_plan_is_the_domain_plan():
    domains, labels = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([1, 0, 1, 0, 1])
    explorer = explorers.plan_inspector(domains, labels, alpha=0.3, beta=0.1)
    alpha, beta = explorer.controls["alpha"], explorer.controls["beta"]
    assert not alpha.disabled and not beta.disabled
    for kind in ("positive", "labels"):
        explorer.controls["kind"].value = kind
        assert alpha.disabled and beta.disabled
    explorer.controls["kind"].value = "domain"
    assert not alpha.disabled and not beta.disabled
    assert explorers.plan_inspector(domains, kind="positive").controls["alpha"].disabled
    assert all(c.style.description_width == "initial" for c in explorer.controls.values())
    assert alpha.description == "α (same domain)" and beta.description == "β (other domains)"
