"""Native schedules: pinned boundaries, properties, validation, repr, Sequence semantics, and the
bug-report cases of ../shared/cases/bug-reports.md generalised to every schedule and evaluator.

Step convention (DESIGN.md): update k (k = 1, 2, ...) uses ``lr_at(k)``; ``lr_at(0)`` is the
value before any update. Expected numbers are written out, or as the closed form at that one
step where a literal would be unreadable; they never come from the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from fused_sched import (
    Constant,
    CosineRestarts,
    ExponentialRamp,
    InverseSqrt,
    OneCycle,
    Polynomial,
    Schedule,
    Sequence,
    Warmup,
    WarmupCosine,
    WarmupStableDecay,
)
from fused_sched import evaluate as torch_evaluate
from fused_sched.table import host_value
from fused_sched.triton_eval import evaluate_triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HUGE = 2**52  # every step count below 2**53 is exact in float64
PI = math.pi


def cos(a: float, b: float, q: float) -> float:
    """DESIGN.md's half cosine from a (q = 0) to b (q = 1), written out independently."""
    return b + (a - b) * (1.0 + math.cos(PI * q)) / 2.0


def pairs(values: list[float]):
    """Neighbours (v[i], v[i + 1])."""
    return zip(values[:-1], values[1:], strict=True)


def every_evaluator(schedule: Schedule, steps: list[int]) -> dict[str, list[float]]:
    """The lr at ``steps`` from the host spec, the host table, the torch and Triton evaluators."""
    table = schedule.table(device=DEVICE)
    k = torch.tensor(steps, dtype=torch.int64, device=DEVICE)
    return {
        "lr_at": [schedule.lr_at(s) for s in steps],
        "host_value": [host_value(schedule.phases(), s) for s in steps],
        "evaluate": torch_evaluate(table, k).cpu().tolist(),
        "triton": evaluate_triton(table, k).cpu().tolist(),
    }


def assert_every_evaluator(schedule, steps, expected, rel=1e-12, abs=0.0):
    """Every evaluator gives ``expected`` (one value per step), finite and >= 0."""
    for name, values in every_evaluator(schedule, steps).items():
        for k, want, got in zip(steps, expected, values, strict=True):
            assert math.isfinite(got) and got >= 0.0, (name, k, got)
            assert got == pytest.approx(want, rel=rel, abs=abs), (name, k)


# --- boundaries pinned with exact numbers ---------------------------------------------------------

WCOS = WarmupCosine(1e-3, 4, 10, min_lr=1e-5)
ONE_CYCLE = OneCycle(0.01, 100, 30)
ONE_CYCLE_DROP = OneCycle(0.01, 100, 30, final_drop=(0.1, 0.01))

