"""The phase table: a schedule as data, and its host and torch evaluators.

A schedule compiles to a float64 tensor of shape ``(rows, COLUMNS)``, one row per phase. This
module is the one place that defines the encoding; the Triton device function in
``fused_sched.kernels.schedule`` reads the same columns and does the same arithmetic.

Columns of a row (all float64):

=======  ===========================================================================
BEGIN    the update index k at which the row becomes active; the active row for k is
         the last row with ``BEGIN <= k`` (rows are sorted by BEGIN; the first row is
         also used for any k before it). Padding rows have BEGIN = +inf.
ORIGIN   where the row's own time starts: ``t = k - ORIGIN``.
SPAN     the row's length, > 0: ``q = clamp(t / SPAN, 0, 1)``. Native schedules store
         ``max(1, length)``, so a degenerate length never divides by zero.
A, B     the values at q = 0 and q = 1.
SHAPE    one of :class:`Shape`.
P, M     shape parameters (see :class:`Shape`).
=======  ===========================================================================

Because q is clamped, every row holds its end value past its end: a schedule never raises,
never extrapolates and never rises again unless a later row says so. Steps are float64, exact
for every count below 2**53.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import torch

COLUMNS = 8
BEGIN, ORIGIN, SPAN, A, B, SHAPE, P, M = range(COLUMNS)
MIN_ROWS = 8
RESTART_SLACK = 1e-12


class Shape(IntEnum):
    """How a row goes from A (q = 0) to B (q = 1).

    CONSTANT  ``A``
    POLY      ``B + (A - B) * (1 - q) ** P``   (P = 1 is linear)
    COSINE    ``B + (A - B) * (1 + cos(pi * P * q)) / 2``   (P = 1 is a half cosine)
    ROOT      ``B + (A - B) * (1 - q ** P)``   (P = 0.5 is the "1 - sqrt" decay)
    EXP       ``A ** (1 - q) * B ** q``   (geometric, A and B > 0)
    INV_SQRT  ``A * sqrt(P / (P + max(t, 0)))``   (P > 0; unbounded in t, B unused)
    RESTARTS  cosine from A to B in cycles: the first lasts SPAN, each next M times the one
              before (M >= 1); within a cycle of length L at position u,
              ``B + (A - B) * (1 + cos(pi * min(u / D, 1))) / 2`` with D = L when P = 0
              (the cycle ends one step short of B, as torch does) and D = max(L - 1, 1)
              when P = 1 (the last step of each cycle lands on B). Cycle starts are computed
              in floating point; one within ``RESTART_SLACK * t`` after t counts as reached at
              t (when M != 1), so every evaluator restarts on the same update even where the
              rounding of M (e.g. 1.2) moves a whole-number start by an ulp.
    """

    CONSTANT = 0
    POLY = 1
    COSINE = 2
    ROOT = 3
    EXP = 4
    INV_SQRT = 5
    RESTARTS = 6


@dataclass(frozen=True)
class Phase:
    """One row of the table; see the module docstring for the meaning of each field."""

    begin: float
    origin: float
    span: float
    a: float
    b: float
    shape: Shape
    p: float = 1.0
    m: float = 1.0

    def __post_init__(self):
        if not self.span > 0:
            raise ValueError(f"phase span must be > 0, got {self.span=}")
        if self.shape == Shape.EXP and not (self.a > 0 and self.b > 0):
            raise ValueError(f"an EXP phase needs A > 0 and B > 0, got {self.a=}, {self.b=}")
        if self.shape == Shape.INV_SQRT and not self.p > 0:
            raise ValueError(f"an INV_SQRT phase needs P > 0, got {self.p=}")
        if self.shape == Shape.RESTARTS and not self.m >= 1:
            raise ValueError(f"a RESTARTS phase needs M >= 1, got {self.m=}")

    def shifted(self, offset: float, first_begin: float | None = None) -> Phase:
        """The same phase on a time axis moved by ``offset``, its BEGIN at least first_begin."""
        begin = self.begin + offset
        if first_begin is not None:
            begin = max(begin, first_begin)
        return Phase(begin, self.origin + offset, self.span, self.a, self.b, self.shape,
                     self.p, self.m)  # fmt: skip

    def value(self, k: float) -> float:
        """This phase's value at update index k, in Python floats (float64)."""
        t = k - self.origin
        q = min(max(t / self.span, 0.0), 1.0)
        a, b, p = self.a, self.b, self.p
        if self.shape == Shape.CONSTANT:
            return a
        if self.shape == Shape.POLY:
            return b + (a - b) * (1.0 - q) ** p
        if self.shape == Shape.COSINE:
            return b + (a - b) * (1.0 + math.cos(math.pi * p * q)) / 2.0
        if self.shape == Shape.ROOT:
            return b + (a - b) * (1.0 - q**p)
        if self.shape == Shape.EXP:
            return a ** (1.0 - q) * b**q
        if self.shape == Shape.INV_SQRT:
            return a * math.sqrt(p / (p + max(t, 0.0)))
        u = _cycle_fraction(max(t, 0.0), self.span, self.m, self.p)
        return b + (a - b) * (1.0 + math.cos(math.pi * u)) / 2.0


