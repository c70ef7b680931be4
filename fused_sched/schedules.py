"""Learning-rate schedules as pure, closed-form functions of the update index.

Step convention (shared by every schedule, evaluator and backend): update k is the k-th call
of ``optimizer.step()``, k = 1, 2, ...; it uses ``lr_at(k)``. ``lr_at(0)`` is the value before
any update (for plots). Past its end a schedule holds its final value; nothing raises.

Every schedule has two forms that must agree: ``lr_at`` below, written as the formula in
float64 (the readable specification), and ``phases()``, its compilation to the phase table that
``fused_sched.evaluate`` and the Triton kernels read (see ``fused_sched.table``).

With ``lin(a, b, q) = a + (b - a) * q`` and ``cos(a, b, q) = b + (a - b) * (1 + cos(pi q)) / 2``
for q in [0, 1], and every phase dividing by ``max(1, length)`` so that degenerate lengths
(a warmup of 0 steps, a decay of 0 steps) are well defined.

Schedules that warm up to a peak and then decay start the decay at ``P = max(1, W)``: update W
uses the peak, and with no warmup (W = 0) update 1 already does; the first update is never
spent at a value the schedule never meant to apply.


>>> from fused_sched import WarmupCosine
>>> s = WarmupCosine(max_lr=1e-3, warmup_steps=4, total_steps=10, min_lr=1e-5)
>>> [round(s.lr_at(k), 10) for k in (1, 4, 10, 11)]
[0.00025, 0.001, 1e-05, 1e-05]
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from fused_sched.table import RESTART_SLACK, Phase, Shape, host_value, to_table
from fused_sched.validation import check_lr, check_order, check_steps

__all__ = [
    "Schedule",
    "Constant",
    "Warmup",
    "WarmupCosine",
    "OneCycle",
    "WarmupStableDecay",
    "InverseSqrt",
    "Polynomial",
    "ExponentialRamp",
    "CosineRestarts",
    "Sequence",
    "PhaseSchedule",
]


def lin(a: float, b: float, q: float) -> float:
    """Linear interpolation from a (q = 0) to b (q = 1)."""
    return a + (b - a) * q


def cos(a: float, b: float, q: float) -> float:
    """Half-cosine interpolation from a (q = 0) to b (q = 1)."""
    return b + (a - b) * (1.0 + math.cos(math.pi * q)) / 2.0


def _frac(steps_in: float, length: int) -> float:
    """Progress through a phase, clamped to [0, 1]; a length of 0 counts as 1."""
    return min(max(steps_in / max(1, length), 0.0), 1.0)


def _check_step(step: int) -> int:
    if not isinstance(step, numbers.Integral) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step={step!r} must be an int >= 0 (update k is the k-th step())")
    return int(step)


def _peak(warmup_steps: int) -> int:
    """The update that uses the peak and starts the decay: W, or 1 without warmup (W = 0)."""
    return max(1, warmup_steps)


def _warmup_phase(start_lr: float, max_lr: float, warmup_steps: int) -> Phase:
    return Phase(0, 0, max(1, warmup_steps), start_lr, max_lr, Shape.POLY)


class Schedule(abc.ABC):
    """A learning rate as a function of the update index k (see the module docstring)."""

    @abc.abstractmethod
    def lr_at(self, step: int) -> float:
        """The lr of update ``step`` (float64); ``step`` = 0 is the value before any update."""

    @abc.abstractmethod
    def phases(self) -> tuple[Phase, ...]:
        """This schedule as rows of the phase table, sorted by their first update."""

    def table(self, rows: int | None = None, device=None) -> torch.Tensor:
        """The float64 phase table on ``device``; see ``fused_sched.table``."""
        return to_table(self.phases(), rows=rows, device=device)

    def boundaries(self) -> list[int]:
        """Update indices where a phase starts (after the first), for plots."""
        return sorted({int(p.begin) for p in self.phases()[1:] if p.begin > 0})


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr`` at every update."""

    lr: float

    def __post_init__(self):
        check_lr("lr", self.lr)

    def lr_at(self, step: int) -> float:
        _check_step(step)
        return float(self.lr)

    def phases(self) -> tuple[Phase, ...]:
        return (Phase(0, 0, 1, self.lr, self.lr, Shape.CONSTANT),)


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warmup, then constant: ``lin(start_lr, max_lr, k / W)`` for k < W, else max_lr.

    The first update already has a non-zero lr (``max_lr / W`` from 0); W = 0 is no warmup.
    """

    max_lr: float
    warmup_steps: int
    start_lr: float = 0.0

    def __post_init__(self):
        check_lr("max_lr", self.max_lr)
        check_steps("warmup_steps", self.warmup_steps)
        check_lr("start_lr", self.start_lr)

    def lr_at(self, step: int) -> float:
        k = _check_step(step)
        if k < self.warmup_steps:
            return lin(self.start_lr, self.max_lr, k / self.warmup_steps)
        return float(self.max_lr)

    def phases(self) -> tuple[Phase, ...]:
        w = self.warmup_steps
        return (
            _warmup_phase(self.start_lr, self.max_lr, w),
            Phase(w, w, 1, self.max_lr, self.max_lr, Shape.CONSTANT),
        )


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warmup over W updates, then a half cosine from max_lr to min_lr ending at T.

    ``lin(start_lr, max_lr, k / W)`` for k < W, then
    ``cos(max_lr, min_lr, min((k - P) / max(1, T - P), 1))`` (Loshchilov & Hutter, SGDR,
    without restarts). With T = W the lr drops to min_lr on update W + 1.
    """

    max_lr: float
    warmup_steps: int
    total_steps: int
    min_lr: float = 0.0
    start_lr: float = 0.0

    def __post_init__(self):
        check_lr("max_lr", self.max_lr)
        check_steps("warmup_steps", self.warmup_steps)
        check_steps("total_steps", self.total_steps)
        check_order("warmup_steps", self.warmup_steps, "total_steps", self.total_steps)
        check_lr("min_lr", self.min_lr)
        check_lr("start_lr", self.start_lr)

    def lr_at(self, step: int) -> float:
        k, w, t = _check_step(step), self.warmup_steps, self.total_steps
        if k < w:
            return lin(self.start_lr, self.max_lr, k / w)
        return cos(self.max_lr, self.min_lr, _frac(k - _peak(w), t - _peak(w)))

    def phases(self) -> tuple[Phase, ...]:
        w, t, peak = self.warmup_steps, self.total_steps, _peak(self.warmup_steps)
        return (
            _warmup_phase(self.start_lr, self.max_lr, w),
            Phase(w, peak, max(1, t - peak), self.max_lr, self.min_lr, Shape.COSINE),
        )