# (id, schedule, {k: lr}): step 0, the last warmup step, the peak, the first decay step, the
# end, past the end, far past the end and a huge step, as each schedule has them.
PINS = [
    ("constant", Constant(0.1), {0: 0.1, 1: 0.1, 10**6: 0.1, HUGE: 0.1}),
    (
        "warmup",
        Warmup(1e-3, 4),
        {0: 0.0, 1: 2.5e-4, 3: 7.5e-4, 4: 1e-3, 5: 1e-3, 10**6: 1e-3, HUGE: 1e-3},
    ),
    ("warmup-start", Warmup(1e-3, 4, start_lr=2e-4), {0: 2e-4, 1: 4e-4, 3: 8e-4, 4: 1e-3}),
    (
        "warmup-cosine",
        WCOS,
        {
            0: 0.0,
            1: 2.5e-4,
            3: 7.5e-4,
            4: 1e-3,
            5: cos(1e-3, 1e-5, 1 / 6),
            7: 5.05e-4,
            10: 1e-5,
            11: 1e-5,
            100: 1e-5,
            HUGE: 1e-5,
        },
    ),
    (
        "one-cycle",
        ONE_CYCLE,
        {
            0: 4e-4,
            1: 7.2e-4,
            29: 9.68e-3,
            30: 0.01,
            31: cos(0.01, 1e-6, 1 / 70),
            65: 5.0005e-3,
            100: 1e-6,
            101: 1e-6,
            10**6: 1e-6,
            HUGE: 1e-6,
        },
    ),
    (
        "one-cycle-final-drop",
        ONE_CYCLE_DROP,
        {
            30: 0.01,
            60: 5.0005e-3,
            89: cos(0.01, 1e-6, 59 / 60),
            90: 1e-6,
            91: 9.01e-7,
            95: 5.05e-7,
            100: 1e-8,
            101: 1e-8,
            HUGE: 1e-8,
        },
    ),
    (
        "wsd-linear",
        WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5),
        {0: 0.0, 4: 8e-4, 5: 1e-3, 6: 1e-3, 40: 1e-3, 41: 9.01e-4, 45: 5.05e-4, 50: 1e-5},
    ),
    (
        "wsd-cosine",
        WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5, decay="cosine"),
        {40: 1e-3, 41: cos(1e-3, 1e-5, 0.1), 45: 5.05e-4, 50: 1e-5, 51: 1e-5, HUGE: 1e-5},
    ),
    (
        "wsd-sqrt",
        WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5, decay="sqrt"),
        {
            40: 1e-3,
            41: 1e-5 + 0.99e-3 * (1 - math.sqrt(0.1)),
            45: 1e-5 + 0.99e-3 * (1 - math.sqrt(0.5)),
            50: 1e-5,
            HUGE: 1e-5,
        },
    ),
    (
        "inverse-sqrt",
        InverseSqrt(1e-3, 4),
        {0: 0.0, 1: 2.5e-4, 3: 7.5e-4, 4: 1e-3, 16: 5e-4, 100: 2e-4, HUGE: 2e-3 / 2**26},
    ),
    ("inverse-sqrt-W0", InverseSqrt(1e-3, 0), {0: 1e-3, 1: 1e-3, 4: 5e-4, HUGE: 1e-3 / 2**26}),
    (
        "polynomial",
        Polynomial(1e-2, 110, 10, end_lr=1e-7, power=2.0),
        {
            0: 0.0,
            5: 5e-3,
            9: 9e-3,
            10: 1e-2,
            11: 1e-7 + (1e-2 - 1e-7) * 0.99**2,
            60: 2.500075e-3,
            110: 1e-7,
            111: 1e-7,
            HUGE: 1e-7,
        },
    ),
    (
        "exponential-ramp",
        ExponentialRamp(1e-7, 10.0, 100),
        {0: 1e-7, 1: 1e-7 * 10**0.08, 50: 1e-3, 100: 10.0, 101: 10.0, HUGE: 10.0},
    ),
    (
        "restarts-x2-W3",
        CosineRestarts(0.1, 10, 2.0, warmup_steps=3),
        {
            0: 0.0,
            1: 0.1 / 3,
            3: 0.1,
            4: cos(0.1, 0.0, 0.1),
            12: cos(0.1, 0.0, 0.9),
            13: 0.1,
            32: cos(0.1, 0.0, 19 / 20),
            33: 0.1,
        },
    ),
    (
        "restarts-x2-W3-land",
        CosineRestarts(0.1, 10, 2.0, warmup_steps=3, land_on_min=True),
        {3: 0.1, 4: cos(0.1, 0.0, 1 / 9), 12: 0.0, 13: 0.1, 32: 0.0, 33: 0.1, 72: 0.0, 73: 0.1},
    ),
]


@pytest.mark.parametrize("name, schedule, pins", PINS, ids=[p[0] for p in PINS])
def test_boundaries_are_pinned(name, schedule, pins):
    for k, want in pins.items():
        assert schedule.lr_at(k) == pytest.approx(want, rel=1e-12, abs=1e-20), k


# --- properties -----------------------------------------------------------------------------------

# (schedule, W, T, max_lr, end value): rises over 0..W, peaks at W, never rises after the peak,
# holds its end value from T on.
SHAPES = [
    (Warmup(1e-3, 4), 4, 4, 1e-3, 1e-3),
    (Warmup(1e-3, 7, start_lr=1e-4), 7, 7, 1e-3, 1e-3),
    (WCOS, 4, 10, 1e-3, 1e-5),
    (WarmupCosine(3e-4, 25, 200, min_lr=3e-5, start_lr=1e-6), 25, 200, 3e-4, 3e-5),
    (ONE_CYCLE, 30, 100, 0.01, 1e-6),
    (ONE_CYCLE_DROP, 30, 100, 0.01, 1e-8),
    (WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5), 5, 50, 1e-3, 1e-5),
    (WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5, decay="cosine"), 5, 50, 1e-3, 1e-5),
    (WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5, decay="sqrt"), 5, 50, 1e-3, 1e-5),
    (Polynomial(1e-2, 110, 10, end_lr=1e-7, power=2.0), 10, 110, 1e-2, 1e-7),
    (Polynomial(1.0, 30, 0, power=0.5), 0, 30, 1.0, 0.0),
]


