"""Checks of scalar arguments (ints, reals, bools, names from a list) and of sequences of them, shared by the
whole package.

A failed check raises ``ValueError`` (right type, wrong value) or ``TypeError`` (wrong type) whose message
reads ``"NAME must be EXPECTED, got VALUE"``; a ``TypeError`` also names the type received, as in
``"n_iter must be an int >= 0, got 2.5 (float)"``. A ``bool`` is never accepted as a number.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Collection, NoReturn, Optional, TypeVar

import torch

__all__ = ["fail", "check_int", "check_real", "check_positive", "check_nonnegative", "check_bool", "check_choice",
           "check_sequence", "check_float_tensor"]

T = TypeVar("T")


def fail(name: str, value: Any, expected: str, error: type[Exception] = ValueError) -> NoReturn:
    """Raise ``error("NAME must be EXPECTED, got VALUE")``, with ``VALUE`` as ``repr(value)`` followed by
    ``" (TYPE)"`` when ``error`` is a ``TypeError``."""
    got = f"{value!r} ({type(value).__name__})" if issubclass(error, TypeError) else repr(value)
    raise error(f"{name} must be {expected}, got {got}")


def check_int(name: str, value: Any, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) with ``minimum <= value <= maximum`` (either
    bound may be None). The expectation reads "an int", "an int >= 1", "an int <= 9" or "an int in [1, 9]"."""
    if minimum is not None and maximum is not None:
        expected = f"an int in [{minimum}, {maximum}]"
    elif minimum is not None:
        expected = f"an int >= {minimum}"
    elif maximum is not None:
        expected = f"an int <= {maximum}"
    else:
        expected = "an int"
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, value, expected, TypeError)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        fail(name, value, expected)
    return value


def check_real(name: str, value: Any, ok: Callable[[float], bool] = math.isfinite,
               expected: str = "a finite number") -> float:
    """Return ``float(value)`` if ``value`` is an ``int`` or ``float`` (not a ``bool``; else ``TypeError``),
    not NaN and ``ok(float(value))`` holds (else ``ValueError``). By default: any finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(name, value, expected, TypeError)
    number = float(value)
    if math.isnan(number) or not ok(number):
        fail(name, value, expected)
    return number


def check_positive(name: str, value: Any) -> float:
    """:func:`check_real` for ``0 < value < inf``: "a finite number > 0"."""
    return check_real(name, value, lambda v: 0 < v < math.inf, "a finite number > 0")


def check_nonnegative(name: str, value: Any) -> float:
    """:func:`check_real` for ``0 <= value < inf``: "a finite number >= 0"."""
    return check_real(name, value, lambda v: 0 <= v < math.inf, "a finite number >= 0")


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool`` (``TypeError`` otherwise, also for 0 and 1)."""
    if not isinstance(value, bool):
        fail(name, value, "a bool", TypeError)
    return value


def check_choice(name: str, value: Any, valid: Collection) -> Any:
    """Return ``value`` if it is one of ``valid``, else ``ValueError("unknown NAME 'x'; valid: a, b, c")``."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(str, valid))}")
    return value


def check_sequence(name: str, values: Any, check: Callable[[str, Any], T]) -> list[T]:
    """``[check("NAME[i]", v) for each entry v]`` of a non-empty sequence (a list, tuple, …, but not a
    str): ``TypeError`` for anything else, ``ValueError`` when empty; entries fail as ``check`` says."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        fail(name, values, "a non-empty sequence", TypeError)
    values = list(values)
    if not values:
        fail(name, values, "a non-empty sequence")
    return [check(f"{name}[{index}]", value) for index, value in enumerate(values)]


def check_float_tensor(name: str, value: Any) -> torch.Tensor:
    """Return ``value`` if it is a floating-point ``torch.Tensor`` (``TypeError`` otherwise); shapes are the
    caller's to check."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}; use .float()")
    return value