@dataclass(frozen=True)
class OneCycle(Schedule):
    """Leslie Smith's one-cycle policy (Smith & Topin, 2018, "Super-Convergence").

    ``initial = max_lr / div_factor`` and ``minimum = max_lr / final_div_factor`` (note: torch's
    OneCycleLR ends at ``initial / final_div_factor``; ``fused_sched.compat.torch_one_cycle``
    reproduces that). ``lin(initial, max_lr, k / W)`` for k < W, then
    ``cos(max_lr, minimum, (k - P) / (T_c - P))`` until T_c. Without ``final_drop`` T_c = T.
    With ``final_drop=(f, r)`` the cosine ends at ``T_c = T - round(f * T)`` and the last steps
    go ``lin(minimum, minimum * r, (k - T_c) / (T - T_c))``: the "annihilation" phase.
    """

    max_lr: float
    total_steps: int
    warmup_steps: int
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    final_drop: tuple[float, float] | None = None

    def __post_init__(self):
        check_lr("max_lr", self.max_lr)
        check_steps("total_steps", self.total_steps)
        check_steps("warmup_steps", self.warmup_steps)
        check_order("warmup_steps", self.warmup_steps, "total_steps", self.total_steps)
        check_lr("div_factor", self.div_factor, positive=True)
        check_lr("final_div_factor", self.final_div_factor, positive=True)
        if self.final_drop is not None:
            drop = self.final_drop
            if not (isinstance(drop, tuple | list) and len(drop) == 2):
                raise ValueError(f"final_drop={drop!r} must be a pair (fraction, ratio)")
            fraction, ratio = drop
            check_lr("final_drop fraction", fraction)
            check_lr("final_drop ratio", ratio)
            if fraction >= 1:
                raise ValueError(f"final_drop fraction={fraction!r} must be < 1")
            object.__setattr__(self, "final_drop", (float(fraction), float(ratio)))
            check_order("warmup_steps", self.warmup_steps, "cosine end", self._cosine_end)

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def min_lr(self) -> float:
        return self.max_lr / self.final_div_factor

    @property
    def _cosine_end(self) -> int:
        if self.final_drop is None:
            return self.total_steps
        return self.total_steps - round(self.final_drop[0] * self.total_steps)

    def lr_at(self, step: int) -> float:
        k, w, tc = _check_step(step), self.warmup_steps, self._cosine_end
        if k < w:
            return lin(self.initial_lr, self.max_lr, k / w)
        if self.final_drop is None or k < tc:
            return cos(self.max_lr, self.min_lr, _frac(k - _peak(w), tc - _peak(w)))
        ratio = self.final_drop[1]
        return lin(self.min_lr, self.min_lr * ratio, _frac(k - tc, self.total_steps - tc))

    def phases(self) -> tuple[Phase, ...]:
        w, tc, t = self.warmup_steps, self._cosine_end, self.total_steps
        peak = _peak(w)
        rows = [
            _warmup_phase(self.initial_lr, self.max_lr, w),
            Phase(w, peak, max(1, tc - peak), self.max_lr, self.min_lr, Shape.COSINE),
        ]
        if self.final_drop is not None:
            end = self.min_lr * self.final_drop[1]
            rows.append(Phase(tc, tc, max(1, t - tc), self.min_lr, end, Shape.POLY))
        return tuple(rows)