@pytest.mark.parametrize("schedule, w, t, top, end", SHAPES, ids=lambda v: repr(v)[:40])
def test_warmup_then_decay_properties(schedule, w, t, top, end):
    lrs = [schedule.lr_at(k) for k in range(t + 60)]
    assert all(math.isfinite(v) and v >= 0.0 for v in lrs)
    assert all(a < b for a, b in pairs(lrs[: w + 1])), "rises during warmup"
    assert lrs[w] == pytest.approx(top, rel=1e-15) and max(lrs) == lrs[w], "peaks at W"
    assert all(a >= b for a, b in pairs(lrs[w:])), "never rises after the peak"
    assert lrs[t] == pytest.approx(end, rel=1e-12, abs=0.0), "ends at its end value"
    held = lrs[t:] + [schedule.lr_at(10**9), schedule.lr_at(HUGE)]
    assert held == [lrs[t]] * len(held), "holds its end value past the end"


def test_inverse_sqrt_decays_forever_and_stays_positive():
    schedule = InverseSqrt(1e-3, 4)
    lrs = [schedule.lr_at(k) for k in range(4, 500)]
    assert all(a > b > 0.0 for a, b in pairs(lrs))
    assert 0.0 < schedule.lr_at(HUGE) < schedule.lr_at(2**40) < lrs[-1]


@pytest.mark.parametrize("start, end", [(1e-7, 10.0), (2.0, 0.5)])
def test_exponential_ramp_has_a_constant_ratio_then_holds(start, end):
    schedule = ExponentialRamp(start, end, 20)
    lrs = [schedule.lr_at(k) for k in range(30)]
    ratios = [b / a for a, b in pairs(lrs[:21])]
    assert ratios == pytest.approx([(end / start) ** (1 / 20)] * 20, rel=1e-12)
    assert lrs[20:] == [end] * 10 and schedule.lr_at(HUGE) == end


@pytest.mark.parametrize("land", [False, True])
def test_restarts_repeat_every_cycle_and_start_at_max(land):
    schedule = CosineRestarts(0.1, 10, min_lr=3.2e-6, warmup_steps=5, land_on_min=land)
    lrs = [schedule.lr_at(k) for k in range(5, 105)]
    assert lrs[10:] == lrs[:-10]
    assert lrs[::10] == [0.1] * 10
    assert min(lrs) == (3.2e-6 if land else pytest.approx(0.002450295876, rel=1e-9))
    assert all(3.2e-6 <= v <= 0.1 for v in lrs)


# --- validation: (constructor, exception, message naming the parameter) ---------------------------