def _cycle_fraction(t: float, first: float, mult: float, land_on_b: float) -> float:
    """Position in the current restart cycle, in [0, 1], by closed form (no recursion)."""
    if mult == 1.0:
        n = math.floor(t / first)
    else:
        n = math.floor(math.log1p(t * (mult - 1.0) / first) / math.log(mult))
    start, length = _cycle(n, first, mult)
    # log() may land one cycle off at a boundary; one correction each way is enough. The slack
    # makes a start that rounding put an ulp after t count as reached (see Shape.RESTARTS).
    slack = 0.0 if mult == 1.0 else RESTART_SLACK * t
    if t - start >= length - slack:
        start, length = _cycle(n + 1, first, mult)
    elif t < start - slack:
        start, length = _cycle(n - 1, first, mult)
    divisor = max(length - 1.0, 1.0) if land_on_b > 0 else length
    return min(max(t - start, 0.0) / divisor, 1.0)


def _cycle(n: int, first: float, mult: float) -> tuple[float, float]:
    if mult == 1.0:
        return n * first, first
    # expm1 keeps mult**n - 1 accurate where mult is near 1 and the subtraction would cancel.
    return first * math.expm1(n * math.log(mult)) / (mult - 1.0), first * mult**n


def phase_index(phases: tuple[Phase, ...], k: float) -> int:
    """The active row for update index k: the last with BEGIN <= k, or the first."""
    index = 0
    for i, phase in enumerate(phases):
        if phase.begin <= k:
            index = i
    return index


def host_value(phases: tuple[Phase, ...], k: float) -> float:
    """Evaluate a phase list on the host; the reference the other evaluators must match."""
    return phases[phase_index(phases, k)].value(float(k))


def shapes_of(phases: Iterable[Phase]) -> tuple[Shape, ...]:
    """The distinct shapes of some phases, for ``evaluate(..., shapes=...)``."""
    return tuple(sorted({phase.shape for phase in phases}))


def rows_for(n_phases: int) -> int:
    """Rows a table of n phases is padded to: a power of two, at least MIN_ROWS.

    Kernels specialise on the row count only, so a schedule's numbers, and its number of
    phases within one power of two, never cause a recompilation.
    """
    return max(MIN_ROWS, 1 << max(0, n_phases - 1).bit_length())


def to_table(phases: tuple[Phase, ...], rows: int | None = None, device=None) -> torch.Tensor:
    """Encode phases as a float64 ``(rows, COLUMNS)`` tensor, padded with BEGIN = +inf."""
    if not phases:
        raise ValueError("a schedule needs at least one phase")
    begins = [phase.begin for phase in phases]
    if begins != sorted(begins):
        raise ValueError(f"phases must be sorted by begin, got {begins}")
    rows = rows_for(len(phases)) if rows is None else rows
    if rows < len(phases):
        raise ValueError(f"{rows=} is smaller than the number of phases ({len(phases)})")
    table = torch.zeros(rows, COLUMNS, dtype=torch.float64)
    table[:, BEGIN] = math.inf
    table[:, SPAN] = 1.0
    table[:, M] = 1.0
    for i, ph in enumerate(phases):
        table[i] = torch.tensor(
            [ph.begin, ph.origin, ph.span, ph.a, ph.b, float(ph.shape), ph.p, ph.m],
            dtype=torch.float64,
        )
    return table.to(device) if device is not None else table