_WSD_DECAYS = ("linear", "cosine", "sqrt")


@dataclass(frozen=True)
class WarmupStableDecay(Schedule):
    """Warmup, a long plateau, then a short decay over the last D updates (Hu et al., 2024).

    ``lin(0, max_lr, k / W)`` for k < W; ``max_lr`` until ``T - D``; then with
    ``q = min((k - (T - D)) / max(1, D), 1)``: ``lin(max_lr, min_lr, q)`` ("linear"),
    ``cos(max_lr, min_lr, q)`` ("cosine") or ``min_lr + (max_lr - min_lr) * (1 - sqrt(q))``
    ("sqrt").
    """

    max_lr: float
    warmup_steps: int
    decay_steps: int
    total_steps: int
    min_lr: float = 0.0
    decay: str = "linear"

    def __post_init__(self):
        check_lr("max_lr", self.max_lr)
        check_steps("warmup_steps", self.warmup_steps)
        check_steps("decay_steps", self.decay_steps)
        check_steps("total_steps", self.total_steps)
        used = self.warmup_steps + self.decay_steps
        check_order("warmup_steps + decay_steps", used, "total_steps", self.total_steps)
        check_lr("min_lr", self.min_lr)
        if self.decay not in _WSD_DECAYS:
            raise ValueError(f"decay={self.decay!r} must be one of {_WSD_DECAYS}")

    def lr_at(self, step: int) -> float:
        k, w = _check_step(step), self.warmup_steps
        decay_start = self.total_steps - self.decay_steps
        if k < w:
            return lin(0.0, self.max_lr, k / w)
        if k < decay_start:
            return float(self.max_lr)
        q = _frac(k - decay_start, self.decay_steps)
        if self.decay == "linear":
            return lin(self.max_lr, self.min_lr, q)
        if self.decay == "cosine":
            return cos(self.max_lr, self.min_lr, q)
        return self.min_lr + (self.max_lr - self.min_lr) * (1.0 - math.sqrt(q))

    def phases(self) -> tuple[Phase, ...]:
        w, d = self.warmup_steps, self.decay_steps
        start = self.total_steps - d
        shape, p = {
            "linear": (Shape.POLY, 1.0),
            "cosine": (Shape.COSINE, 1.0),
            "sqrt": (Shape.ROOT, 0.5),
        }[self.decay]
        return (
            _warmup_phase(0.0, self.max_lr, w),
            Phase(w, w, 1, self.max_lr, self.max_lr, Shape.CONSTANT),
            Phase(start, start, max(1, d), self.max_lr, self.min_lr, shape, p),
        )


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """Linear warmup, then decay with the inverse square root of the update index.

    ``lin(0, max_lr, k / W)`` for k < W, then ``max_lr * sqrt(max(1, W) / k)`` (Vaswani et al.,
    2017). With W = 0 the first update uses exactly max_lr.
    """

    max_lr: float
    warmup_steps: int

    def __post_init__(self):
        check_lr("max_lr", self.max_lr)
        check_steps("warmup_steps", self.warmup_steps)

    def lr_at(self, step: int) -> float:
        k, w = _check_step(step), self.warmup_steps
        if k < w:
            return lin(0.0, self.max_lr, k / w)
        return self.max_lr * math.sqrt(max(1, w) / max(1, k))

    def phases(self) -> tuple[Phase, ...]:
        w, scale = self.warmup_steps, max(1, self.warmup_steps)
        # INV_SQRT is A * sqrt(P / (P + k - ORIGIN)); ORIGIN = P = max(1, W) gives sqrt(W / k).
        return (
            _warmup_phase(0.0, self.max_lr, w),
            Phase(w, scale, 1, self.max_lr, 0.0, Shape.INV_SQRT, p=scale),
        )


