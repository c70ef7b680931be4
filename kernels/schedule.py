"""The phase table's Triton evaluator: a device function the update kernels inline.

The encoding and the reference arithmetic live in ``fused_sched.table``; this file repeats the
same arithmetic in float64 on the device, so the three evaluators agree to rounding.
"""

import math

import triton
import triton.language as tl

from fused_sched import table as _table

_COLUMNS = tl.constexpr(_table.COLUMNS)
_BEGIN = tl.constexpr(_table.BEGIN)
_ORIGIN = tl.constexpr(_table.ORIGIN)
_SPAN = tl.constexpr(_table.SPAN)
_A = tl.constexpr(_table.A)
_B = tl.constexpr(_table.B)
_SHAPE = tl.constexpr(_table.SHAPE)
_P = tl.constexpr(_table.P)
_M = tl.constexpr(_table.M)
_PI = tl.constexpr(math.pi)
_CONSTANT = tl.constexpr(float(_table.Shape.CONSTANT))
_POLY = tl.constexpr(float(_table.Shape.POLY))
_COSINE = tl.constexpr(float(_table.Shape.COSINE))
_ROOT = tl.constexpr(float(_table.Shape.ROOT))
_EXP = tl.constexpr(float(_table.Shape.EXP))
_INV_SQRT = tl.constexpr(float(_table.Shape.INV_SQRT))
_RESTART_SLACK = tl.constexpr(_table.RESTART_SLACK)


@triton.jit
def _pow(x, y):
    # x >= 0 here; exp(y * log(x)) alone would turn 0 ** 0 into NaN.
    safe = tl.where(x > 0, x, 1.0)
    return tl.where(x > 0, tl.exp(y * tl.log(safe)), tl.where(y == 0, 1.0, 0.0))


@triton.jit
def _cospi(u):
    # cos(pi * u) by exact reduction and two short series: tl.cos on float64 brings libdevice's
    # reduction for huge arguments, a 40-byte stack frame in every kernel that inlines this.
    a = tl.abs(u - 2.0 * tl.floor(0.5 * u + 0.5))  # period 2, even: a in [0, 1]
    sign = tl.where(a > 0.5, -1.0, 1.0)  # cos(pi a) = -cos(pi (1 - a))
    a = tl.where(a > 0.5, 1.0 - a, a)  # [0, 0.5], exact
    use_sin = a > 0.25  # cos(pi a) = sin(pi (0.5 - a)), exact argument
    x = tl.where(use_sin, 0.5 - a, a) * _PI  # [0, pi / 4]
    x2 = x * x
    # Taylor series to x**16 and x**17: truncation below 1e-17 on [0, pi / 4].
    c = tl.full((), 1.0 / 20922789888000.0, tl.float64)  # a bare literal would be fp32
    c = 1.0 / 87178291200.0 - x2 * c
    c = 1.0 / 479001600.0 - x2 * c
    c = 1.0 / 3628800.0 - x2 * c
    c = 1.0 / 40320.0 - x2 * c
    c = 1.0 / 720.0 - x2 * c
    c = 1.0 / 24.0 - x2 * c
    c = 0.5 - x2 * c
    c = 1.0 - x2 * c
    s = tl.full((), 1.0 / 355687428096000.0, tl.float64)
    s = 1.0 / 1307674368000.0 - x2 * s
    s = 1.0 / 6227020800.0 - x2 * s
    s = 1.0 / 39916800.0 - x2 * s
    s = 1.0 / 362880.0 - x2 * s
    s = 1.0 / 5040.0 - x2 * s
    s = 1.0 / 120.0 - x2 * s
    s = 1.0 / 6.0 - x2 * s
    s = x * (1.0 - x2 * s)
    return sign * tl.where(use_sin, s, c)


@triton.jit
def _half_cos(u):
    return (1.0 + _cospi(u)) * 0.5


@triton.jit
def _expm1(x):
    # exp(x) - 1 without the cancellation near x = 0 (Kahan's formula; tl has no expm1).
    u = tl.exp(x)
    safe = tl.where(u == 1.0, 2.0, u)
    return tl.where(u == 1.0, x, (safe - 1.0) * x / tl.log(safe))