INVALID = [
    (lambda: Constant(-0.1), r"lr=-0\.1 must be a finite number >= 0"),
    (lambda: Constant(math.nan), r"lr=nan must be a finite number"),
    (lambda: Constant(True), r"lr=True must be a finite number"),
    (lambda: Constant("0.1"), r"lr='0\.1' must be a finite number"),
    (lambda: Warmup(-1e-3, 4), r"max_lr=-0\.001"),
    (lambda: Warmup(1e-3, -1), r"warmup_steps=-1 must be >= 0"),
    (lambda: Warmup(1e-3, 4.0), r"warmup_steps=4\.0 must be an int"),
    (lambda: Warmup(1e-3, True), r"warmup_steps=True must be an int"),
    (lambda: Warmup(1e-3, 4, start_lr=-1.0), r"start_lr=-1\.0"),
    (lambda: WarmupCosine(1e-3, 11, 10), r"warmup_steps=11 must be <= total_steps=10"),
    (lambda: WarmupCosine(1e-3, 4, -10), r"total_steps=-10 must be >= 0"),
    (lambda: WarmupCosine(1e-3, 4, 10.5), r"total_steps=10\.5 must be an int"),
    (lambda: WarmupCosine(1e-3, 4, 10, min_lr=-1e-5), r"min_lr=-1e-05"),
    (lambda: WarmupCosine(1e-3, 4, 10, start_lr=math.inf), r"start_lr=inf"),
    (lambda: OneCycle(0.01, 100, 101), r"warmup_steps=101 must be <= total_steps=100"),
    (lambda: OneCycle(0.01, 100, 30, div_factor=0.0), r"div_factor=0\.0 must be .*> 0"),
    (lambda: OneCycle(0.01, 100, 30, div_factor=-25.0), r"div_factor=-25\.0"),
    (lambda: OneCycle(0.01, 100, 30, final_div_factor=0), r"final_div_factor=0 must be .*> 0"),
    (lambda: OneCycle(0.01, 100, 30, final_drop=(0.1,)), r"final_drop=\(0\.1,\) must be a pair"),
    (lambda: OneCycle(0.01, 100, 30, final_drop=0.1), r"final_drop=0\.1 must be a pair"),
    (lambda: OneCycle(0.01, 100, 30, final_drop=(1.0, 0.1)), r"final_drop fraction=1\.0 must be"),
    (lambda: OneCycle(0.01, 100, 30, final_drop=(-0.1, 0.1)), r"final_drop fraction=-0\.1"),
    (lambda: OneCycle(0.01, 100, 30, final_drop=(0.1, -1.0)), r"final_drop ratio=-1\.0"),
    (lambda: OneCycle(0.01, 100, 95, final_drop=(0.1, 0.1)), r"warmup_steps=95 .*cosine end=90"),
    (lambda: OneCycle(0.01, True, 0), r"total_steps=True must be an int"),
    (lambda: WarmupStableDecay(1e-3, 5, 10, 50, decay="step"), r"decay='step' must be one of"),
    (lambda: WarmupStableDecay(1e-3, 5, 10, 14), r"warmup_steps \+ decay_steps=15 .*=14"),
    (lambda: WarmupStableDecay(1e-3, 5, -10, 50), r"decay_steps=-10 must be >= 0"),
    (lambda: WarmupStableDecay(1e-3, 5, 10, 50, min_lr=-1.0), r"min_lr=-1\.0"),
    (lambda: InverseSqrt(1e-3, -4), r"warmup_steps=-4 must be >= 0"),
    (lambda: InverseSqrt(-1e-3, 4), r"max_lr=-0\.001"),
    (lambda: Polynomial(1e-2, 10, 11), r"warmup_steps=11 must be <= total_steps=10"),
    (lambda: Polynomial(1e-2, 10, power=0.0), r"power=0\.0 must be a finite number > 0"),
    (lambda: Polynomial(1e-2, 10, end_lr=-1e-7), r"end_lr=-1e-07"),
    (lambda: ExponentialRamp(0.0, 10.0, 100), r"start_lr=0\.0 must be a finite number > 0"),
    (lambda: ExponentialRamp(1e-7, 0.0, 100), r"end_lr=0\.0 must be a finite number > 0"),
    (lambda: ExponentialRamp(1e-7, 10.0, -1), r"steps=-1 must be >= 0"),
    (lambda: ExponentialRamp(1e-320, 1e300, 10), r"must be a finite, non-zero ratio"),
    (lambda: CosineRestarts(0.1, 0), r"cycle_steps=0 must be >= 1"),
    (lambda: CosineRestarts(0.1, 10, cycle_mult=0.5), r"cycle_mult=0\.5 must be >= 1"),
    (lambda: CosineRestarts(0.1, 10, cycle_mult=-2.0), r"cycle_mult=-2\.0"),
    (lambda: CosineRestarts(0.1, 10, min_lr=-1.0), r"min_lr=-1\.0"),
    (lambda: CosineRestarts(0.1, 10, warmup_steps=2.5), r"warmup_steps=2\.5 must be an int"),
    (lambda: CosineRestarts(0.1, 10, land_on_min=1), r"land_on_min=1 must be a bool"),
    (lambda: Sequence([]), r"Sequence needs a part with steps >= 1"),
    (lambda: Sequence([(Constant(0.1), 0)]), r"Sequence needs a part with steps >= 1"),
    (lambda: Sequence([(0.1, 5)]), r"parts\[0\] schedule=0\.1 is not a Schedule"),
    (lambda: Sequence([(Constant(0.1), 5), ("cos", 5)]), r"parts\[1\] schedule='cos'"),
    (lambda: Sequence([Constant(0.1)]), r"parts\[0\]=Constant\(lr=0\.1\) must be a pair"),
    (lambda: Sequence([(Constant(0.1), -5)]), r"parts\[0\] steps=-5 must be >= 0"),
    (lambda: Sequence([(Constant(0.1), 2.0)]), r"parts\[0\] steps=2\.0 must be an int"),
    (lambda: Sequence([(Constant(0.1), True)]), r"parts\[0\] steps=True must be an int"),
]