def evaluate(
    table: torch.Tensor, step: torch.Tensor | int, shapes: Iterable[int] | None = None
) -> torch.Tensor:
    """The lr at update index ``step`` from a phase table, in torch ops.

    Args:
        table: float64 ``(..., rows, COLUMNS)`` phase table(s), from ``Schedule.table()``
            (stack several to evaluate several schedules at once).
        step: the update index k (int, or an integer tensor on the table's device; update k
            is the k-th call of ``step()``, k = 0 means before any), broadcastable against the
            table's leading dimensions.
        shapes: the :class:`Shape` ids that occur in the table (``shapes_of(phases)``); only
            these formulas are computed, which saves time on a CPU. None computes all.

    Returns:
        float64, of the broadcast shape of ``step`` and the table's leading dimensions (0-dim
        for one table and a scalar step), on the table's device. No host synchronisation, no
        data-dependent control flow: safe in CUDA-graph capture and
        ``torch.compile(fullgraph=True)``.
    """
    k = torch.as_tensor(step, device=table.device).to(torch.float64).unsqueeze(-1)
    # Every row at k at once (a row is as cheap as a scalar), then keep the active one: the
    # last whose BEGIN <= k (rows sorted, padding at +inf), else the first.
    begin, origin, span, a, b, shape, p, m = table.unbind(-1)
    index = ((begin <= k).sum(-1, keepdim=True) - 1).clamp(min=0)

    t = k - origin
    q = (t / span).clamp(0.0, 1.0)
    # Each formula is B + (A - B) * w = lerp(B, A, w), exact at w = 0 and w = 1.
    formulas = {
        Shape.CONSTANT: lambda: a,
        Shape.POLY: lambda: torch.lerp(b, a, (1.0 - q) ** p),
        Shape.COSINE: lambda: torch.lerp(b, a, _half_cos(p * q)),
        Shape.ROOT: lambda: torch.lerp(b, a, 1.0 - q**p),
        Shape.EXP: lambda: a.abs() ** (1.0 - q) * b.abs() ** q,
        Shape.INV_SQRT: lambda: (
            a * torch.sqrt(p.abs() / (p.abs() + t.clamp(min=0.0)).clamp(min=1e-300))
        ),
        Shape.RESTARTS: lambda: torch.lerp(
            b, a, _half_cos(_cycle_fraction_torch(t.clamp(min=0.0), span, m, p))
        ),
    }
    present = sorted(formulas if shapes is None else set(shapes))
    rows = formulas[present[-1]]()
    for shape_id in reversed(present[:-1]):
        rows = torch.where(shape == int(shape_id), formulas[shape_id](), rows)
    rows = rows.expand(*index.shape[:-1], rows.shape[-1])
    return rows.gather(-1, index).squeeze(-1)


def _half_cos(u: torch.Tensor) -> torch.Tensor:
    return (1.0 + torch.cos(math.pi * u)) / 2.0


def _cycle_fraction_torch(t, first, mult, land_on_b):
    """``_cycle_fraction`` in torch ops, both branches computed and selected."""
    geometric = mult != 1.0
    safe_mult = torch.where(geometric, mult, 2.0)
    n_geo = torch.floor(torch.log1p(t * (safe_mult - 1.0) / first) / torch.log(safe_mult))
    n = torch.where(geometric, n_geo, torch.floor(t / first))

    def cycle(n):
        exponent = torch.where(geometric, n, 0.0)
        growth = safe_mult**exponent
        grown = torch.expm1(exponent * torch.log(safe_mult))  # growth - 1, without cancellation
        start = torch.where(geometric, first * grown / (safe_mult - 1.0), n * first)
        length = torch.where(geometric, first * growth, first)
        return start, length

    start, length = cycle(n)
    slack = torch.where(geometric, RESTART_SLACK * t, 0.0)
    n = torch.where(t - start >= length - slack, n + 1, torch.where(t < start - slack, n - 1, n))
    start, length = cycle(n)
    divisor = torch.where(land_on_b > 0, (length - 1.0).clamp(min=1.0), length)
    return ((t - start).clamp(min=0.0) / divisor).clamp(max=1.0)
