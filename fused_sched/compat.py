"""The lr curves of schedulers users already have, rebuilt as phase tables.

Each function here returns a :class:`~fused_sched.schedules.PhaseSchedule` whose rows reproduce
one peer scheduler (PyTorch's ``torch.optim.lr_scheduler`` or Hugging Face transformers'
``get_scheduler``), so the peer's curve runs on the device through the same table as every
native schedule. The peers are never imported: they are optional test dependencies only.

Index convention. A peer is indexed by c, the number of ``scheduler.step()`` calls so far; in
the usual loop (``optimizer.step(); scheduler.step()``) update k (the k-th ``optimizer.step()``,
k >= 1) uses the peer's value at c = k - 1. So for every k the peer accepts,
``lr_at(k)`` is the peer's lr at c = k - 1 (to float64 rounding). ``lr_at(0)``, the value
before any update, is the peer's value at c = 0: the lr the optimizer shows once the scheduler
is built, so ``lr_at(0) == lr_at(1)``.

A peer phase that covers its indices c in [s, e] with progress ``pct = (c - s) / (e - s)``
becomes a row with ``ORIGIN = s + 1``, ``SPAN = e - s`` (the peer's exact length, possibly
fractional) and ``BEGIN`` = the first update k whose c belongs to the phase.

Past the peer's end (where it would raise, extrapolate, or rise again) a compat schedule holds
the peer's last value, like every schedule in this package. Where a peer divides by zero for a
degenerate setting, the function's docstring says what compat does instead; the result is
always finite.

>>> from fused_sched import compat
>>> s = compat.hf("linear", 1e-5, num_warmup_steps=0, num_training_steps=10)
>>> [round(s.lr_at(k), 12) for k in (1, 2, 10, 11, 50)]
[1e-05, 9e-06, 1e-06, 0.0, 0.0]
"""

from __future__ import annotations

import math
import warnings

from fused_sched.schedules import PhaseSchedule
from fused_sched.table import Phase, Shape
from fused_sched.validation import (
    check_bool,
    check_int,
    check_lr,
    check_order,
    check_real,
    check_steps,
)

__all__ = [
    "HF_NAMES",
    "hf",
    "torch_cosine_annealing",
    "torch_cosine_warm_restarts",
    "torch_linear",
    "torch_one_cycle",
]


# --- helpers -----------------------------------------------------------------------------------


def _row(first_c, start_c, span, a, b, shape, p=1.0, m=1.0) -> Phase:
    """The row of a peer phase first used at index ``first_c``, with ``pct = (c - start_c) /
    span``; rows are indexed by update k = c + 1, hence the shift by one."""
    return Phase(first_c + 1, start_c + 1, span, a, b, shape, p, m)


def _constant(first_c, value) -> Phase:
    return _row(first_c, first_c, 1.0, value, value, Shape.CONSTANT)


def _schedule(name: str, rows: list[Phase]) -> PhaseSchedule:
    """Rows to a schedule whose k = 0 gives the value of k = 1 (the peer's c = 0)."""
    if rows[0].origin < 1:
        # The first row would still move between k = 0 and k = 1 (a phase that started before
        # c = 0, e.g. one-cycle with pct_start * total_steps < 1): pin k = 0 to c = 0's value.
        rows = [Phase(0, 0, 1.0, rows[0].value(1), rows[0].value(1), Shape.CONSTANT), *rows]
    return PhaseSchedule(name, tuple(rows))


def _name(func: str, **args) -> str:
    return f"compat.{func}({', '.join(f'{key}={value!r}' for key, value in args.items())})"


# --- torch.optim.lr_scheduler ------------------------------------------------------------------

_ANNEAL = {"cos": Shape.COSINE, "linear": Shape.POLY}


