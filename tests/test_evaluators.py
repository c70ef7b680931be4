"""The evaluators of one phase table agree at every step, for every native schedule.

Four ways to get the lr of update k from one schedule:

- ``Schedule.lr_at(k)``: the readable float64 formula, the specification;
- ``fused_sched.table.host_value(phases, k)``: the table's rows walked in Python floats;
- ``fused_sched.evaluate(table, step)``: torch ops, float64, 0-dim or batched, graph-safe;
- ``evaluate_triton(table, steps)``: the ``@triton.jit`` device function ``schedule_lr`` that
  the update kernels inline (through the Triton interpreter on a machine without CUDA).

The host and torch evaluators sweep every step 0..T+20 of every case; the Triton interpreter
costs milliseconds a program, so it gets the boundaries and a stride through the same range.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fused_sched import (
    Constant,
    CosineRestarts,
    ExponentialRamp,
    InverseSqrt,
    OneCycle,
    Polynomial,
    Sequence,
    Warmup,
    WarmupCosine,
    WarmupStableDecay,
    evaluate,
)
from fused_sched.table import host_value, shapes_of
from fused_sched.triton_eval import evaluate_triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Every evaluator runs in float64. rtol 1e-12 (some 4500 ulps) leaves room for algebraically
# equal forms of one formula (lin(a, b, q) on the host, b + (a - b) * (1 - q) ** 1 in the table)
# and for cos/pow/exp/log from libm, ATen, numpy or libdevice, each within an ulp or two. The
# atol, 1e-14 of the schedule's largest lr, is for values that are small differences of lrs
# near the peak: a cosine to min_lr = 0 ends in 1 + cos(pi * q) ~ 0, where an ulp of cos is an
# ulp of the peak, not of the value.
RTOL = 1e-12
ATOL_OF_PEAK = 1e-14
HUGE = (2**40, 2**52)

# (id, schedule, T): the sweep covers k = 0..T+20, the boundaries and HUGE.
CASES = [
    ("constant", Constant(0.1), 5),
    ("constant-zero", Constant(0.0), 3),
    ("warmup", Warmup(1e-3, 4), 8),
    ("warmup-W0", Warmup(1e-3, 0), 4),
    ("warmup-W1", Warmup(1e-3, 1), 4),
    ("warmup-start", Warmup(2e-2, 7, start_lr=1e-4), 10),
    ("wcos-br01", WarmupCosine(1e-3, 4, 10, min_lr=1e-5), 10),
    ("wcos-W0", WarmupCosine(1e-3, 0, 10), 10),
    ("wcos-T=W", WarmupCosine(1e-3, 10, 10, min_lr=1e-5), 10),
    ("wcos-W1-T1", WarmupCosine(1e-3, 1, 1), 1),
    ("wcos-start", WarmupCosine(3e-4, 25, 200, min_lr=3e-5, start_lr=1e-6), 200),
    ("onecycle", OneCycle(0.01, 100, 30), 100),
    ("onecycle-drop", OneCycle(0.01, 100, 30, final_drop=(0.1, 0.01)), 100),
    ("onecycle-W0-drop", OneCycle(0.01, 10, 0, final_drop=(0.5, 0.1)), 10),
    ("onecycle-drop0", OneCycle(0.01, 40, 10, final_drop=(0.0, 0.1)), 40),
    ("onecycle-T=W", OneCycle(0.1, 50, 50, div_factor=10.0, final_div_factor=100.0), 50),
    ("wsd-linear", WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5), 50),
    ("wsd-cosine", WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5, decay="cosine"), 50),
    ("wsd-sqrt", WarmupStableDecay(1e-3, 5, 10, 50, min_lr=1e-5, decay="sqrt"), 50),
    ("wsd-W0-D0", WarmupStableDecay(1e-3, 0, 0, 10), 10),
    ("wsd-D0-sqrt", WarmupStableDecay(1e-3, 5, 0, 5, decay="sqrt"), 5),
    ("wsd-no-stable", WarmupStableDecay(1e-3, 3, 7, 10, decay="cosine"), 10),
    ("isqrt-W0", InverseSqrt(1e-3, 0), 30),
    ("isqrt-W1", InverseSqrt(1e-3, 1), 30),
    ("isqrt-W4", InverseSqrt(1e-3, 4), 30),
    ("poly", Polynomial(1e-2, 110, 10, end_lr=1e-7, power=2.0), 110),
    ("poly-T=W", Polynomial(1e-2, 100, 100, end_lr=1e-7, power=2.0), 100),
    ("poly-sqrt", Polynomial(1e-2, 10, 0, power=0.5), 10),
    ("poly-cubic", Polynomial(1.0, 30, 3, end_lr=0.1, power=3.0), 30),
    ("exp-range-test", ExponentialRamp(1e-7, 10.0, 100), 100),
    ("exp-0-steps", ExponentialRamp(1e-7, 10.0, 0), 2),
    ("exp-down", ExponentialRamp(2.0, 0.5, 7), 7),
    ("restarts", CosineRestarts(0.1, 10, min_lr=3.2e-6), 40),
    ("restarts-x2-W3", CosineRestarts(0.1, 10, 2.0, warmup_steps=3), 75),
    ("restarts-x1.5-land", CosineRestarts(0.1, 7, 1.5, 1e-4, 2, land_on_min=True), 60),
    ("restarts-L1-land", CosineRestarts(0.1, 1, land_on_min=True), 5),
    ("restarts-L1-x2", CosineRestarts(0.1, 1, 2.0), 40),
    ("restarts-L2-land", CosineRestarts(0.1, 2, land_on_min=True), 8),
    # cycle_mult not exact in binary: whole-number cycle starts (13, 7, 10, 11) computed an ulp
    # late once made the evaluators disagree by the whole range there.
    ("restarts-x1.2", CosineRestarts(1.0, 5, 1.2, land_on_min=True), 50),
    ("restarts-x1.2-L13", CosineRestarts(1.0, 13, 1.2), 40),
    ("restarts-x1.3-L7", CosineRestarts(1.0, 7, 1.3, 0.1, 1), 40),
    ("restarts-x1.9-L10", CosineRestarts(1.0, 10, 1.9, land_on_min=True), 40),
    ("seq-br06", Sequence([(Constant(0.1), 0), (ExponentialRamp(1.0, 0.9**10, 10), 10)]), 10),
    (
        "seq-three",
        Sequence([(Warmup(1e-3, 4), 4), (WarmupCosine(1e-3, 0, 10), 10), (Constant(1e-5), 5)]),
        19,
    ),
    (
        "seq-nested-zero",
        Sequence(
            [
                (Sequence([(Constant(1.0), 2), (Constant(2.0), 0), (Polynomial(3.0, 5), 3)]), 5),
                (InverseSqrt(1.0, 2), 3),
            ]
        ),
        8,
    ),
    (
        "seq-milestones-0-0-1",
        Sequence(
            [
                (Constant(0.5), 0),
                (Constant(0.25), 0),
                (Constant(1.0), 1),
                (ExponentialRamp(1.0, 0.5, 4), 4),
            ]
        ),
        5,
    ),
    (
        "seq-restarts-onecycle",
        Sequence(
            [
                (OneCycle(0.01, 20, 5, final_drop=(0.2, 0.1)), 20),
                (CosineRestarts(1e-3, 4, 1.5, warmup_steps=2), 0),
                (CosineRestarts(1e-3, 4, 1.5, warmup_steps=2, land_on_min=True), 15),
            ]
        ),
        35,
    ),
]
IDS = [case[0] for case in CASES]


def peak(schedule) -> float:
    return max(max(abs(row.a), abs(row.b)) for row in schedule.phases())


def probe_steps(schedule, end: int) -> list[int]:
    """Step 0, the end, each phase boundary and its neighbours, past the end, and HUGE."""
    marks = {0, end, *schedule.boundaries()}
    near = {k + d for k in marks for d in (-1, 0, 1)} | {end + 20, *HUGE}
    return sorted(k for k in near if k >= 0)


def sweep_steps(schedule, end: int) -> list[int]:
    return sorted(set(range(end + 21)) | set(probe_steps(schedule, end)))


def triton_steps(schedule, end: int, budget: int = 30) -> list[int]:
    """The probe steps plus a stride through 0..T+20, about ``budget`` steps in all."""
    probes = probe_steps(schedule, end)
    stride = max(1, (end + 21) // max(1, budget - len(probes)))
    return sorted(set(probes) | set(range(0, end + 21, stride)))


def assert_agree(name, schedule, steps, values):
    """``values`` (one per step) match ``lr_at``; all finite and >= 0."""
    expected = [schedule.lr_at(k) for k in steps]
    atol = ATOL_OF_PEAK * peak(schedule)
    for k, want, got in zip(steps, expected, values, strict=True):
        assert math.isfinite(got) and got >= 0.0, f"{name}: lr({k}) = {got}"
        assert got == pytest.approx(want, rel=RTOL, abs=atol), f"{name}: lr({k})"


def torch_values(schedule, steps, shapes=None) -> list[float]:
    table = schedule.table(device=DEVICE)
    step = torch.tensor(steps, dtype=torch.int64, device=DEVICE)
    return evaluate(table, step, shapes).cpu().tolist()


def triton_values(schedule, steps) -> list[float]:
    table = schedule.table(device=DEVICE)
    step = torch.tensor(steps, dtype=torch.int64, device=DEVICE)
    return evaluate_triton(table, step).cpu().tolist()


# --- sweeps of every native schedule --------------------------------------------------------------


@pytest.mark.parametrize("name, schedule, end", CASES, ids=IDS)
def test_host_table_and_torch_agree_with_lr_at_on_every_step(name, schedule, end):
    steps = sweep_steps(schedule, end)
    spec = [schedule.lr_at(k) for k in steps]
    assert all(math.isfinite(v) and v >= 0.0 for v in spec), name

    assert_agree("host_value", schedule, steps, [host_value(schedule.phases(), k) for k in steps])
    batched = torch_values(schedule, steps)
    assert_agree("evaluate", schedule, steps, batched)
    # Computing only the shapes the table uses selects among the same formulas: bit for bit.
    assert torch_values(schedule, steps, shapes_of(schedule.phases())) == batched


@pytest.mark.parametrize("name, schedule, end", CASES, ids=IDS)
def test_torch_scalar_step_gives_the_batched_value(name, schedule, end):
    # Not bit for bit: ATen's vectorised pow/cos (batched) and its scalar ones may differ by an ulp.
    table = schedule.table(device=DEVICE)
    steps = probe_steps(schedule, end)
    batched = evaluate(table, torch.tensor(steps, device=DEVICE)).cpu().tolist()
    atol = ATOL_OF_PEAK * peak(schedule)
    for k, want in zip(steps, batched, strict=True):
        for step in (k, torch.tensor(k, device=DEVICE)):
            got = evaluate(table, step)
            assert got.shape == () and got.dtype == torch.float64
            assert got.item() == pytest.approx(want, rel=RTOL, abs=atol), (k, step)


@pytest.mark.interpreter
@pytest.mark.parametrize("name, schedule, end", CASES, ids=IDS)
def test_triton_agrees_with_lr_at(name, schedule, end):
    steps = triton_steps(schedule, end)
    assert_agree("schedule_lr", schedule, steps, triton_values(schedule, steps))


# --- property test over random valid parameters ---------------------------------------------------

LRS = st.floats(1e-6, 1.0)
LENGTHS = st.integers(0, 40)
# Cycle growth: exact (1, 2, 1.5, 3) and any float in [1.05, 4]. Below 1.05 the host spec's walk
# through hundreds of cycles accumulates rounding beyond 1e-12; the table evaluators stay exact
# there (test_restart_position_is_exact_for_cycle_mult_near_one).
MULTS = st.one_of(st.sampled_from([1.0, 1.5, 2.0, 3.0]), st.floats(1.05, 4.0))


@st.composite
def leaf_schedules(draw):
    kind = draw(
        st.sampled_from(
            ["const", "warmup", "wcos", "onecycle", "wsd", "isqrt", "poly", "exp", "restarts"]
        )
    )
    lr, n = (lambda: draw(LRS)), (lambda: draw(LENGTHS))
    if kind == "const":
        return Constant(lr())
    if kind == "warmup":
        return Warmup(lr(), n(), start_lr=draw(st.sampled_from([0.0, 1e-6, 3e-4])))
    if kind == "isqrt":
        return InverseSqrt(lr(), n())
    if kind == "exp":
        return ExponentialRamp(lr(), lr(), n())
    if kind == "restarts":
        return CosineRestarts(lr(), n() + 1, draw(MULTS), lr() / 10, n(), draw(st.booleans()))
    total = n() + n()
    if kind == "wcos":
        return WarmupCosine(lr(), draw(st.integers(0, total)), total, lr() / 10, lr() / 10)
    if kind == "poly":
        power = draw(st.floats(0.1, 4.0))
        return Polynomial(lr(), total, draw(st.integers(0, total)), lr() / 10, power)
    if kind == "wsd":
        decay = draw(st.integers(0, total))
        warmup = draw(st.integers(0, total - decay))
        shape = draw(st.sampled_from(["linear", "cosine", "sqrt"]))
        return WarmupStableDecay(lr(), warmup, decay, total, lr() / 10, shape)
    drop = draw(st.one_of(st.none(), st.tuples(st.floats(0.0, 0.5), st.floats(0.0, 1.0))))
    cosine_end = total if drop is None else total - round(drop[0] * total)
    warmup = draw(st.integers(0, cosine_end))
    divs = draw(st.floats(1.0, 100.0)), draw(st.floats(1.0, 1e4))
    return OneCycle(lr(), total, warmup, *divs, final_drop=drop)


SCHEDULES = st.recursive(
    leaf_schedules(),
    lambda parts: (
        st.lists(st.tuples(parts, st.integers(0, 15)), min_size=1, max_size=3)
        .filter(lambda ps: any(steps for _, steps in ps))
        .map(Sequence)
    ),
    max_leaves=5,
)


def random_steps(schedule, data, count):
    probes = probe_steps(schedule, max(schedule.boundaries(), default=0) + 10)
    extra = data.draw(st.lists(st.integers(0, 300), min_size=count, max_size=count))
    return sorted(set(probes) | set(extra))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(schedule=SCHEDULES, data=st.data())
def test_property_torch_and_host_table_agree_with_lr_at(schedule, data):
    steps = random_steps(schedule, data, 40)
    assert_agree("host_value", schedule, steps, [host_value(schedule.phases(), k) for k in steps])
    assert_agree("evaluate", schedule, steps, torch_values(schedule, steps))


@pytest.mark.interpreter
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(schedule=SCHEDULES, data=st.data())
def test_property_triton_agrees_with_lr_at(schedule, data):
    steps = random_steps(schedule, data, 8)
    assert_agree("schedule_lr", schedule, steps, triton_values(schedule, steps))


# --- accuracy of the restart position against exact arithmetic ------------------------------------


def exact_restarts(schedule: CosineRestarts, k: int) -> float:
    """lr of a CosineRestarts at k with the cycle position in exact rational arithmetic."""
    if k < schedule.warmup_steps:
        return schedule.lr_at(k)
    u, length = Fraction(k - schedule.warmup_steps), Fraction(schedule.cycle_steps)
    while u >= length:
        u, length = u - length, length * Fraction(schedule.cycle_mult)
    divisor = max(length - 1, Fraction(1)) if schedule.land_on_min else length
    q = float(min(u / divisor, Fraction(1)))
    lo, hi = schedule.min_lr, schedule.max_lr
    return lo + (hi - lo) * (1.0 + math.cos(math.pi * q)) / 2.0


@pytest.mark.parametrize("mult", [1.0000001, 1.001, 1.2, 1.5, 2.0, 3.7])
@pytest.mark.parametrize("land", [False, True])
def test_restart_position_is_exact_for_cycle_mult_near_one(mult, land):
    """Cycle starts use expm1, so mult**n - 1 does not cancel when mult is near 1 (it cost 2e-8
    of the lr, relative, at mult 1.0000001). What float64 can give: a start near k = 400 is known
    to an ulp of 400, 6e-14, a few 1e-14 of a cycle of two or three steps; hence atol 2e-13."""
    schedule = CosineRestarts(1.0, 2, mult, 0.0, 3, land_on_min=land)
    steps = list(range(0, 400, 3))
    expected = [exact_restarts(schedule, k) for k in steps]
    evaluators = {
        "host_value": [host_value(schedule.phases(), k) for k in steps],
        "evaluate": torch_values(schedule, steps),
    }
    for name, values in evaluators.items():
        for k, want, got in zip(steps, expected, values, strict=True):
            assert got == pytest.approx(want, rel=RTOL, abs=2e-13), (name, k)


@pytest.mark.interpreter
@pytest.mark.parametrize("mult", [1.0000001, 1.2])
def test_triton_restart_position_is_exact_for_cycle_mult_near_one(mult):
    schedule = CosineRestarts(1.0, 2, mult, 0.0, 3, land_on_min=True)
    steps = list(range(0, 400, 23))
    for k, got in zip(steps, triton_values(schedule, steps), strict=True):
        assert got == pytest.approx(exact_restarts(schedule, k), rel=RTOL, abs=2e-13), k


# --- graph safety of the torch evaluator ----------------------------------------------------------

# Same row count (8), different schedules: one compiled graph must serve them all.
COMPILE_SCHEDULES = [
    WarmupCosine(1e-3, 4, 10, min_lr=1e-5),
    OneCycle(0.01, 100, 30, final_drop=(0.1, 0.01)),
    CosineRestarts(0.1, 7, 1.5, 1e-4, 2, land_on_min=True),
    Sequence([(Warmup(1e-3, 4), 4), (InverseSqrt(1e-3, 2), 10), (ExponentialRamp(1, 2, 3), 3)]),
]


def test_evaluate_compiles_fullgraph_once_for_all_table_values_and_steps():
    """torch.compile(fullgraph=True) traces evaluate once per step shape; new table values, new
    schedules with the same row count and new step values reuse that graph. A counting eager
    backend sees every (re)compilation and needs no C++ compiler."""
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(evaluate, fullgraph=True, backend=counting_backend)
    tables = [s.table(device=DEVICE) for s in COMPILE_SCHEDULES]
    assert {t.shape for t in tables} == {(8, 8)}

    counter = torch.zeros((), dtype=torch.int64, device=DEVICE)
    for table in tables:
        for k in (0, 1, 4, 5, 31, 1000, *HUGE):
            counter.fill_(k)  # the optimizer's device counter, advanced in place
            assert torch.equal(compiled(table, counter), evaluate(table, counter)), k
    assert len(graphs) == 1

    steps = torch.arange(0, 40, device=DEVICE)
    for table in tables:
        for shift in (0, 100, 2**40):
            assert torch.equal(compiled(table, steps + shift), evaluate(table, steps + shift))
    assert len(graphs) == 2  # one more for the batched step, none for its values
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "read",
    [
        lambda t: t.item(),
        lambda t: t.tolist(),
        lambda t: bool(t > 0),
        lambda t: float(t),
        lambda t: int(t),
        lambda t: torch.equal(t, t),
        lambda t: [0, 1][t],
    ],
    ids=["item", "tolist", "bool", "float", "int", "equal", "index"],
)
def test_the_host_read_guard_catches_reads(no_host_reads, read):
    value = torch.tensor(1, device=DEVICE)
    with pytest.raises(AssertionError, match="on the host"), no_host_reads():
        read(value)


@pytest.mark.parametrize("schedule", COMPILE_SCHEDULES, ids=lambda s: type(s).__name__)
def test_evaluate_never_reads_a_tensor_value_on_the_host(no_host_reads, schedule):
    table = schedule.table(device=DEVICE)
    counter = torch.tensor(7, device=DEVICE)
    steps = torch.arange(0, 50, device=DEVICE)
    with no_host_reads():
        one = evaluate(table, counter)
        many = evaluate(table, steps)
        subset = evaluate(table, steps, shapes_of(schedule.phases()))
        python_int = evaluate(table, 7)
    torch.testing.assert_close(one, python_int, rtol=0, atol=0)
    torch.testing.assert_close(many, subset, rtol=0, atol=0)
    assert many.shape == (50,)


# --- the Triton kernel specialises on the row count only ------------------------------------------


def test_triton_kernel_specialises_on_row_count_only(monkeypatch):
    """A schedule's numbers are data for the kernel: changing them never recompiles.

    Under the interpreter there is no compile cache to watch, so this asks Triton itself what
    key it would cache a compiled kernel under. ``JITFunction.run`` keys its cache with
    ``compute_cache_key(specialization, options)``, the specialization coming from a binder made
    by ``create_function_from_signature`` (triton/runtime/jit.py, Triton 3.9). The test records
    the arguments ``evaluate_triton`` really launches with (no launch), builds that binder for an
    sm_90 target (offline: no GPU needed) and computes the key. Different schedules and steps
    with the same row count give one key; the table appears as a ``*fp64`` pointer (its values
    are never looked at) and ROWS is the only constexpr, so another row count is another key.
    Chosen over an offline ``triton.compile``: it checks the launcher's real arguments against
    the real cache key, in milliseconds, without a subprocess free of the interpreter.
    """
    from fused_sched.kernels import schedule as kernel_module
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import JITFunction, compute_cache_key, create_function_from_signature

    jit = JITFunction(kernel_module.schedule_lr_kernel.fn)
    assert [p.name for p in jit.params if p.is_constexpr] == ["ROWS"]
    backend = make_backend(GPUTarget("cuda", 90, 32))
    binder = create_function_from_signature(jit.signature, jit.params, backend)

    launches = []

    class RecordLaunch:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((args, kwargs))

    monkeypatch.setattr(kernel_module, "schedule_lr_kernel", RecordLaunch())
    runs = [(s, torch.arange(0, 5 + i)) for i, s in enumerate(COMPILE_SCHEDULES)]
    runs.append((Constant(0.5), torch.tensor([2**52])))
    runs.append((Sequence([(Constant(1.0), 1)] * 9), torch.arange(3)))  # 9 phases: 16 rows
    for schedule, steps in runs:
        evaluate_triton(schedule.table(device=DEVICE), steps)

    keys, specializations = [], []
    for args, kwargs in launches:
        _, specialization, options = binder(*args, **kwargs)
        specializations.append(specialization)
        keys.append(compute_cache_key({}, specialization, options))
    assert len(set(keys[:-1])) == 1, keys
    assert keys[-1] != keys[0]
    table_type, *_, rows = specializations[0]
    assert table_type[0] == "*fp64" and rows == ("constexpr", 8)
    assert specializations[-1][-1] == ("constexpr", 16)