@pytest.mark.parametrize("make, pattern", INVALID, ids=[p for _, p in INVALID])
def test_invalid_parameters_raise_naming_the_parameter(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("step", [-1, 1.5, 2.0, True, "3", None])
@pytest.mark.parametrize("schedule", [Constant(0.1), WCOS, Sequence([(WCOS, 5), (WCOS, 5)])])
def test_lr_at_rejects_steps_that_are_not_ints_from_zero(schedule, step):
    with pytest.raises(ValueError, match=r"step=.* must be an int >= 0"):
        schedule.lr_at(step)


# --- repr -----------------------------------------------------------------------------------------


def test_repr_is_readable_and_round_trips():
    assert repr(WCOS) == (
        "WarmupCosine(max_lr=0.001, warmup_steps=4, total_steps=10, min_lr=1e-05, start_lr=0.0)"
    )
    assert repr(Sequence([(Constant(0.1), 0), (Warmup(1.0, 2), 3)])) == (
        "Sequence(parts=((Constant(lr=0.1), 0), (Warmup(max_lr=1.0, warmup_steps=2, "
        "start_lr=0.0), 3)))"
    )
    namespace = {cls.__name__: cls for cls in ALL_KINDS}
    for schedule in EVERY_SCHEDULE:
        assert eval(repr(schedule), namespace) == schedule, repr(schedule)


# --- Sequence semantics (DESIGN.md) ---------------------------------------------------------------


def test_sequence_part_j_covers_its_updates_at_its_local_step():
    """Part j covers offset_j < k <= offset_j + steps_j at local step k - offset_j."""
    parts = [(Warmup(1.0, 4), 2), (Warmup(2.0, 4), 3), (Polynomial(3.0, 11), 2)]
    schedule = Sequence(parts)
    expected = {
        0: 0.0,  # before any update: the first part at step 0
        1: 0.25,
        2: 0.5,  # part 0, local 1 and 2
        3: 0.5,  # part 1's own update 1: its warmup's first non-zero lr, 2.0 / 4
        5: 1.5,
        6: 3.0,  # part 2, local 1: Polynomial(3, 11).lr_at(1), its peak (no warmup)
        7: 2.7,
        9: 2.1,  # the last part runs on past its 2 steps
        12: 1.2,
        13: 0.9,
        16: 0.0,
        HUGE: 0.0,
    }
    for k, want in expected.items():
        assert schedule.lr_at(k) == pytest.approx(want, rel=1e-12, abs=1e-300), k


@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_sequence_zero_step_part_is_indistinguishable_from_absent(position):
    parts = [(Warmup(1.0, 4), 4), (WarmupCosine(1.0, 0, 6, 0.1), 6), (Constant(0.1), 5)]
    with_zero = Sequence(parts[:position] + [(Constant(7.0), 0)] + parts[position:])
    without = Sequence(parts)
    assert torch.equal(with_zero.table(), without.table())
    assert with_zero.boundaries() == without.boundaries()
    steps = list(range(20))
    assert [with_zero.lr_at(k) for k in steps] == [without.lr_at(k) for k in steps]


def test_sequence_nested_equals_flat():
    a, b, c = Warmup(1.0, 3), WarmupCosine(1.0, 0, 5, 0.2), ExponentialRamp(0.2, 0.02, 4)
    nested = Sequence([(Sequence([(a, 3), (b, 5)]), 8), (c, 4)])
    flat = Sequence([(a, 3), (b, 5), (c, 4)])
    steps = list(range(20))
    assert_every_evaluator(nested, steps, [flat.lr_at(k) for k in steps])


def test_sequence_nested_inner_last_part_runs_on_until_the_outer_hands_over():
    inner = Sequence([(Constant(1.0), 2), (Polynomial(1.0, 5), 1)])
    schedule = Sequence([(inner, 5), (Constant(9.0), 2)])
    assert [schedule.lr_at(k) for k in range(9)] == [1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 9.0, 9.0, 9.0]


# --- bug-report cases, generalised ----------------------------------------------------------------

BR01_LRS = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 9.336825749e-4, 7.525e-4, 5.05e-4, 2.575e-4]
BR01_LRS += [7.631742513e-5, 1e-5]


@pytest.mark.interpreter
def test_br01_warmup_cosine_updates_one_to_ten():
    """BR-01: the first warmup update is not 0; updates 1..10 as printed (10 digits)."""
    assert_every_evaluator(WCOS, list(range(1, 11)), BR01_LRS, rel=1e-9)


# (schedule, lr of update 1 = lin(start, max, 1 / W)) for every schedule with a warmup.
FIRST_WARMUP_UPDATE = [
    (Warmup(1e-3, 4), 2.5e-4),
    (Warmup(1e-3, 10, start_lr=1e-4), 1.9e-4),
    (WCOS, 2.5e-4),
    (OneCycle(0.01, 100, 30), 7.2e-4),
    (WarmupStableDecay(1e-3, 5, 10, 50), 2e-4),
    (InverseSqrt(1e-3, 4), 2.5e-4),
    (Polynomial(1e-2, 110, 10), 1e-3),
    (CosineRestarts(0.1, 10, warmup_steps=5), 0.02),
]


