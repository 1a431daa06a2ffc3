"""Widget explorers: ipywidgets controls redrawing a figure of :mod:`gcalib.notebook.figures` on every change.

:class:`Explorer` ties the controls to a drawing function and shows each figure as PNG bytes in an
``ipywidgets.Image``. It deliberately uses no ``Output`` widget: a headless client (nbclient, so
nbconvert, papermill, nbval and notebook-executing docs builds) mimics an ``Output`` widget by writing
each captured output back to the kernel on its shell socket while the cell runs, and in some runs it
then misses the cell's ``execute_reply``, waiting for the cell timeout, or forever without one.
Setting an ``Image``'s value only sends a widget-state update from the kernel, which the client stores
in the notebook's widget state, so an executed notebook keeps the explorer's first figure.

The explorers built on it: :func:`sinkhorn_explorer` (ε, iterations, ρ), :func:`loss_plan_explorer` (a loss
preset's plan on a batch) and :func:`plan_inspector` (a target plan and its mass shares).
"""
from __future__ import annotations

import math
from io import BytesIO
from typing import Callable, Mapping, Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..losses import make_loss
from ..losses.targets import TARGET_KINDS
from ..losses.spec import LOSSES, PRESETS
from ..ot.solver import sinkhorn
from ..validation import check_choice, check_ids, check_positive, check_real
from .figures import LOSS_COLORS, ArrayLike, plot_plan, plot_target, plot_transport, to_numpy
from .target_design import build_plan

__all__ = [
    "CONTROL_STYLE",
    "ROW_PROJECTION_PRESETS",
    "Explorer",
    "sinkhorn_explorer",
    "loss_plan_explorer",
    "plan_inspector",
]

# Controls size their description to its text, so labels such as "α (same domain)" are never cut off.
CONTROL_STYLE = {"description_width": "initial"}

# Presets defined by a single row projection of the kernel (n_iter = 0): drawn with n_iter = 0 always.
ROW_PROJECTION_PRESETS = tuple(name for name, spec in PRESETS.items() if spec.n_iter == 0)


