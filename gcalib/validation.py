"""Checks of arguments shared by the whole package: scalars (ints, reals, bools, names from a list), sequences
of them, floating tensors and tensors of integer ids.

A failed check raises ``ValueError`` (right type, wrong value) or ``TypeError`` (wrong type) whose message
reads ``"NAME must be EXPECTED, got VALUE"``; a ``TypeError`` also names the type received, as in
``"n_iter must be an int >= 0, got 2.5 (float)"``. A ``bool`` is never accepted as a number.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Collection, NoReturn, Optional, TypeVar

import torch

__all__ = ["fail", "check_int", "check_real", "check_positive", "check_nonnegative", "check_bool", "check_choice",
           "check_sequence", "check_float_tensor", "check_ids"]

T = TypeVar("T")


def fail(name: str, value: Any, expected: str, error: type[Exception] = ValueError) -> NoReturn:
    """Raise ``error("NAME must be EXPECTED, got VALUE")``.

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        The value received, shown as ``repr(value)``, followed by ``" (TYPE)"`` for a ``TypeError``.
    expected : str
        What the argument must be, e.g. ``"an int >= 1"``.
    error : type of Exception
        The exception class (default ``ValueError``).

    Raises
    ------
    Exception
        Always, of class ``error``.
    """
    got = f"{value!r} ({type(value).__name__})" if issubclass(error, TypeError) else repr(value)
    raise error(f"{name} must be {expected}, got {got}")


def check_int(name: str, value: Any, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """Check that ``value`` is an ``int`` (not a ``bool``) with ``minimum <= value <= maximum``.

    The expectation reads "an int", "an int >= 1", "an int <= 9" or "an int in [1, 9]".

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        The value to check.
    minimum, maximum : int or None
        Inclusive bounds; ``None`` for none.

    Returns
    -------
    int
        ``value``.

    Raises
    ------
    TypeError
        When ``value`` is not an int.
    ValueError
        When it is out of bounds.
    """
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
    """Check that ``value`` is an ``int`` or ``float`` (not a ``bool``), not NaN, with ``ok(value)``.

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        The value to check.
    ok : callable
        The condition on ``float(value)`` (default: finite).
    expected : str
        What the message says the value must be.

    Returns
    -------
    float
        ``float(value)``.

    Raises
    ------
    TypeError
        When ``value`` is not a number.
    ValueError
        When it is NaN or ``ok`` fails.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(name, value, expected, TypeError)
    number = float(value)
    if math.isnan(number) or not ok(number):
        fail(name, value, expected)
    return number


def check_positive(name: str, value: Any) -> float:
    """:func:`check_real` for ``0 < value < inf``: "a finite number > 0".

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        The value to check.

    Returns
    -------
    float
        ``float(value)``.

    Raises
    ------
    TypeError
        When ``value`` is not a number.
    ValueError
        When it is not finite and positive.
    """
    return check_real(name, value, lambda v: 0 < v < math.inf, "a finite number > 0")


def check_nonnegative(name: str, value: Any) -> float:
    """:func:`check_real` for ``0 <= value < inf``: "a finite number >= 0".

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        The value to check.

    Returns
    -------
    float
        ``float(value)``.

    Raises
    ------
    TypeError
        When ``value`` is not a number.
    ValueError
        When it is negative or not finite.
    """
    return check_real(name, value, lambda v: 0 <= v < math.inf, "a finite number >= 0")


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a ``bool`` (0 and 1 are not).

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        The value to check.

    Returns
    -------
    bool
        ``value``.

    Raises
    ------
    TypeError
        When ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        fail(name, value, "a bool", TypeError)
    return value


def check_choice(name: str, value: Any, valid: Collection) -> Any:
    """Check that ``value`` is one of ``valid``.

    Parameters
    ----------
    name : str
        What is chosen, for the message ``"unknown NAME 'x'; valid: a, b, c"``.
    value : Any
        The value to check.
    valid : collection
        The accepted values.

    Returns
    -------
    Any
        ``value``.

    Raises
    ------
    ValueError
        When ``value`` is not in ``valid``.
    """
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(str, valid))}")
    return value