@dataclass(frozen=True)
class Polynomial(Schedule):
    """Warmup, then polynomial decay to end_lr at T.

    ``lin(0, max_lr, k / W)`` for k < W, then
    ``end_lr + (max_lr - end_lr) * (1 - min((k - P) / max(1, T - P), 1)) ** power``.
    """

    max_lr: float
    total_steps: int
    warmup_steps: int = 0
    end_lr: float = 0.0
    power: float = 1.0

    def __post_init__(self):
        check_lr("max_lr", self.max_lr)
        check_steps("total_steps", self.total_steps)
        check_steps("warmup_steps", self.warmup_steps)
        check_order("warmup_steps", self.warmup_steps, "total_steps", self.total_steps)
        check_lr("end_lr", self.end_lr)
        check_lr("power", self.power, positive=True)

    def lr_at(self, step: int) -> float:
        k, w = _check_step(step), self.warmup_steps
        if k < w:
            return lin(0.0, self.max_lr, k / w)
        q = _frac(k - _peak(w), self.total_steps - _peak(w))
        return self.end_lr + (self.max_lr - self.end_lr) * (1.0 - q) ** self.power

    def phases(self) -> tuple[Phase, ...]:
        w, peak = self.warmup_steps, _peak(self.warmup_steps)
        span = max(1, self.total_steps - peak)
        return (
            _warmup_phase(0.0, self.max_lr, w),
            Phase(w, peak, span, self.max_lr, self.end_lr, Shape.POLY, p=self.power),
        )


@dataclass(frozen=True)
class ExponentialRamp(Schedule):
    """Geometric ramp: ``start_lr * (end_lr / start_lr) ** min(k / steps, 1)``.

    The LR range test's sweep (Smith, 2017, "Cyclical Learning Rates"); both ends > 0.
    """

    start_lr: float
    end_lr: float
    steps: int

    def __post_init__(self):
        check_lr("start_lr", self.start_lr, positive=True)
        check_lr("end_lr", self.end_lr, positive=True)
        check_steps("steps", self.steps)
        if not math.isfinite(self.end_lr / self.start_lr) or self.end_lr / self.start_lr == 0:
            raise ValueError(f"end_lr / start_lr = {self.end_lr} / {self.start_lr} must be a "
                             "finite, non-zero ratio")  # fmt: skip

    def lr_at(self, step: int) -> float:
        q = _frac(_check_step(step), self.steps)
        return self.start_lr * (self.end_lr / self.start_lr) ** q

    def phases(self) -> tuple[Phase, ...]:
        return (Phase(0, 0, max(1, self.steps), self.start_lr, self.end_lr, Shape.EXP),)


