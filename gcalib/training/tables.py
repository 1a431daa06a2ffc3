"""Mean ± sample standard deviation over seeds, and the plain-text and Markdown tables that show them."""
from __future__ import annotations

import math
from typing import Optional, Sequence

__all__ = ["markdown_table", "mean_std", "mean_std_text", "plus_minus", "text_table"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation ``sqrt(Σ (v − mean)² / (n − 1))`` of ``values``.

    Parameters
    ----------
    values : sequence of float
        One value per seed, at least one.

    Returns
    -------
    mean : float
    std : float
        The sample standard deviation; 0 for a single value.

    Raises
    ------
    ValueError
        When ``values`` is empty.

    Examples
    --------
    >>> mean_std([0.5, 0.7])
    (0.6, 0.14142135623730948)
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std needs at least one value, got none")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def plus_minus(mean: float, std: float) -> str:
    """``"mean ± std"`` with three decimals.

    Parameters
    ----------
    mean, std : float

    Returns
    -------
    str

    Examples
    --------
    >>> plus_minus(0.6, 0.1414)
    '0.600 ± 0.141'
    """
    return f"{mean:.3f} ± {std:.3f}"


def mean_std_text(values: Sequence[Optional[float]]) -> str:
    """The values that are not None or NaN as ``"mean ± sample std"`` (:func:`plus_minus`).

    Parameters
    ----------
    values : sequence of float or None
        One value per seed; None and NaN (a metric a run did not report) are left out.

    Returns
    -------
    str
        ``"mean ± std"``, the mean alone (three decimals) for one value, ``"-"`` for none.

    Examples
    --------
    >>> mean_std_text([0.5, 0.7, None])
    '0.600 ± 0.141'
    >>> mean_std_text([0.9]), mean_std_text([float("nan")])
    ('0.900', '-')
    """
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean:.3f}" if len(values) == 1 else plus_minus(mean, std)


def text_table(rows: Sequence[Sequence[str]], align: str = "left") -> str:
    """A plain-text table: columns padded to their widest cell, two spaces apart, a rule under the header.

    Parameters
    ----------
    rows : sequence of sequence of str
        The header row, then the body rows, all of the same length.
    align : {"left", "right"}, default "left"
        How cells are padded to their column's width.

    Returns
    -------
    str
        The lines of the table joined by newlines.

    Raises
    ------
    ValueError
        When ``align`` is neither ``"left"`` nor ``"right"``, or the rows differ in length.

    Examples
    --------
    >>> print(text_table([["method", "seeds"], ["infonce", "3"]], align="right"))
     method  seeds
    -------  -----
    infonce      3
    """
    if align not in ("left", "right"):
        raise ValueError(f"align must be 'left' or 'right', got {align!r}")
    if len({len(row) for row in rows}) > 1:
        raise ValueError(f"every row of a table needs the same number of cells, got lengths {[len(r) for r in rows]}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    pad = str.ljust if align == "left" else str.rjust
    lines = ["  ".join(pad(cell, width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown (GitHub) table.

    Parameters
    ----------
    header : sequence of str
        The column titles.
    rows : sequence of sequence of str
        The body rows, each as long as ``header``.

    Returns
    -------
    str
        The lines of the table joined by newlines.

    Examples
    --------
    >>> print(markdown_table(["method", "clean"], [["infonce", "0.600"]]))
    | method | clean |
    |---|---|
    | infonce | 0.600 |
    """
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
