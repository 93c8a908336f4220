"""The one rule for integer arguments, shared by every module that takes one.

It stands alone (imports nothing from the package), so that the modules below the
argument layer (stats' ``ftok()``, the wake-up signal) follow it as well.
"""

import operator
from typing import Any

INT_MAX = (1 << 31) - 1
INT_MIN = -(1 << 31)


def type_name(value: object) -> str:
    return type(value).__name__


def check_int(name: str, value: Any, low: int, high: int, c_low: int = INT_MIN, c_high: int = INT_MAX) -> int:
    """`value` as an int in low..high, by one rule for every argument of every call.

    Integers are what ``operator.index`` takes (int, bool, numpy integers), never a
    float or a Decimal. OverflowError for a value the C type (c_low..c_high) cannot
    hold, ValueError for one it can hold that is out of the meaningful range.
    """
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type_name(value)}") from None
    if type(number) is not int:
        # PyPy's operator.index returns a bool or another int subclass as it is, whose
        # comparisons may lie; int.__add__ reads its value alone (int() would ask __int__).
        number = int.__add__(number, 0)
    if not low <= number <= high:
        kind = ValueError if c_low <= number <= c_high else OverflowError
        raise kind(f"{name} must be in {low}..{high}, not {number}")
    return number