def _png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes at its own size and dpi (rendered by Agg, whatever the backend)."""
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi="figure")
    return buffer.getvalue()


class Explorer(widgets.VBox):
    """Widget controls above an image; any change of a control calls ``draw(**values)`` and shows the
    figure it returns as a PNG in ``image``.

    The first figure is drawn at construction; ``figure`` is the latest one. Drawing never goes through an
    ``Output`` widget (see the module docstring), so headless runs do not block.

    Parameters
    ----------
    draw : callable
        ``draw(**values) -> matplotlib.figure.Figure``, ``values`` mapping each control's name to its value.
    controls : mapping of str to ipywidgets.ValueWidget
        Argument name → control, shown in one row in this order.
    active : callable, optional
        ``active(**values) -> {control name: bool}``, called before every drawing: a control mapped to False
        is disabled (greyed out) because it does nothing in the current state, and is enabled again when
        mapped to True. Controls it does not name are left as they are.

    Attributes
    ----------
    controls : dict of str to ipywidgets.ValueWidget
        The controls.
    image : ipywidgets.Image
        The latest figure as PNG bytes.
    figure : matplotlib.figure.Figure
        The latest figure.

    Raises
    ------
    TypeError
        If ``draw`` or ``active`` is not callable, or a control is not a value widget.
    ValueError
        If ``controls`` is empty.
    """

    def __init__(self, draw: Callable[..., Figure], controls: Mapping[str, widgets.ValueWidget],
                 active: Optional[Callable[..., Mapping[str, bool]]] = None) -> None:
        if not callable(draw):
            raise TypeError(f"draw must be callable, got {type(draw).__name__}")
        if not isinstance(controls, Mapping) or not controls:
            raise ValueError("controls must be a non-empty mapping {argument name: widget}")
        for name, control in controls.items():
            if not isinstance(control, widgets.ValueWidget):
                raise TypeError(f"control {name!r} must be an ipywidgets ValueWidget, got {type(control).__name__}")
        if active is not None and not callable(active):
            raise TypeError(f"active must be callable or None, got {type(active).__name__}")
        self._draw = draw
        self._active = active
        self.controls = dict(controls)
        self.image = widgets.Image(format="png")
        self.figure: Optional[Figure] = None
        super().__init__([widgets.HBox(list(self.controls.values())), self.image])
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.redraw()

    @property
    def values(self) -> dict:
        """The current value of every control, by argument name."""
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, change) -> None:
        self.redraw()

    def redraw(self) -> Figure:
        """Draw with the current values and show the figure in ``image``.

        A figure made with pyplot is closed once rendered, so the inline backend does not show it a second
        time below the explorer.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn.

        Raises
        ------
        KeyError
            If ``active`` names something that is not a control.
        TypeError
            If ``draw`` returns something other than a Figure.
        """
        if self._active is not None:
            for name, enabled in self._active(**self.values).items():
                if name not in self.controls:
                    raise KeyError(f"active returned {name!r}, which is not a control ({', '.join(self.controls)})")
                self.controls[name].disabled = not enabled
        figure = self._draw(**self.values)
        if not isinstance(figure, Figure):
            raise TypeError(f"draw must return a matplotlib Figure, got {type(figure).__name__}")
        self.image.value = _png_bytes(figure)
        plt.close(figure)
        self.figure = figure
        return figure


def _log_slider(description: str, value: float, low: float, high: float) -> widgets.FloatLogSlider:
    if not low <= value <= high:
        raise ValueError(f"{description} must be in [{low}, {high}], got {value}")
    return widgets.FloatLogSlider(value=value, base=10, min=math.log10(low), max=math.log10(high), step=0.05,
                                  description=description, continuous_update=False, readout_format=".3g",
                                  style=CONTROL_STYLE)


def sinkhorn_explorer(
    cost: torch.Tensor,
    a: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    *,
    x: Optional[ArrayLike] = None,
    y: Optional[ArrayLike] = None,
    eps: float = 0.05,
    n_iter: int = 20,
    reg: float = 1.0,
    unbalanced: bool = False,
    max_iter: int = 300,
) -> Explorer:
    """Sliders for ε, the number of Sinkhorn iterations and ρ, redrawing the plan of
    :func:`gcalib.sinkhorn` as a heatmap and, given the clouds, as transport lines.

    One iteration is a row update then a column update. ρ relaxes both marginals when ``unbalanced`` is
    ticked; otherwise the marginals are hard and the ρ slider is disabled. The heatmap's title gives the
    marginal error ``‖P𝟙 − a‖₁ + ‖Pᵀ𝟙 − b‖₁`` (:func:`gcalib.notebook.analysis.marginal_deviation`):
    Sinkhorn's convergence measure for a balanced plan. An unbalanced plan keeps a deviation at its optimum
    on purpose, so in unbalanced mode the title adds the distance to that optimum, the residual of its
    optimality condition (``OTResult.marginal_error``).

    Parameters
    ----------
    cost : torch.Tensor
        The (n, m) cost matrix.
    a, b : torch.Tensor, optional
        Source and target marginals (default uniform).
    x, y : array-like, optional
        The 2-D source and target clouds, both or neither.
    eps : float
        Initial ε, in [0.001, 10].
    n_iter : int
        Initial number of iterations.
    reg : float
        Initial ρ, in [0.001, 1000].
    unbalanced : bool
        Start in unbalanced mode.
    max_iter : int
        Top of the iteration slider.

    Returns
    -------
    Explorer
        The explorer, its first figure drawn.

    Raises
    ------
    ValueError
        If only one of ``x``, ``y`` is given, or ``eps``/``reg`` is outside its slider's range.
    """
    from .analysis import marginal_deviation

    if (x is None) != (y is None):
        raise ValueError("give both x and y (the point clouds) or neither")
    controls = {
        "eps": _log_slider("ε", eps, 1e-3, 10.0),
        "n_iter": widgets.IntSlider(value=n_iter, min=0, max=max_iter, description="iterations", continuous_update=False,
                                    style=CONTROL_STYLE),
        "reg": _log_slider("ρ", reg, 1e-3, 1e3),
        "unbalanced": widgets.Checkbox(value=unbalanced, description="unbalanced", style=CONTROL_STYLE),
    }

    def active(eps: float, n_iter: int, reg: float, unbalanced: bool) -> dict[str, bool]:
        return {"reg": bool(unbalanced)}

    def draw(eps: float, n_iter: int, reg: float, unbalanced: bool) -> Figure:
        rho = reg if unbalanced else math.inf
        result = sinkhorn(cost, eps, a, b, reg_a=rho, reg_b=rho, n_iter=n_iter)
        figure = Figure(figsize=(9.0 if x is not None else 4.5, 3.8))
        axes = figure.subplots(1, 2 if x is not None else 1, squeeze=False).flat
        deviation = marginal_deviation(result.plan, a, b)
        if unbalanced:
            title = (f"unbalanced ρ={reg:.3g}, ε={eps:.3g}, {n_iter} it.\nmarginal error {deviation:.2e} "
                     f"(kept by design)\noptimality residual {result.marginal_error:.2e}")
        else:
            title = f"balanced, ε={eps:.3g}, {n_iter} it.\nmarginal error {deviation:.2e}"
        plot_plan(result.plan, axes[0], title=title)
        if x is not None:
            plot_transport(x, y, result.plan, axes[1], title=f"mass moved {float(result.plan.sum()):.3f}")
        figure.tight_layout()
        return figure

    return Explorer(draw, controls, active)


def loss_plan_explorer(
    views: Sequence[torch.Tensor],
    *,
    names: Sequence[str] = LOSSES,
    name: str = "gca_ince",
    eps: float = 0.5,
    n_iter: int = 10,
    max_iter: int = 100,
) -> Explorer:
    """A loss menu and sliders for ε and ``n_iter`` redrawing the plan the loss scores on ``views``
    (``GCALoss.plan``) and the mass ``Σ_i P_ij`` each column receives (hubs stand out; Sinkhorn levels them).

    Each preset is drawn as its loss computes it: the presets defined by a single row projection
    (``n_iter = 0``: ``infonce``, ``hs_ince``, ``rince``, see :data:`ROW_PROJECTION_PRESETS`) always use
    ``n_iter = 0``, and the ``n_iter`` slider is disabled while one of them is selected.

    Parameters
    ----------
    views : sequence of torch.Tensor
        V >= 2 embeddings (B, D) of the same B samples.
    names : sequence of str
        The presets in the menu.
    name : str
        The preset selected first, one of ``names``.
    eps : float
        Initial ε, in [0.01, 10].
    n_iter : int
        Initial number of Sinkhorn iterations.
    max_iter : int
        Top of the ``n_iter`` slider.

    Returns
    -------
    Explorer
        The explorer, its first figure drawn.

    Raises
    ------
    ValueError
        If ``name`` is not in ``names`` or ``eps`` is outside the slider's range.
    """
    names = list(names)
    check_choice("loss", name, names)
    n_views = len(views)
    controls = {
        "name": widgets.Dropdown(options=names, value=name, description="loss", style=CONTROL_STYLE),
        "eps": _log_slider("ε", eps, 1e-2, 10.0),
        "n_iter": widgets.IntSlider(value=n_iter, min=0, max=max_iter, description="n_iter", continuous_update=False,
                                    style=CONTROL_STYLE),
    }

    def active(name: str, eps: float, n_iter: int) -> dict[str, bool]:
        return {"n_iter": name not in ROW_PROJECTION_PRESETS}

    def draw(name: str, eps: float, n_iter: int) -> Figure:
        fixed = name in ROW_PROJECTION_PRESETS
        iterations = 0 if fixed else n_iter
        plan = make_loss(name, eps=eps, n_iter=iterations).plan(*views)
        figure = Figure(figsize=(9.0, 3.8))
        left, right = figure.subplots(1, 2)
        suffix = " (fixed)" if fixed else ""
        plot_plan(plan, left, title=f"{name}: ε={eps:.3g}, n_iter={iterations}{suffix}", n_views=n_views)
        received = to_numpy(plan.sum(0))
        right.bar(np.arange(received.size), received, color=LOSS_COLORS.get(name, "tab:gray"))
        right.axhline(1.0, color="black", linestyle="--", linewidth=1)
        right.set_xlabel("column j")
        right.set_ylabel("mass received  Σ_i P_ij")
        right.set_title(f"largest column {received.max():.2f}, smallest {received.min():.2f}")
        figure.tight_layout()
        return figure

    return Explorer(draw, controls, active)


def plan_inspector(domains, labels=None, *, n_views: int = 2, kind: str = "domain", alpha: float = 0.2,
                   beta: float = 0.0, max_weight: float = 1.0) -> Explorer:
    """A plan-kind menu and α, β sliders redrawing :func:`gcalib.notebook.figures.plot_target` for a batch
    whose samples have ``domains`` (and optionally ``labels``).

    The plan is :func:`gcalib.notebook.target_design.build_plan`; α and β weight the domain plan only, so
    their sliders are disabled while another kind is selected. The ``"labels"`` kind is offered only with
    ``labels``.

    Parameters
    ----------
    domains : sequence of int
        One domain id per sample.
    labels : sequence of int, optional
        One class id per sample.
    n_views : int
        Number of views V per sample.
    kind : {"positive", "labels", "domain"}
        The plan shown first.
    alpha, beta : float
        Initial weights of same-domain and other-domain pairs, in [0, max_weight].
    max_weight : float
        Top of the α and β sliders, > 0.

    Returns
    -------
    Explorer
        The explorer, its first figure drawn.

    Raises
    ------
    TypeError
        If the ids are not integers.
    ValueError
        If the ids are not 1-d of one length, ``kind`` is unknown or ``"labels"`` without ``labels``, or a
        weight is out of range.
    """
    domains = check_ids("domains", domains)
    if labels is not None:
        labels = check_ids("labels", labels, length=len(domains))
    kinds = [k for k in TARGET_KINDS if k != "labels" or labels is not None]
    if kind == "labels" and labels is None:
        raise ValueError("kind='labels' needs labels= (one class id per sample)")
    check_choice("plan kind", kind, TARGET_KINDS)
    check_positive("max_weight", max_weight)
    for name, value in (("alpha", alpha), ("beta", beta)):
        check_real(name, value, lambda v: 0 <= v <= max_weight, f"a number in [0, max_weight={max_weight}]")
    step = max_weight / 100
    controls = {
        "kind": widgets.Dropdown(options=kinds, value=kind, description="plan", style=CONTROL_STYLE),
        "alpha": widgets.FloatSlider(value=alpha, min=0.0, max=max_weight, step=step, description="α (same domain)",
                                     continuous_update=False, readout_format=".2f", style=CONTROL_STYLE),
        "beta": widgets.FloatSlider(value=beta, min=0.0, max=max_weight, step=step, description="β (other domains)",
                                    continuous_update=False, readout_format=".2f", style=CONTROL_STYLE),
    }

    def active(kind: str, alpha: float, beta: float) -> dict[str, bool]:
        return {"alpha": kind == "domain", "beta": kind == "domain"}

    def draw(kind: str, alpha: float, beta: float) -> Figure:
        target = build_plan(kind, labels=labels, domains=domains, alpha=alpha, beta=beta, n_views=n_views)
        title = f"domain plan, α={alpha:.2f}, β={beta:.2f}" if kind == "domain" else f"{kind} plan"
        return plot_target(target, n_views, domains=domains, labels=labels, title=title,
                           figure=Figure(figsize=(9.0, 3.8)))

    return Explorer(draw, controls, active)
