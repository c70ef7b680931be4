"""Argument checks shared by the schedules, compat and the LR range test.

Each raises ``ValueError`` naming the parameter and its value, and the bound it broke.
"""

from __future__ import annotations

import math
import numbers


def check_lr(name: str, value: float, positive: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} must be a finite number {bound}")


def check_steps(name: str, value: int, positive: bool = False) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be an int")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name}={value!r} must be {'>= 1' if positive else '>= 0'}")


def check_order(small: str, small_value: int, big: str, big_value: int) -> None:
    if small_value > big_value:
        raise ValueError(f"{small}={small_value} must be <= {big}={big_value}")


def check_real(name, value, lo, hi, lo_open=False) -> float:
    """A finite real (not a bool) in [lo, hi], or (lo, hi] with ``lo_open``; returns a float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lo or value > hi or (lo_open and value == lo):
        interval = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise ValueError(f"{name}={value!r} must be a finite number in {interval}")
    return float(value)


def check_int(name, value, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an int >= {minimum}")
    return int(value)


def check_bool(name, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be a bool")