@triton.jit
def _cycle(n, first, mult, geometric):
    # Start and length of restart cycle n; mult is 2 where the cycles do not grow.
    exponent = tl.where(geometric, n, 0.0)
    growth = _pow(mult, exponent)
    grown = _expm1(exponent * tl.log(mult))  # growth - 1, accurate where mult is near 1
    start = tl.where(geometric, first * grown / (mult - 1.0), n * first)
    length = tl.where(geometric, first * growth, first)
    return start, length


@triton.jit
def _cycle_fraction(t, first, mult, land_on_b):
    # Closed form of the restart position, so a resumed or replayed step needs no history.
    geometric = mult != 1.0
    mult = tl.where(geometric, mult, 2.0)
    n_geo = tl.floor(tl.log(1.0 + t * (mult - 1.0) / first) / tl.log(mult))
    n = tl.where(geometric, n_geo, tl.floor(t / first))
    start, length = _cycle(n, first, mult, geometric)

    # log() may land one cycle off at a boundary; one correction each way is enough. The slack
    # makes a start that rounding put an ulp after t count as reached, as on the host.
    slack = tl.where(geometric, _RESTART_SLACK * t, 0.0)
    n = tl.where(t - start >= length - slack, n + 1.0, tl.where(t < start - slack, n - 1.0, n))
    start, length = _cycle(n, first, mult, geometric)
    divisor = tl.where(land_on_b > 0, tl.maximum(length - 1.0, 1.0), length)
    return tl.minimum(tl.maximum(t - start, 0.0) / divisor, 1.0)


@triton.jit
def schedule_lr(
    table_ptr,
    step,
    ROWS: tl.constexpr,
):
    """The lr (float64 scalar) of update index ``step`` (an integer scalar) from a phase table.

    ``table_ptr`` points at a float64 ``(ROWS, COLUMNS)`` table laid out as in
    ``fused_sched.table``; padding rows have BEGIN = +inf.
    """
    k = step.to(tl.float64)

    # Active row: the last whose BEGIN <= k (rows are sorted), else the first.
    begins = tl.load(table_ptr + tl.arange(0, ROWS) * _COLUMNS + _BEGIN)
    index = tl.maximum(tl.sum((begins <= k).to(tl.int32), axis=0) - 1, 0)
    row_ptr = table_ptr + index * _COLUMNS
    origin = tl.load(row_ptr + _ORIGIN)
    span = tl.load(row_ptr + _SPAN)
    a = tl.load(row_ptr + _A)
    b = tl.load(row_ptr + _B)
    shape = tl.load(row_ptr + _SHAPE)
    p = tl.load(row_ptr + _P)
    m = tl.load(row_ptr + _M)

    # Every shape from the same q (clamped: rows hold their end value), then select one. A
    # branch per shape would skip the others' float64 work, but its divergent float64 division
    # makes ptxas add a stack frame; selecting keeps every kernel free of stack and local memory.
    t = k - origin
    t0 = tl.maximum(t, 0.0)
    q = tl.minimum(tl.maximum(t / span, 0.0), 1.0)
    poly = b + (a - b) * _pow(1.0 - q, p)
    cosine = b + (a - b) * _half_cos(p * q)
    root = b + (a - b) * (1.0 - _pow(q, p))
    geometric = _pow(tl.abs(a), 1.0 - q) * _pow(tl.abs(b), q)
    inv_sqrt = a * tl.sqrt(tl.abs(p) / tl.maximum(tl.abs(p) + t0, 1e-300))
    restarts = b + (a - b) * _half_cos(_cycle_fraction(t0, span, m, p))

    lr = tl.where(shape == _INV_SQRT, inv_sqrt, restarts)
    lr = tl.where(shape == _EXP, geometric, lr)
    lr = tl.where(shape == _ROOT, root, lr)
    lr = tl.where(shape == _COSINE, cosine, lr)
    lr = tl.where(shape == _POLY, poly, lr)
    return tl.where(shape == _CONSTANT, a, lr)


@triton.jit
def schedule_lr_kernel(
    table_ptr,
    steps_ptr,
    out_ptr,
    ROWS: tl.constexpr,
):
    """Evaluate a phase table at one int64 step per program (for tests and plots)."""
    pid = tl.program_id(0)
    step = tl.load(steps_ptr + pid)
    tl.store(out_ptr + pid, schedule_lr(table_ptr, step, ROWS))