@dataclass(frozen=True)
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR; Loshchilov & Hutter, 2017).

    After a linear warmup from 0 over W updates, cycle i lasts ``cycle_steps * cycle_mult**i``
    updates (lengths may be fractional when cycle_mult is). At position u within a cycle of
    length L (u = 0 on the cycle's first update) the lr is ``cos(max_lr, min_lr, u / L)``: each
    cycle starts at max_lr and, like torch's CosineAnnealingWarmRestarts, ends one step short of
    min_lr. ``land_on_min=True`` uses ``u / max(1, L - 1)`` instead, so the last update of each
    cycle uses exactly min_lr.
    """

    max_lr: float
    cycle_steps: int
    cycle_mult: float = 1.0
    min_lr: float = 0.0
    warmup_steps: int = 0
    land_on_min: bool = False

    def __post_init__(self):
        check_lr("max_lr", self.max_lr)
        check_steps("cycle_steps", self.cycle_steps, positive=True)
        check_lr("cycle_mult", self.cycle_mult)
        if self.cycle_mult < 1:
            raise ValueError(f"cycle_mult={self.cycle_mult!r} must be >= 1")
        check_lr("min_lr", self.min_lr)
        check_steps("warmup_steps", self.warmup_steps)
        if not isinstance(self.land_on_min, bool):
            raise ValueError(f"land_on_min={self.land_on_min!r} must be a bool")

    def lr_at(self, step: int) -> float:
        k, w = _check_step(step), self.warmup_steps
        if k < w:
            return lin(0.0, self.max_lr, k / w)
        u, length = max(0, k - _peak(w)), float(self.cycle_steps)
        if self.cycle_mult == 1:
            u -= (u // self.cycle_steps) * self.cycle_steps
        else:  # cycles grow geometrically, so this walk is short even at huge k
            # A start within RESTART_SLACK * u after u counts as reached (rounding).
            slack = RESTART_SLACK * u
            while u >= length - slack:
                u -= length
                length *= self.cycle_mult
            u = max(u, 0.0)
        divisor = max(1.0, length - 1.0) if self.land_on_min else length
        return cos(self.max_lr, self.min_lr, min(u / divisor, 1.0))

    def phases(self) -> tuple[Phase, ...]:
        w = self.warmup_steps
        return (
            _warmup_phase(0.0, self.max_lr, w),
            Phase(
                w,
                _peak(w),
                self.cycle_steps,
                self.max_lr,
                self.min_lr,
                Shape.RESTARTS,
                p=float(self.land_on_min),
                m=float(self.cycle_mult),
            ),  # fmt: skip
        )


@dataclass(frozen=True)
class Sequence(Schedule):
    """Schedules one after another: ``Sequence([(schedule, steps), ...])``.

    Part j covers the updates ``offset_j < k <= offset_j + steps_j`` and is evaluated at its
    local step ``k - offset_j``, so its first update is its own update 1. A part of 0 steps is
    skipped entirely (as if absent); the last part runs on past its length.
    """

    parts: tuple[tuple[Schedule, int], ...]
    _live: tuple[tuple[Schedule, int, int], ...] = field(init=False, repr=False, compare=False)

    def __init__(self, parts: Iterable[tuple[Schedule, int]]):
        parts = tuple(parts)
        for i, part in enumerate(parts):
            if not (isinstance(part, tuple | list) and len(part) == 2):
                raise ValueError(f"parts[{i}]={part!r} must be a pair (schedule, steps)")
        parts = tuple((schedule, steps) for schedule, steps in parts)
        for i, (schedule, steps) in enumerate(parts):
            if not isinstance(schedule, Schedule):
                raise ValueError(f"parts[{i}] schedule={schedule!r} is not a Schedule")
            check_steps(f"parts[{i}] steps", steps)
        live, offset = [], 0
        for schedule, steps in parts:
            if steps > 0:
                live.append((schedule, steps, offset))
                offset += steps
        if not live:
            raise ValueError(f"a Sequence needs a part with steps >= 1, got {parts!r}")
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "_live", tuple(live))

    def lr_at(self, step: int) -> float:
        k = _check_step(step)
        for schedule, steps, offset in self._live:
            if k <= offset + steps:
                return schedule.lr_at(max(0, k - offset))
        schedule, _, offset = self._live[-1]
        return schedule.lr_at(k - offset)

    def phases(self) -> tuple[Phase, ...]:
        rows: list[Phase] = []
        last = len(self._live) - 1
        for j, (schedule, steps, offset) in enumerate(self._live):
            for phase in schedule.phases():
                if j < last and phase.begin > steps:
                    continue  # starts after this part has handed over
                # Later parts start on their own update 1, i.e. on update offset + 1.
                rows.append(phase.shifted(offset, first_begin=offset + 1 if j else None))
        return tuple(rows)


@dataclass(frozen=True)
class PhaseSchedule(Schedule):
    """A schedule given directly as phase rows (used by ``fused_sched.compat``).

    ``lr_at`` evaluates the rows on the host; ``name`` is what ``repr`` shows.
    """

    name: str
    rows: tuple[Phase, ...]

    def __post_init__(self):
        if not self.rows:
            raise ValueError(f"{self.name}: a schedule needs at least one phase")
        begins = [row.begin for row in self.rows]
        if begins != sorted(begins):
            raise ValueError(f"{self.name}: phases must be sorted by begin, got {begins}")

    def __repr__(self) -> str:
        return self.name

    def lr_at(self, step: int) -> float:
        return host_value(self.rows, _check_step(step))

    def phases(self) -> tuple[Phase, ...]:
        return self.rows