@pytest.mark.interpreter
@pytest.mark.parametrize("schedule, first", FIRST_WARMUP_UPDATE, ids=lambda v: repr(v)[:30])
def test_br01_first_update_of_every_warmup_is_not_zero(schedule, first):
    assert_every_evaluator(schedule, [0, 1], [schedule.lr_at(0), first])
    assert first > 0.0


def test_br01_a_later_sequence_part_starts_its_warmup_at_its_own_update_one():
    schedule = Sequence([(Constant(0.5), 3), (WCOS, 10)])
    assert schedule.lr_at(4) == 2.5e-4


# Schedules that hold max_lr after the warmup (or clamp at k = 1): with W = 0 update 1 uses
# exactly max_lr.
W0_UPDATE_ONE_IS_MAX = [
    Warmup(1e-3, 0),
    Warmup(1e-3, 0, start_lr=5e-4),
    WarmupStableDecay(1e-3, 0, 10, 50, min_lr=1e-5),
    InverseSqrt(1e-3, 0),
    InverseSqrt(1e-3, 1),
]


@pytest.mark.interpreter
@pytest.mark.parametrize("schedule", W0_UPDATE_ONE_IS_MAX, ids=repr)
def test_br02_no_warmup_first_update_uses_exactly_max_lr(schedule):
    for name, values in every_evaluator(schedule, [1]).items():
        assert values == [1e-3], name


# Schedules that decay from the peak start the decay at P = max(1, W): with W = 0 the peak is
# both the value before any update and update 1's, and the decay reaches its end at T.
W0_DECAY_FROM_UPDATE_ONE = [
    (WarmupCosine(1e-3, 0, 10, min_lr=1e-5), cos(1e-3, 1e-5, 1 / 9), 1e-5),
    (OneCycle(0.01, 100, 0), cos(0.01, 1e-6, 1 / 99), cos(0.01, 1e-6, 9 / 99)),
    (Polynomial(1e-3, 10, 0, power=2.0), 1e-3 * (1 - 1 / 9) ** 2, 0.0),
    (CosineRestarts(1e-3, 10), cos(1e-3, 0.0, 0.1), cos(1e-3, 0.0, 0.9)),
]


@pytest.mark.interpreter
@pytest.mark.parametrize(
    "schedule, update_two, update_ten", W0_DECAY_FROM_UPDATE_ONE, ids=lambda v: str(v)[:30]
)
def test_br02_no_warmup_decay_starts_at_max_on_update_one(schedule, update_two, update_ten):
    top = schedule.max_lr
    assert_every_evaluator(schedule, [0, 1, 2, 10], [top, top, update_two, update_ten])


DEGENERATE_W = [
    Warmup(1e-3, 0),
    Warmup(1e-3, 1),
    WarmupCosine(1e-3, 0, 10),
    WarmupCosine(1e-3, 1, 10),
    WarmupCosine(1e-3, 0, 0),
    WarmupCosine(1e-3, 1, 1),
    OneCycle(0.01, 10, 0),
    OneCycle(0.01, 10, 1),
    OneCycle(0.01, 0, 0),
    OneCycle(0.01, 10, 0, final_drop=(0.5, 0.1)),
    WarmupStableDecay(1e-3, 0, 0, 0),
    WarmupStableDecay(1e-3, 1, 0, 1, decay="sqrt"),
    WarmupStableDecay(1e-3, 0, 1, 1, decay="cosine"),
    InverseSqrt(1e-3, 0),
    InverseSqrt(1e-3, 1),
    Polynomial(1e-3, 0, 0, power=0.5),
    Polynomial(1e-3, 1, 1),
    ExponentialRamp(1e-3, 1e-5, 0),
    ExponentialRamp(1e-3, 1e-5, 1),
    CosineRestarts(1e-3, 1),
    CosineRestarts(1e-3, 1, 2.0, warmup_steps=1, land_on_min=True),
    Sequence([(WarmupCosine(1e-3, 0, 0), 1), (InverseSqrt(1e-3, 0), 0), (InverseSqrt(1, 1), 1)]),
]


@pytest.mark.interpreter
@pytest.mark.parametrize("schedule", DEGENERATE_W, ids=repr)
def test_br02_warmup_zero_or_one_is_finite_everywhere(schedule):
    """No exception, inf or NaN for W in {0, 1} (and T in {0, 1}), in every evaluator."""
    steps = [0, 1, 2, 3, 10, 2**40, HUGE]
    assert_every_evaluator(schedule, steps, [schedule.lr_at(k) for k in steps], abs=1e-18)