def torch_one_cycle(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> PhaseSchedule:
    """``torch.optim.lr_scheduler.OneCycleLR``'s lr, every argument that shapes it included.

    With T = ``total_steps`` (or ``epochs * steps_per_epoch`` when total_steps is None, as in
    torch), ``initial = max_lr / div_factor`` and ``floor = initial / final_div_factor`` (note:
    not ``max_lr / final_div_factor``, which is the native ``OneCycle``'s floor). The phases end
    at the indices ``pct_start * T - 1`` and ``T - 1`` (initial -> max_lr -> floor), or with
    ``three_phase`` at ``pct_start * T - 1``, ``2 * pct_start * T - 2`` and ``T - 1``
    (initial -> max_lr -> initial -> floor); index c belongs to the first phase whose end is
    >= c (the last phase takes the rest) and moves ``pct = (c - start) / (end - start)`` along
    it, by ``end + (start - end) * (1 + cos(pi * pct)) / 2`` ("cos") or linearly ("linear").

    Index convention: update k uses torch's value at c = k - 1, for k = 1..T. Past the end,
    torch extrapolates at c = T and raises after; compat holds the value of c = T - 1 (the
    floor, unless a three-phase cycle with pct_start > 0.5 never reaches its third phase).

    Degenerate setting: when ``pct_start * T == 1`` torch divides by zero at c = 0 (its first
    phase has length 0); compat uses max_lr there, that phase's end value and the next
    phase's start.

    >>> s = torch_one_cycle(0.01, total_steps=100)
    >>> [round(s.lr_at(k), 12) for k in (1, 30, 100, 105)]
    [0.0004, 0.01, 4e-08, 4e-08]
    """
    check_lr("max_lr", max_lr)
    total = _one_cycle_total(total_steps, epochs, steps_per_epoch)
    pct = check_real("pct_start", pct_start, 0.0, 1.0)
    if anneal_strategy not in _ANNEAL:
        raise ValueError(f"anneal_strategy={anneal_strategy!r} must be one of {tuple(_ANNEAL)}")
    check_lr("div_factor", div_factor, positive=True)
    check_lr("final_div_factor", final_div_factor, positive=True)
    check_bool("three_phase", three_phase)

    initial = max_lr / div_factor
    floor = initial / final_div_factor
    # The same float expressions as torch, so that every phase boundary falls where torch's does.
    if three_phase:
        ends = [float(pct * total) - 1, float(2 * pct * total) - 2, float(total - 1)]
        levels = [(initial, max_lr), (max_lr, initial), (initial, floor)]
    else:
        ends = [float(pct * total) - 1, float(total - 1)]
        levels = [(initial, max_lr), (max_lr, floor)]

    rows, start, first, last_used = [], 0.0, 0, 0
    for i, (end, (a, b)) in enumerate(zip(ends, levels, strict=True)):
        stop = total - 1 if i == len(ends) - 1 else min(math.floor(end), total - 1)
        if first <= stop:  # some c in [0, T - 1] falls in this phase
            if end > start:
                rows.append(_row(first, start, end - start, a, b, _ANNEAL[anneal_strategy]))
            else:  # only phase 0 with end == 0, where torch divides by zero
                rows.append(_constant(first, b))
            last_used = i
        first = max(first, math.floor(end) + 1)
        start = end
    if last_used < len(ends) - 1:
        # The last phase in use ends after c = T - 1 (it would run on): hold its value there.
        rows.append(_constant(total, rows[-1].value(total)))
    name = _name(
        "torch_one_cycle",
        max_lr=max_lr,
        total_steps=total,
        pct_start=pct,
        anneal_strategy=anneal_strategy,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
    )
    return _schedule(name, rows)


def _one_cycle_total(total_steps, epochs, steps_per_epoch) -> int:
    """T as torch computes it: total_steps when given, else epochs * steps_per_epoch."""
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if value is not None:
            check_int(name, value, 1)
    if total_steps is not None:
        return check_int("total_steps", total_steps, 1)
    if epochs is None or steps_per_epoch is None:
        raise ValueError(
            f"give total_steps, or epochs and steps_per_epoch; got {total_steps=}, {epochs=}, "
            f"{steps_per_epoch=}"
        )
    return int(epochs) * int(steps_per_epoch)


def torch_cosine_annealing(base_lr: float, T_max: int, eta_min: float = 0.0) -> PhaseSchedule:
    """``torch.optim.lr_scheduler.CosineAnnealingLR``'s lr, in closed form.

    ``eta_min + (base_lr - eta_min) * (1 + cos(pi * c / T_max)) / 2`` at index c. Torch steps
    it by a recursion whose float64 result agrees with this closed form to rounding.

    Index convention: update k uses torch's value at c = k - 1. Past the end: torch follows the
    cosine back up after c = T_max; compat holds eta_min from c = T_max on (update
    T_max + 1 and later), which is the point of a cosine schedule.

    >>> s = torch_cosine_annealing(1.0, T_max=10)
    >>> [round(s.lr_at(k), 12) for k in (1, 6, 11, 12)]
    [1.0, 0.5, 0.0, 0.0]
    """
    check_lr("base_lr", base_lr)
    check_int("T_max", T_max, 1)
    check_lr("eta_min", eta_min)
    rows = [_row(0, 0, float(T_max), base_lr, eta_min, Shape.COSINE)]
    name = _name("torch_cosine_annealing", base_lr=base_lr, T_max=T_max, eta_min=eta_min)
    return _schedule(name, rows)


def torch_linear(
    base_lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> PhaseSchedule:
    """``torch.optim.lr_scheduler.LinearLR``'s lr.

    ``base_lr * (start_factor + (end_factor - start_factor) * min(c, total_iters) /
    total_iters)`` at index c, with torch's ranges: start_factor in (0, 1], end_factor in
    [0, 1].

    Index convention: update k uses torch's value at c = k - 1. Past the end torch holds
    ``base_lr * end_factor`` from c = total_iters on, and so does compat.

    Degenerate setting: with ``total_iters=0`` torch's closed form divides by zero, while a
    scheduler stepped as usual keeps ``base_lr * start_factor`` for ever; compat gives that.

    >>> s = torch_linear(0.05, start_factor=0.5, total_iters=4)
    >>> [round(s.lr_at(k), 12) for k in (1, 3, 5, 9)]
    [0.025, 0.0375, 0.05, 0.05]
    """
    check_lr("base_lr", base_lr)
    start = check_real("start_factor", start_factor, 0.0, 1.0, lo_open=True)
    end = check_real("end_factor", end_factor, 0.0, 1.0)
    total = check_int("total_iters", total_iters, 0)
    if total == 0:
        rows = [_constant(0, base_lr * start)]
    else:
        rows = [_row(0, 0, float(total), base_lr * start, base_lr * end, Shape.POLY)]
    name = _name(
        "torch_linear",
        base_lr=base_lr,
        start_factor=start_factor,
        end_factor=end_factor,
        total_iters=total_iters,
    )
    return _schedule(name, rows)


def torch_cosine_warm_restarts(
    base_lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> PhaseSchedule:
    """``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``'s lr (stepped once per update).

    Cycle i lasts ``T_i = T_0 * T_mult**i`` indices; at position ``u`` in it (u = 0 on its first
    index) the lr is ``eta_min + (base_lr - eta_min) * (1 + cos(pi * u / T_i)) / 2``. As in
    torch, u never reaches T_i, so eta_min itself is never used: each cycle ends one step short
    of it (for the floor at the end of each cycle, use the native
    ``CosineRestarts(..., land_on_min=True)``).

    Index convention: update k uses torch's value at c = k - 1. This schedule has no end: it
    restarts for ever, exactly like torch.

    >>> s = torch_cosine_warm_restarts(1.0, T_0=4)
    >>> [round(s.lr_at(k), 12) for k in (1, 3, 4, 5)]
    [1.0, 0.5, 0.146446609407, 1.0]
    """
    check_lr("base_lr", base_lr)
    check_int("T_0", T_0, 1)
    check_int("T_mult", T_mult, 1)
    check_lr("eta_min", eta_min)
    rows = [
        _row(0, 0, float(T_0), base_lr, eta_min, Shape.RESTARTS, p=0.0, m=float(T_mult)),
    ]
    name = _name(
        "torch_cosine_warm_restarts", base_lr=base_lr, T_0=T_0, T_mult=T_mult, eta_min=eta_min
    )
    return _schedule(name, rows)


# --- transformers.get_scheduler ----------------------------------------------------------------


def _warmup(w: int, low: float, peak: float, shape=Shape.POLY, p=1.0) -> list[Phase]:
    """Indices c < w with ``progress = c / w``, from ``low`` towards ``peak``; none when w = 0."""
    return [_row(0, 0, float(w), low, peak, shape, p)] if w > 0 else []


def _hf_linear(peak, w, t):
    # transformers: max(0, (t - c) / max(1, t - w)) for c >= w, which is 0 at once when t = w.
    decay = _row(w, w, float(t - w), peak, 0.0, Shape.POLY) if t > w else _constant(w, 0.0)
    return [*_warmup(w, 0.0, peak), decay]


def _hf_cosine(peak, w, t, num_cycles):
    cycles = check_real("num_cycles", num_cycles, 0.0, math.inf)
    span = float(max(1, t - w))
    return [*_warmup(w, 0.0, peak), _row(w, w, span, peak, 0.0, Shape.COSINE, p=2.0 * cycles)]


def _hf_cosine_with_restarts(peak, w, t, num_cycles):
    cycles = check_real("num_cycles", num_cycles, 0.0, math.inf, lo_open=True)
    length = max(1, t - w)
    restarts = _row(w, w, length / cycles, peak, 0.0, Shape.RESTARTS, p=0.0)
    # transformers returns 0 once progress reaches 1, i.e. from c = w + length on.
    return [*_warmup(w, 0.0, peak), restarts, _constant(w + length, 0.0)]


def _hf_polynomial(peak, w, t, lr_end, power):
    check_lr("lr_end", lr_end)
    if not lr_end < peak:
        raise ValueError(f"{lr_end=} must be smaller than max_lr={peak!r} (as transformers asks)")
    check_lr("power", power, positive=True)
    # Span max(1, t - w): when t = w transformers divides by zero at c = w; compat uses the
    # peak there and lr_end from c = w + 1 on (the fixed behaviour, transformers PR #47285).
    decay = _row(w, w, float(max(1, t - w)), peak, lr_end, Shape.POLY, p=float(power))
    return [*_warmup(w, 0.0, peak), decay]


def _hf_constant(peak, w, t):
    return [_constant(0, peak)]


def _hf_constant_with_warmup(peak, w, t):
    return [*_warmup(w, 0.0, peak), _constant(w, peak)]


def _hf_inverse_sqrt(peak, w, t, timescale):
    if timescale is None:
        timescale = w or 10_000
    scale = check_real("timescale", timescale, 0.0, math.inf, lo_open=True)
    # transformers: 1 / sqrt((c + timescale - w) / timescale) for c >= w; t = k - ORIGIN = c - w.
    return [*_warmup(w, 0.0, peak), _row(w, w, 1.0, peak, 0.0, Shape.INV_SQRT, p=scale)]


# transformers' warmup and decay kinds as (shape, P) of rows from the floor to the peak and back.
_WSD_WARMUPS = {
    "linear": (Shape.POLY, 1.0),
    "cosine": (Shape.COSINE, 1.0),
    "1-sqrt": (Shape.POLY, 0.5),
}
_WSD_DECAYS = {
    "linear": (Shape.POLY, 1.0),
    "cosine": (Shape.COSINE, 1.0),
    "1-sqrt": (Shape.ROOT, 0.5),
}


def _hf_warmup_stable_decay(
    peak, w, t, num_decay_steps, num_stable_steps, warmup_type, decay_type, min_lr_ratio, num_cycles
):
    d = check_int("num_decay_steps", num_decay_steps, 0)
    if num_stable_steps is None:
        if t is None:
            raise ValueError(
                "hf('warmup_stable_decay') needs num_training_steps or num_stable_steps"
            )
        check_order("num_warmup_steps + num_decay_steps", w + d, "num_training_steps", t)
        s = t - w - d
    else:
        s = check_int("num_stable_steps", num_stable_steps, 0)
        if t is not None and w + s + d != t:
            warnings.warn(
                f"num_training_steps={t} differs from num_warmup_steps + num_stable_steps + "
                f"num_decay_steps = {w + s + d}; num_stable_steps is used, as in transformers",
                stacklevel=3,
            )
    for name, kind, kinds in (
        ("warmup_type", warmup_type, _WSD_WARMUPS),
        ("decay_type", decay_type, _WSD_DECAYS),
    ):
        if kind not in kinds:
            raise ValueError(f"{name}={kind!r} must be one of {tuple(kinds)}")
    ratio = check_real("min_lr_ratio", min_lr_ratio, 0.0, 1.0)
    cycles = check_real("num_cycles", num_cycles, 0.0, math.inf)
    low = peak * ratio

    # Warmup from low to peak: linear, 1 - (1 + cos(pi q)) / 2, or 1 - sqrt(1 - q).
    rows = _warmup(w, low, peak, *_WSD_WARMUPS[warmup_type])
    if s > 0:
        rows.append(_constant(w, peak))
    if d > 0:
        shape, p = _WSD_DECAYS[decay_type]
        p = 2.0 * cycles if decay_type == "cosine" else p
        rows.append(_row(w + s, w + s, float(d), peak, low, shape, p))
    # The decay's progress never reaches 1 at an index; transformers drops to the floor after.
    rows.append(_constant(w + s + d, low))
    return rows


def _hf_cosine_with_min_lr(peak, w, t, num_cycles, min_lr, min_lr_rate):
    cycles = check_real("num_cycles", num_cycles, 0.0, math.inf)
    if (min_lr is None) == (min_lr_rate is None):
        raise ValueError(
            f"give exactly one of min_lr and min_lr_rate, got {min_lr=}, {min_lr_rate=}"
        )
    if min_lr is not None:
        check_real("min_lr", min_lr, 0.0, peak)
        rate = min_lr / peak if peak > 0 else 0.0
    else:
        rate = check_real("min_lr_rate", min_lr_rate, 0.0, 1.0)
    span = float(max(1, t - w))
    cosine = _row(w, w, span, peak, peak * rate, Shape.COSINE, p=2.0 * cycles)
    return [*_warmup(w, 0.0, peak), cosine]


# name: (builder, its keyword arguments with transformers' defaults, needs num_training_steps)
_HF = {
    "linear": (_hf_linear, {}, True),
    "cosine": (_hf_cosine, {"num_cycles": 0.5}, True),
    "cosine_with_restarts": (_hf_cosine_with_restarts, {"num_cycles": 1}, True),
    "polynomial": (_hf_polynomial, {"lr_end": 1e-7, "power": 1.0}, True),
    "constant": (_hf_constant, {}, False),
    "constant_with_warmup": (_hf_constant_with_warmup, {}, False),
    "inverse_sqrt": (_hf_inverse_sqrt, {"timescale": None}, False),
    "warmup_stable_decay": (
        _hf_warmup_stable_decay,
        {
            "num_decay_steps": None,
            "num_stable_steps": None,
            "warmup_type": "linear",
            "decay_type": "cosine",
            "min_lr_ratio": 0.0,
            "num_cycles": 0.5,
        },
        False,
    ),
    "cosine_with_min_lr": (
        _hf_cosine_with_min_lr,
        {"num_cycles": 0.5, "min_lr": None, "min_lr_rate": None},
        True,
    ),
}
HF_NAMES = tuple(_HF)


def hf(
    name: str,
    max_lr: float,
    num_warmup_steps: int | None = None,
    num_training_steps: int | None = None,
    **kwargs,
) -> PhaseSchedule:
    """The lr of Hugging Face transformers' ``get_scheduler(name, ...)`` with initial lr max_lr.

    ``name`` is one of :data:`HF_NAMES`, as a string or a ``transformers.SchedulerType``.

    ``kwargs`` are the ``scheduler_specific_kwargs`` of transformers, with its defaults. With
    W = num_warmup_steps, T = num_training_steps, every schedule but "constant" warms up
    linearly, ``c / W`` for c < W (so update 1 uses 0, as in transformers), then at index c:

    - "linear": ``max(0, (T - c) / max(1, T - W))``.
    - "cosine" (num_cycles=0.5): ``(1 + cos(2 pi num_cycles p)) / 2``,
      ``p = (c - W) / max(1, T - W)``.
    - "cosine_with_restarts" (num_cycles=1): ``(1 + cos(pi * ((num_cycles p) mod 1))) / 2``
      for p < 1, then 0. Restarts fall on transformers' indices for integer and dyadic
      num_cycles (checked for every length up to 120); for others, such as 3.3, where
      ``num_cycles * p`` is within rounding of an integer, transformers' own result hangs on
      the rounding and a restart may fall one index apart.
    - "polynomial" (lr_end=1e-7, power=1.0): ``lr_end + (max_lr - lr_end) * (1 - p) ** power``
      for c <= T, then lr_end; ``lr_end < max_lr`` and power > 0 are required.
    - "constant": max_lr. "constant_with_warmup": max_lr after the warmup.
    - "inverse_sqrt" (timescale = W, or 10000 when W = 0):
      ``1 / sqrt((c + timescale - W) / timescale)``; T is not used.
    - "warmup_stable_decay" (num_decay_steps D, required; num_stable_steps S = T - W - D when
      None; warmup_type / decay_type in "linear", "cosine", "1-sqrt"; min_lr_ratio r = 0;
      num_cycles = 0.5): warmup from r to 1, 1 for S indices, then D indices of decay to r,
      then r.
    - "cosine_with_min_lr" (num_cycles=0.5; exactly one of min_lr, min_lr_rate = r):
      ``r + (1 - r) * (1 + cos(2 pi num_cycles p)) / 2``.

    Each is multiplied by max_lr. Index convention: update k uses transformers' value at
    c = k - 1. Past the end: where transformers' cosines rise again after p = 1 (c = W +
    max(1, T - W)), compat holds their value at p = 1; the other schedules hold their last value
    in transformers too. "inverse_sqrt" has no end. W > T is rejected.

    Degenerate setting: "polynomial" with T = W divides by zero at c = W in transformers; compat
    uses max_lr there and lr_end after (the fixed behaviour).

    >>> s = hf("cosine", 1.0, num_warmup_steps=4, num_training_steps=10)
    >>> [round(s.lr_at(k), 10) for k in (1, 2, 5, 6, 11, 20)]
    [0.0, 0.25, 1.0, 0.9330127019, 0.0, 0.0]
    """
    name = getattr(name, "value", name)  # transformers' SchedulerType members carry the name
    if not isinstance(name, str) or name not in _HF:
        raise ValueError(f"name={name!r} is not a supported transformers schedule: {HF_NAMES}")
    builder, defaults, needs_total = _HF[name]
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(
            f"hf({name!r}) got unknown keyword arguments {unknown}; valid: {sorted(defaults)}"
        )
    check_lr("max_lr", max_lr)
    if num_warmup_steps is not None:
        check_steps("num_warmup_steps", num_warmup_steps)
    elif name != "constant":
        raise ValueError(f"hf({name!r}) needs num_warmup_steps, got {num_warmup_steps=}")
    if num_training_steps is not None:
        check_steps("num_training_steps", num_training_steps)
        if needs_total:
            check_order(
                "num_warmup_steps", num_warmup_steps, "num_training_steps", num_training_steps
            )
    elif needs_total:
        raise ValueError(f"hf({name!r}) needs num_training_steps, got {num_training_steps=}")

    options = {**defaults, **kwargs}
    rows = builder(max_lr, num_warmup_steps or 0, num_training_steps, **options)
    label = _name(
        "hf",
        name=name,
        max_lr=max_lr,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        **kwargs,
    )
    return _schedule(label, rows)