def check_sequence(name: str, values: Any, check: Callable[[str, Any], T]) -> list[T]:
    """Check every entry of a non-empty sequence (a list, tuple, …, but not a str).

    Parameters
    ----------
    name : str
        The argument's name; entry ``i`` is checked as ``"NAME[i]"``.
    values : Any
        The sequence.
    check : callable
        ``check(name, value)`` for one entry, returning the checked value.

    Returns
    -------
    list
        The checked entries.

    Raises
    ------
    TypeError
        When ``values`` is not a sequence, or as ``check`` raises.
    ValueError
        When it is empty, or as ``check`` raises.
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        fail(name, values, "a non-empty sequence", TypeError)
    values = list(values)
    if not values:
        fail(name, values, "a non-empty sequence")
    return [check(f"{name}[{index}]", value) for index, value in enumerate(values)]


def check_float_tensor(name: str, value: Any) -> torch.Tensor:
    """Check that ``value`` is a floating-point ``torch.Tensor``; shapes are the caller's to check.

    Parameters
    ----------
    name : str
        The argument's name.
    value : Any
        The value to check.

    Returns
    -------
    torch.Tensor
        ``value``.

    Raises
    ------
    TypeError
        When ``value`` is not a tensor, or not of a floating dtype.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}; use .float()")
    return value


def check_ids(name: str, ids: Any, *, what: str = "one id per sample", length: Optional[int] = None,
              min_length: int = 1, nonnegative: bool = False) -> torch.Tensor:
    """Check a one-dimensional collection of integer ids (class labels, domain ids, row indices).

    One policy for every caller: a dtype that is not an integer (float, complex, bool) is a ``TypeError``
    that names the dtype and says to pass integer ids; a wrong shape, length or a negative id is a
    ``ValueError``.

    Parameters
    ----------
    name : str
        The argument's name.
    ids : Any
        A tensor, or anything ``torch.as_tensor`` accepts (a list, a numpy array).
    what : str
        What the ids are, for the messages (default ``"one id per sample"``).
    length : int or None
        The required number of ids; ``None`` for any.
    min_length : int
        The fewest ids accepted (default 1).
    nonnegative : bool
        Reject negative ids.

    Returns
    -------
    torch.Tensor
        ``ids`` as a tensor (the same object when it already is one).

    Raises
    ------
    TypeError
        When ``ids`` cannot be made a tensor, or its dtype is not an integer dtype.
    ValueError
        When it is not one-dimensional, has the wrong length or too few ids, or holds a negative id while
        ``nonnegative``.

    Examples
    --------
    >>> import torch
    >>> check_ids("labels", [0, 2, 1]).tolist()
    [0, 2, 1]
    >>> check_ids("labels", torch.tensor([0.0, 1.0]))
    Traceback (most recent call last):
    ...
    TypeError: labels must be an integer tensor (one id per sample), got dtype torch.float32; pass integer ids, e.g. labels.long()
    """
    if not isinstance(ids, torch.Tensor):
        try:
            ids = torch.as_tensor(ids)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be an integer tensor ({what}), got {type(ids).__name__}") from None
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor ({what}), got dtype {ids.dtype}; pass integer ids, "
                        f"e.g. {name}.long()")
    if ids.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional ({what}), got shape {tuple(ids.shape)}")
    if length is not None and ids.numel() != length:
        raise ValueError(f"{name} must hold {what} ({length}), got {ids.numel()}")
    if ids.numel() < min_length:
        raise ValueError(f"{name} must hold at least {min_length} {'id' if min_length == 1 else 'ids'} ({what}), "
                         f"got {ids.numel()}")
    if nonnegative and ids.numel() and int(ids.min()) < 0:
        raise ValueError(f"{name} must hold non-negative ids ({what}), got minimum {int(ids.min())}")
    return ids