# (schedule, k, lr at k, lr at k + 1): a phase of 0 steps drops to its end value on the step
# after the phase before it.
ZERO_LENGTH_DROPS = [
    (WarmupCosine(1e-3, 10, 10, min_lr=1e-5), 10, 1e-3, 1e-5),
    (OneCycle(0.01, 30, 30), 30, 0.01, 1e-6),
    (OneCycle(0.01, 40, 10, final_drop=(0.0, 0.1)), 40, 1e-6, 1e-7),
    (WarmupStableDecay(1e-3, 5, 0, 20, min_lr=1e-5), 20, 1e-3, 1e-5),
    (WarmupStableDecay(1e-3, 0, 0, 0, min_lr=1e-5, decay="cosine"), 0, 1e-3, 1e-5),
    (Polynomial(1e-2, 100, 100, end_lr=1e-7, power=2.0), 100, 1e-2, 1e-7),
    (ExponentialRamp(1e-7, 10.0, 0), 0, 1e-7, 10.0),
]


@pytest.mark.interpreter
@pytest.mark.parametrize("schedule, k, before, after", ZERO_LENGTH_DROPS, ids=lambda v: str(v)[:30])
def test_degenerate_zero_length_phase_drops_on_the_next_step(schedule, k, before, after):
    assert_every_evaluator(schedule, [k, k + 1, k + 2, HUGE], [before, after, after, after])


def test_degenerate_one_step_restart_cycles_stay_at_max():
    for schedule in (CosineRestarts(1e-3, 1), CosineRestarts(1e-3, 1, land_on_min=True)):
        assert [schedule.lr_at(k) for k in range(6)] == [1e-3] * 6


@pytest.mark.interpreter
def test_br04_polynomial_warmup_filling_the_whole_run():
    """BR-04's numbers: at W = T the decay of 0 steps drops to end_lr on update T + 1."""
    degenerate = Polynomial(0.01, 100, 100, end_lr=1e-7, power=2.0)
    assert_every_evaluator(degenerate, [0, 50, 99, 100, 101], [0, 5e-3, 9.9e-3, 1e-2, 1e-7])
    control = Polynomial(0.01, 110, 10, end_lr=1e-7, power=2.0)
    expected = [5e-3, 1e-2, 2.500075e-3, 1e-7, 1e-7]
    assert_every_evaluator(control, [5, 10, 60, 110, 111], expected)


@pytest.mark.interpreter
def test_br06_zero_length_first_part_does_not_leak_into_the_sequence():
    """BR-06: a first part of 0 steps (milestone 0) is skipped: no 0.1, no scaling by it."""
    ramp = ExponentialRamp(1.0, 0.9**10, 10)
    schedule = Sequence([(Constant(0.1), 0), (ramp, 10)])
    steps = list(range(12))
    assert_every_evaluator(schedule, steps[:4], [1.0, 0.9, 0.81, 0.729])
    assert_every_evaluator(schedule, steps, [ramp.lr_at(k) for k in steps])
    assert torch.equal(schedule.table(), Sequence([(ramp, 10)]).table())


@pytest.mark.interpreter
def test_br06_milestones_0_0_1_third_part_at_update_one_fourth_from_update_two():
    third, fourth = Constant(1.0), ExponentialRamp(0.5, 0.05, 4)
    parts = [(Constant(0.1), 0), (Constant(0.2), 0), (third, 1), (fourth, 4)]
    schedule = Sequence(parts)
    steps = list(range(8))
    expected = [1.0, 1.0] + [fourth.lr_at(k - 1) for k in steps[2:]]
    assert_every_evaluator(schedule, steps, expected)
    assert_every_evaluator(Sequence(parts[2:]), steps, expected)


@pytest.mark.interpreter
def test_br10_native_one_cycle_floor_is_max_over_final_div_factor():
    """BR-10: the native floor is max_lr / final_div_factor = 1e-6, not torch's 4e-8."""
    steps = [100, 101, 105, 2**40, HUGE]
    assert_every_evaluator(ONE_CYCLE, steps, [1e-6] * len(steps))
    assert ONE_CYCLE.min_lr == 1e-6 and ONE_CYCLE.initial_lr == 4e-4


BR12_LRS = [1, 0.975528258148, 0.904508497187, 0.793892626146, 0.654508497187, 0.5]
BR12_LRS += [0.345491502813, 0.206107373854, 0.0954915028125, 0.0244717418524, 0]


@pytest.mark.interpreter
def test_br12_warmup_cosine_holds_min_lr_past_the_end():
    """BR-12: without warmup the decay starts at update 1, so update k = 1..11 takes torch's
    closed form at c = k - 1 (T = 11 updates span T_max = 10), then min_lr (0) where torch's
    cosine rises again."""
    schedule = WarmupCosine(1.0, 0, 11)
    assert_every_evaluator(schedule, list(range(14)), [1.0, *BR12_LRS, 0.0, 0.0], abs=1e-12)


def test_br12_closed_form_for_ten_times_the_run_no_recursion():
    """T = 1000: the host and torch evaluators equal the closed form for every k <= 10 T."""
    schedule = WarmupCosine(1.0, 0, 1000, min_lr=1e-3)
    steps = list(range(10 * 1000 + 1))
    expected = [cos(1.0, 1e-3, min(max(k - 1, 0) / 999, 1.0)) for k in steps]
    values = torch_evaluate(schedule.table(device=DEVICE), torch.tensor(steps, device=DEVICE))
    for name, got in (
        ("lr_at", [schedule.lr_at(k) for k in steps]),
        ("evaluate", values.cpu().tolist()),
    ):
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), name


@pytest.mark.interpreter
def test_br12_closed_form_in_the_kernel_at_any_step():
    schedule = WarmupCosine(1.0, 0, 1000, min_lr=1e-3)
    steps = [0, 1, 2, 499, 500, 993, 999, 1000, 1001, 5000, 10_000]
    expected = [cos(1.0, 1e-3, min(max(k - 1, 0) / 999, 1.0)) for k in steps]
    assert_every_evaluator(schedule, steps, expected, abs=1e-15)


BR15_LRS = [0.1, 0.09755290412, 0.09045115529, 0.07938992216, 0.06545195529, 0.0500016]
BR15_LRS += [0.03455124471, 0.02061327784, 0.009552044708, 0.002450295876, 0.1]


@pytest.mark.interpreter
def test_br15_restarts_default_never_lands_on_min_like_torch():
    """BR-15: without warmup cycles start on update 1, so update k takes torch's value at
    c = k - 1; the position runs 0..9 in each cycle and the floor is 0.002450295876."""
    schedule = CosineRestarts(0.1, 10, min_lr=3.2e-6)
    assert_every_evaluator(schedule, list(range(12)), [0.1, *BR15_LRS], rel=1e-9)
    assert_every_evaluator(schedule, [2**40 + 1, HUGE + 1], [BR15_LRS[6]] * 2, rel=1e-9)
    lrs = [schedule.lr_at(k) for k in range(100)]
    assert min(lrs) == pytest.approx(0.002450295876, rel=1e-9)


@pytest.mark.interpreter
@pytest.mark.parametrize("mult, warmup", [(1.0, 0), (2.0, 3), (1.5, 2)])
def test_br15_land_on_min_lands_exactly_on_min_at_each_cycles_last_update(mult, warmup):
    schedule = CosineRestarts(0.1, 10, mult, min_lr=3.2e-6, warmup_steps=warmup, land_on_min=True)
    starts, length = [0.0], 10.0
    for _ in range(3):
        starts.append(starts[-1] + length)
        length *= mult
    # Cycles start at update max(1, W). A cycle's last update is the last whole step before
    # the next start (47.5 for 1.5).
    first = max(1, warmup)
    last_updates = [first + math.ceil(s) - 1 for s in starts[1:]]
    assert_every_evaluator(schedule, last_updates, [3.2e-6] * 3, rel=1e-12)
    restarts = [first + int(s) for s in starts[1:] if s == int(s)]
    assert_every_evaluator(schedule, restarts, [0.1] * len(restarts), rel=1e-12)


# --- catalogue for repr and the everywhere-finite sweep -------------------------------------------

ALL_KINDS = [
    Constant,
    Warmup,
    WarmupCosine,
    OneCycle,
    WarmupStableDecay,
    InverseSqrt,
    Polynomial,
    ExponentialRamp,
    CosineRestarts,
    Sequence,
]
EVERY_SCHEDULE = [s for _, s, _ in PINS] + [s for s, *_ in SHAPES] + DEGENERATE_W


def test_every_kind_is_covered():
    assert {type(s) for s in EVERY_SCHEDULE} == set(ALL_KINDS)


@pytest.mark.parametrize("schedule", EVERY_SCHEDULE, ids=lambda s: repr(s)[:40])
def test_never_negative_nor_nan_anywhere(schedule):
    steps = [*range(300), 10**6, 2**40, HUGE]
    assert all(math.isfinite(v) and v >= 0.0 for v in map(schedule.lr_at, steps))
