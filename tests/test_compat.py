"""fused_sched.compat against the schedulers it rebuilds, run side by side.

A peer is run in the usual loop: read ``optimizer.param_groups[0]["lr"]``, ``optimizer.step()``,
``scheduler.step()``; the value read before the k-th step is the peer's value at c = k - 1 and
must equal ``lr_at(k)``. Past the peer's end (where it raises, extrapolates or rises again) the
compat schedule must hold the peer's last value for EXTRA more updates.

Tolerance: rtol 1e-12 plus an atol of 8 ulps of the schedule's largest level. Both sides compute
in float64 but in different orders, e.g. torch's linear anneal ``(end - start) * pct + start``
against the table's ``B + (A - B) * (1 - q)``, and either form cancels near a floor far below the
peak: its absolute error is an ulp or so of the peak, whatever the result's size. Measured: where
the relative bound alone fails (6e-12 at a one-cycle linear anneal's floor of 4e-8 under a peak
of 0.01) the difference is 0.1 ulp of the peak; the device evaluators' cos, pow and exp/log add
a few ulps more. A wrong phase boundary or floor is off by many orders more than either bound.
"""

import inspect
import itertools
import math
import warnings
from functools import partial

import pytest
import torch
from torch.optim import lr_scheduler

from fused_sched import CosineRestarts, OneCycle, compat, evaluate

RTOL = 1e-12
ULPS = 8 * 2.0**-52
EXTRA = 8  # updates checked past a peer's end
DIGITS_10 = 5e-11  # the bug reports list multipliers rounded to 10 decimals
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def scale_of(schedule) -> float:
    """The schedule's largest level (A or B of any row): the atol's unit."""
    return max(max(abs(row.a), abs(row.b)) for row in schedule.phases())


def assert_lrs(actual, expected, scale, what=""):
    actual = torch.as_tensor(actual, dtype=torch.float64).cpu()
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert torch.isfinite(actual).all(), what
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ULPS * scale, msg=what)


def run_peer(make, n, base_lr=1.0):
    """The lr a scheduler sets before each of n updates (c = 0..n-1) of a dummy SGD."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = make(optimizer)
    lrs = []
    for i in range(n):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if i < n - 1:  # a OneCycleLR stepped to c = T extrapolates, and raises one step later
            scheduler.step()
    return lrs


def run_hf(name, base_lr, w, t, n, **kwargs):
    transformers = pytest.importorskip("transformers")

    def make(optimizer):
        return transformers.get_scheduler(
            name, optimizer, num_warmup_steps=w, num_training_steps=t,
            scheduler_specific_kwargs=kwargs,
        )  # fmt: skip

    return run_peer(make, n, base_lr)


def hf_multiplier(name, base_lr, w, t, **kwargs):
    """transformers' multiplier at any index c: the lambda of the LambdaLR get_scheduler builds."""
    transformers = pytest.importorskip("transformers")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = transformers.get_scheduler(
        name, optimizer, num_warmup_steps=w, num_training_steps=t, scheduler_specific_kwargs=kwargs
    )
    return scheduler.lr_lambdas[0]


def check_parity(schedule, peer, peer_ends):
    """lr_at(k) == peer[k - 1] for every k the peer gave; with ``peer_ends`` the peer's list
    stops at its last value, which compat must hold for EXTRA more updates. The torch
    evaluator must agree at every one of these k, and at k = 0 (the value of k = 1)."""
    expected = list(peer) + ([peer[-1]] * EXTRA if peer_ends else [])
    ks = range(1, len(expected) + 1)
    scale = scale_of(schedule)
    assert_lrs([schedule.lr_at(k) for k in ks], expected, scale, repr(schedule))
    assert schedule.lr_at(0) == schedule.lr_at(1)
    host = [schedule.lr_at(k) for k in range(len(expected) + 1)]
    device = evaluate(schedule.table(device=DEVICE), torch.arange(len(expected) + 1))
    assert_lrs(device, host, scale, f"torch evaluator, {schedule!r}")


# --- torch.optim.lr_scheduler.OneCycleLR ---------------------------------------------------------


def _degenerate(pct, total):
    # pct_start * T == 1: torch's first phase has length 0 and it divides by zero at c = 0.
    return float(pct * total) == 1.0


ONE_CYCLE = [
    dict(total_steps=t, pct_start=p, three_phase=three, anneal_strategy=anneal)
    for t, p, three, anneal in itertools.product(
        (1, 2, 7, 13, 101),
        (0.0, 0.05, 0.25, 0.3, 0.33, 0.5, 0.75, 1.0),
        (False, True),
        ("cos", "linear"),
    )
    if not _degenerate(p, t)
] + [
    dict(epochs=3, steps_per_epoch=7),
    dict(epochs=4, steps_per_epoch=25, pct_start=0.25, three_phase=True),
    dict(epochs=1, steps_per_epoch=13, anneal_strategy="linear"),
    dict(total_steps=100, div_factor=10.0, final_div_factor=100.0),
    dict(total_steps=37, div_factor=1.0, final_div_factor=1.0, pct_start=0.4),
    dict(total_steps=50, pct_start=0.6, three_phase=True, anneal_strategy="linear"),
]


@pytest.mark.parametrize("kwargs", ONE_CYCLE, ids=str)
def test_torch_one_cycle_matches_torch(kwargs):
    schedule = compat.torch_one_cycle(0.01, **kwargs)
    total = kwargs.get("total_steps") or kwargs["epochs"] * kwargs["steps_per_epoch"]
    peer = run_peer(partial(lr_scheduler.OneCycleLR, max_lr=0.01, **kwargs), total)
    check_parity(schedule, peer, peer_ends=True)


@pytest.mark.parametrize(
    "total, pct, three_phase", [(10, 0.1, False), (2, 0.5, False), (2, 0.5, True), (20, 0.05, True)]
)
def test_torch_one_cycle_zero_length_first_phase(total, pct, three_phase):
    """torch divides by zero at c = 0 when pct_start * T == 1; compat uses max_lr there (the
    phase's end, the next phase's start) and torch's values after. Those are checked against
    torch with pct_start one ulp higher, whose first phase covers c = 0 alone."""
    make = partial(lr_scheduler.OneCycleLR, max_lr=0.01, total_steps=total, three_phase=three_phase)
    with pytest.raises(ZeroDivisionError):
        run_peer(partial(make, pct_start=pct), total)
    schedule = compat.torch_one_cycle(0.01, total, pct_start=pct, three_phase=three_phase)
    assert schedule.lr_at(0) == schedule.lr_at(1) == 0.01
    nudged = math.nextafter(pct, 1.0)
    assert float(nudged * total) > 1.0
    peer = run_peer(partial(make, pct_start=nudged), total)
    ours = [schedule.lr_at(k) for k in range(2, total + 1 + EXTRA)]
    assert_lrs(ours, peer[1:] + [peer[-1]] * EXTRA, scale_of(schedule))


def test_torch_one_cycle_single_step_all_warmup():
    # T = 1, pct_start = 1: the only index is the end of a zero-length warmup.
    with pytest.raises(ZeroDivisionError):
        run_peer(partial(lr_scheduler.OneCycleLR, max_lr=0.01, total_steps=1, pct_start=1.0), 1)
    schedule = compat.torch_one_cycle(0.01, 1, pct_start=1.0)
    assert [schedule.lr_at(k) for k in (0, 1, 2, 10**9)] == [0.01] * 4


def test_torch_one_cycle_total_steps_wins_over_epochs():
    # As in torch: total_steps, when given, is used and epochs * steps_per_epoch is not.
    a = compat.torch_one_cycle(0.01, total_steps=20, epochs=3, steps_per_epoch=9)
    b = compat.torch_one_cycle(0.01, total_steps=20)
    assert a.phases() == b.phases()


def test_br08_one_cycle_stepped_past_its_total():
    """BR-08: torch extrapolates at c = T and raises after; compat holds the value of c = T - 1
    (exactly the floor 4e-8, float64) on the host and both device evaluators, never NaN, never
    rising."""
    from fused_sched.triton_eval import evaluate_triton

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    peer = lr_scheduler.OneCycleLR(optimizer, 0.01, total_steps=100)
    lrs = []
    for _ in range(101):  # c = 0..100: torch accepts c = T
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if len(lrs) <= 100:
            peer.step()
    with pytest.raises(ValueError, match="Tried to step 101 times"):
        peer.step()
    assert lrs[100] == pytest.approx(5.074647154e-6, rel=1e-9)  # the extrapolation compat skips

    schedule = compat.torch_one_cycle(0.01, total_steps=100)
    listed = {0: 4e-4, 1: 4.281378057e-4, 29: 0.01, 49: 8.117456539e-3, 98: 5.074647155e-6}
    for c, value in listed.items():
        assert schedule.lr_at(c + 1) == pytest.approx(value, rel=1e-9)
        assert schedule.lr_at(c + 1) == pytest.approx(lrs[c], rel=RTOL)
    assert lrs[99] == 4e-8
    past = [100, 101, 102, 103, 104, 105, 10**6, 2**40]
    host = [schedule.lr_at(k) for k in past]
    table = schedule.table(device=DEVICE)
    steps = torch.tensor(past)
    for values in (host, evaluate(table, steps).tolist(), evaluate_triton(table, steps).tolist()):
        assert values == [4e-8] * len(past)
    tail = [schedule.lr_at(k) for k in range(90, 106)]
    assert all(b <= a for a, b in itertools.pairwise(tail))


def test_br10_one_cycle_floor_is_torchs():
    """BR-10: torch's floor is max_lr / div_factor / final_div_factor = 4e-8, not the native
    OneCycle's max_lr / final_div_factor = 1e-6; the parity test would fail with the latter."""
    peer = run_peer(partial(lr_scheduler.OneCycleLR, max_lr=0.01, total_steps=100), 100)
    schedule = compat.torch_one_cycle(0.01, total_steps=100)
    assert schedule.lr_at(1) == pytest.approx(4e-4, rel=RTOL)
    assert schedule.lr_at(100) == peer[-1] == 4e-8
    check_parity(schedule, peer, peer_ends=True)

    native = OneCycle(max_lr=0.01, total_steps=100, warmup_steps=30)
    assert native.lr_at(100) == pytest.approx(1e-6, rel=RTOL)
    tolerance = RTOL * peer[-1] + ULPS * scale_of(schedule)
    assert abs(native.lr_at(100) - peer[-1]) > 1e6 * tolerance
    # The native "final drop" has no torch counterpart: the torch-compatible mode has no such knob.
    assert "final_drop" not in inspect.signature(compat.torch_one_cycle).parameters


# --- other torch schedulers ----------------------------------------------------------------------


@pytest.mark.parametrize("t_max", [1, 2, 7, 10, 13, 101, 1000])
@pytest.mark.parametrize("eta_min", [0.0, 0.05])
def test_torch_cosine_annealing_matches_torch(t_max, eta_min):
    # Up to c = T_max; after it torch rises again and compat holds eta_min.
    make = partial(lr_scheduler.CosineAnnealingLR, T_max=t_max, eta_min=eta_min)
    peer = run_peer(make, t_max + 1, 0.5)
    check_parity(compat.torch_cosine_annealing(0.5, t_max, eta_min), peer, peer_ends=True)


def test_br12_cosine_annealing_closed_form_and_end():
    """BR-12: the closed form at c = 0..12 for T_max = 10; compat holds eta_min from c = T_max,
    where torch (deliberately not followed) rises again."""
    listed = [1, 0.975528258148, 0.904508497187, 0.793892626146, 0.654508497187, 0.5,
              0.345491502813, 0.206107373854, 0.0954915028125, 0.0244717418524, 0,
              0.0244717418524, 0.0954915028125]  # fmt: skip
    peer = run_peer(partial(lr_scheduler.CosineAnnealingLR, T_max=10), 13)
    assert peer == pytest.approx(listed, rel=1e-11, abs=1e-15)
    schedule = compat.torch_cosine_annealing(1.0, 10)
    ours = [schedule.lr_at(c + 1) for c in range(13)]
    assert ours[:11] == pytest.approx(listed[:11], rel=1e-11, abs=1e-15)
    assert ours[10:] == [0.0, 0.0, 0.0]
    assert peer[11] > peer[10] and peer[12] > peer[11]  # torch rises again past T_max
    floor = compat.torch_cosine_annealing(1.0, 10, eta_min=0.1)
    assert [floor.lr_at(k) for k in (11, 12, 50, 10**9)] == [0.1] * 4


def test_br12_long_cosine_annealing_matches_torch_recursion():
    # torch steps CosineAnnealingLR by a recursion; the closed form matches it within 1e-6
    # relative (BR-12's bound for an fp32 recursion) -- in float64 within RTOL, in fact.
    peer = run_peer(partial(lr_scheduler.CosineAnnealingLR, T_max=1000), 1001)
    schedule = compat.torch_cosine_annealing(1.0, 1000)
    ours = [schedule.lr_at(c + 1) for c in range(1001)]
    torch.testing.assert_close(
        torch.tensor(ours, dtype=torch.float64), torch.tensor(peer, dtype=torch.float64),
        rtol=1e-6, atol=1e-300,
    )  # fmt: skip


@pytest.mark.parametrize("total_iters", [0, 1, 4, 7, 13])
@pytest.mark.parametrize("factors", [(1 / 3, 1.0), (0.5, 0.1), (1.0, 0.0), (0.25, 0.25)], ids=str)
def test_torch_linear_matches_torch(total_iters, factors):
    # LinearLR holds its end by itself: run it past total_iters and compare throughout.
    start, end = factors
    make = partial(
        lr_scheduler.LinearLR, start_factor=start, end_factor=end, total_iters=total_iters
    )
    peer = run_peer(make, total_iters + 1 + EXTRA, 0.3)
    check_parity(compat.torch_linear(0.3, start, end, total_iters), peer, peer_ends=False)


RESTARTS = [(1, 1, 0.0), (2, 1, 0.0), (10, 1, 3.2e-6), (13, 1, 0.01), (3, 2, 0.0), (7, 2, 1e-3),
            (2, 3, 0.0)]  # fmt: skip


@pytest.mark.parametrize("t_0, t_mult, eta_min", RESTARTS)
def test_torch_cosine_warm_restarts_matches_torch(t_0, t_mult, eta_min):
    # No end: compared over many cycles.
    make = partial(
        lr_scheduler.CosineAnnealingWarmRestarts, T_0=t_0, T_mult=t_mult, eta_min=eta_min
    )
    peer = run_peer(make, 300, 0.1)
    schedule = compat.torch_cosine_warm_restarts(0.1, t_0, t_mult, eta_min)
    check_parity(schedule, peer, peer_ends=False)


def test_br15_warm_restarts_never_reach_eta_min():
    """BR-15: torch's cycles end one step short of eta_min; compat reproduces that, and the
    native CosineRestarts(land_on_min=True), a distinct option, lands on it."""
    listed = [0.1, 0.09755290412, 0.09045115529, 0.07938992216, 0.06545195529, 0.0500016,
              0.03455124471, 0.02061327784, 0.009552044708, 0.002450295876, 0.1]  # fmt: skip
    schedule = compat.torch_cosine_warm_restarts(0.1, T_0=10, eta_min=3.2e-6)
    ours = [schedule.lr_at(c + 1) for c in range(100)]
    assert ours[:11] == pytest.approx(listed, rel=1e-9)
    assert min(ours) == pytest.approx(0.002450295876, rel=1e-9)
    make = partial(lr_scheduler.CosineAnnealingWarmRestarts, T_0=10, eta_min=3.2e-6)
    assert min(run_peer(make, 100, 0.1)) == pytest.approx(min(ours), rel=RTOL)
    landing = CosineRestarts(0.1, cycle_steps=10, min_lr=3.2e-6, land_on_min=True)
    assert min(landing.lr_at(k) for k in range(100)) == pytest.approx(3.2e-6, rel=RTOL)


# --- transformers ---------------------------------------------------------------------------------


def hf_end(w, t):
    """The index where transformers' cosines reach progress 1 (and would rise again)."""
    return w + max(1, t - w)


HF_WT = [(0, 10), (4, 10), (1, 1), (3, 3), (0, 0), (5, 13), (10, 101)]
HF_KINDS = [
    ("linear", {}),
    ("cosine", {}),
    ("cosine", {"num_cycles": 1.5}),
    ("cosine", {"num_cycles": 0.0}),
    ("cosine_with_restarts", {}),
    ("cosine_with_restarts", {"num_cycles": 2}),
    ("cosine_with_restarts", {"num_cycles": 3}),
    ("cosine_with_restarts", {"num_cycles": 2.5}),
    ("polynomial", {}),
    ("polynomial", {"lr_end": 1e-4, "power": 2.0}),
    ("polynomial", {"lr_end": 0.0, "power": 0.5}),
    ("constant", {}),
    ("constant_with_warmup", {}),
    ("inverse_sqrt", {}),
    ("inverse_sqrt", {"timescale": 3}),
    ("cosine_with_min_lr", {"min_lr": 1e-4}),
    ("cosine_with_min_lr", {"min_lr_rate": 0.1, "num_cycles": 1.25}),
]
HF_REQUIRED = {
    "warmup_stable_decay": {"num_decay_steps": 1},
    "cosine_with_min_lr": {"min_lr": 0.01},
}
HF_RISES = ("cosine", "cosine_with_min_lr")  # transformers follows the cosine past progress 1
HF_CASES = [
    (name, w, t, kw)
    for (w, t), (name, kw) in itertools.product(HF_WT, HF_KINDS)
    if not (name == "polynomial" and w == t)  # transformers divides by zero: see BR-04
]
WSD_CASES = [
    dict(w=w, t=t, num_decay_steps=d, warmup_type=up, decay_type=down, min_lr_ratio=r, num_cycles=n)
    for (w, t, d), up, down, (r, n) in itertools.product(
        ((0, 10, 3), (4, 10, 0), (3, 13, 5), (2, 2, 0), (1, 20, 19)),
        ("linear", "cosine", "1-sqrt"),
        ("linear", "cosine", "1-sqrt"),
        ((0.0, 0.5), (0.1, 1.25)),
    )
]


@pytest.mark.parametrize("name, w, t, kw", HF_CASES, ids=str)
def test_hf_matches_transformers(name, w, t, kw):
    schedule = compat.hf(name, 0.01, w, t, **kw)
    if name in HF_RISES:
        peer = run_hf(name, 0.01, w, t, hf_end(w, t) + 1, **kw)
        check_parity(schedule, peer, peer_ends=True)
    else:  # these hold their end value themselves, or have none: compare well past it
        peer = run_hf(name, 0.01, w, t, hf_end(w, t) + 1 + EXTRA, **kw)
        check_parity(schedule, peer, peer_ends=False)


@pytest.mark.parametrize("case", WSD_CASES, ids=str)
def test_hf_warmup_stable_decay_matches_transformers(case):
    case = dict(case)
    w, t = case.pop("w"), case.pop("t")
    schedule = compat.hf("warmup_stable_decay", 0.01, w, t, **case)
    peer = run_hf("warmup_stable_decay", 0.01, w, t, t + 1 + EXTRA, **case)
    check_parity(schedule, peer, peer_ends=False)


def test_hf_warmup_stable_decay_with_stable_steps():
    # num_stable_steps wins over num_training_steps, as in transformers; a mismatch warns.
    kwargs = dict(num_decay_steps=4, num_stable_steps=6, decay_type="linear")
    schedule = compat.hf("warmup_stable_decay", 0.01, 2, None, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers warns whenever both are given
        peer = run_hf("warmup_stable_decay", 0.01, 2, 50, 12 + EXTRA, **kwargs)
    check_parity(schedule, peer, peer_ends=False)
    with pytest.warns(UserWarning, match="num_stable_steps is used"):
        inconsistent = compat.hf("warmup_stable_decay", 0.01, 2, 50, **kwargs)
    assert inconsistent.phases() == schedule.phases()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compat.hf("warmup_stable_decay", 0.01, 2, 12, **kwargs)


def test_hf_restart_boundaries_are_transformers():
    # Restarts land on the same index as transformers' (num_cycles * progress) % 1, for integer
    # and dyadic num_cycles over many lengths (a restart one index off is off by the whole peak).
    for length, cycles in itertools.product(range(1, 120), (1, 2, 3, 4, 5, 7, 12, 1.5, 0.75)):
        args = ("cosine_with_restarts", 1.0, 2, 2 + length)
        schedule = compat.hf(*args, num_cycles=cycles)
        multiplier = hf_multiplier(*args, num_cycles=cycles)
        ref = [multiplier(c) for c in range(length + 4)]
        ours = [schedule.lr_at(c + 1) for c in range(length + 4)]
        assert_lrs(ours, ref, 1.0, f"{length=}, {cycles=}")


def test_hf_names_are_transformers_names():
    transformers = pytest.importorskip("transformers")
    for name in compat.HF_NAMES:
        member = transformers.SchedulerType(name)  # raises for a name transformers does not know
        kw = HF_REQUIRED.get(name, {})
        assert (
            compat.hf(member, 0.1, 2, 10, **kw).phases()
            == compat.hf(name, 0.1, 2, 10, **kw).phases()
        )
    assert len(compat.HF_NAMES) == 9


def test_br01_hf_cosine_first_update_uses_zero():
    """BR-01 (transformers part): get_cosine_schedule_with_warmup counts from c = 0, so update 1
    legitimately uses 0, on the host and in both device evaluators; every transformers warmup
    does the same."""
    from fused_sched.triton_eval import evaluate_triton

    listed = [0, 0.25, 0.5, 0.75, 1, 0.9330127019, 0.75, 0.5, 0.25, 0.0669872981, 0]
    schedule = compat.hf("cosine", 1.0, 4, 10)
    assert run_hf("cosine", 1.0, 4, 10, 11) == pytest.approx(listed, abs=DIGITS_10)
    table, steps = schedule.table(device=DEVICE), torch.arange(1, 12)
    for values in (
        [schedule.lr_at(k) for k in range(1, 12)],
        evaluate(table, steps).tolist(),
        evaluate_triton(table, steps).tolist(),
    ):
        assert values == pytest.approx(listed, abs=DIGITS_10)
        assert values[0] == 0.0
    for name, kw in HF_KINDS:
        if name != "constant":
            assert compat.hf(name, 1.0, 4, 10, **kw).lr_at(1) == 0.0


def test_br02_hf_inverse_sqrt():
    """BR-02: timescale defaults to W, or 10000 when W = 0; W in {0, 1} is finite everywhere."""
    no_warmup = compat.hf("inverse_sqrt", 1.0, 0)
    listed = {0: 1.0, 1: 0.99995000375, 100: 0.99503719021, 10000: 0.70710678119, 30000: 0.5}
    for c, value in listed.items():
        assert no_warmup.lr_at(c + 1) == pytest.approx(value, rel=1e-10)
    assert no_warmup.lr_at(1) == 1.0
    warm = compat.hf("inverse_sqrt", 1.0, 4)
    listed = {0: 0, 1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0, 9: 0.6666666667, 16: 0.5, 100: 0.2}
    for c, value in listed.items():
        assert warm.lr_at(c + 1) == pytest.approx(value, rel=1e-9)

    for w in (0, 1, 4):
        schedule = compat.hf("inverse_sqrt", 1.0, w)
        peer = hf_multiplier("inverse_sqrt", 1.0, w, None)
        far = [0, 1, 2, 3, 4, 5, 100, 10000, 30000, 10**9]
        assert_lrs([schedule.lr_at(c + 1) for c in far], [peer(c) for c in far], 1.0)


@pytest.mark.parametrize("w", [0, 1])
@pytest.mark.parametrize("name", compat.HF_NAMES)
def test_br02_degenerate_warmups_are_finite(name, w):
    # Every transformers schedule with W in {0, 1} and T in {W, W + 1}: finite on the host and
    # in the torch evaluator at every step, 0 to far past the end.
    steps = torch.tensor([0, 1, 2, 3, 4, 10, 10**6, 2**40])
    for t in (w, w + 1):
        if name == "warmup_stable_decay" and t < w + 1:
            continue
        schedule = compat.hf(name, 1.0, w, t, **HF_REQUIRED.get(name, {}))
        host = [schedule.lr_at(k) for k in steps.tolist()]
        assert all(math.isfinite(v) and v >= 0 for v in host)
        assert_lrs(evaluate(schedule.table(device=DEVICE), steps), host, 1.0)


def test_br04_hf_polynomial_warmup_fills_the_run():
    """BR-04: transformers divides by zero at c = W when W = T (its bug; fixed upstream to the
    numbers below); compat uses max_lr at c = W and lr_end after. The control run matches."""
    kwargs = dict(lr_end=1e-7, power=2.0)
    degenerate = compat.hf("polynomial", 0.01, 100, 100, **kwargs)
    listed = {0: 0.0, 50: 5e-3, 99: 9.9e-3, 100: 1e-2, 101: 1e-7, 500: 1e-7}
    assert {c: degenerate.lr_at(c + 1) for c in listed} == pytest.approx(listed, rel=1e-12)
    multiplier = hf_multiplier("polynomial", 0.01, 100, 100, **kwargs)
    try:
        at_w = 0.01 * multiplier(100)
    except ZeroDivisionError:
        at_w = None  # the bug, in this version of transformers
    if at_w is not None:
        assert degenerate.lr_at(101) == pytest.approx(at_w, rel=RTOL)
    peer = run_hf("polynomial", 0.01, 100, 100, 100, **kwargs)  # c = 0..99 do not divide
    check_parity(degenerate, peer, peer_ends=False)

    control = compat.hf("polynomial", 0.01, 10, 110, **kwargs)
    listed = {5: 5e-3, 10: 1e-2, 60: 2.500075e-3, 110: 1e-7, 111: 1e-7}
    assert {c: control.lr_at(c + 1) for c in listed} == pytest.approx(listed, rel=1e-12)
    check_parity(control, run_hf("polynomial", 0.01, 10, 110, 120, **kwargs), peer_ends=False)


def test_br17_hf_linear_no_warmup():
    """BR-17: updates 1..10 use 1e-5 ... 1e-6, and a counter restored after update 5 continues
    with 5e-6 ... 1e-6 in the torch evaluator: no value repeated."""
    schedule = compat.hf("linear", 1e-5, 0, 10)
    listed = [1e-5, 9e-6, 8e-6, 7e-6, 6e-6, 5e-6, 4e-6, 3e-6, 2e-6, 1e-6]
    assert [schedule.lr_at(k) for k in range(1, 11)] == pytest.approx(listed, rel=1e-12)
    assert run_hf("linear", 1e-5, 0, 10, 10) == pytest.approx(listed, rel=1e-12)
    counter = torch.tensor(5)  # as restored after update 5
    resumed = [evaluate(schedule.table(), counter + i).item() for i in range(1, 6)]
    assert resumed == pytest.approx(listed[5:], rel=1e-12)


def test_br18_hf_restarts_update_uses_the_near_zero_rate():
    """BR-18: update 10 uses c = 9's 0.0244717419, not the restart's 1.0 (that is update 11),
    on the host and in both device evaluators."""
    from fused_sched.triton_eval import evaluate_triton

    half = [1.0, 0.9755282581, 0.9045084972, 0.7938926261, 0.6545084972, 0.5, 0.3454915028,
            0.2061073739, 0.0954915028, 0.0244717419]  # fmt: skip
    listed = half + half + [0.0]
    assert run_hf("cosine_with_restarts", 1.0, 0, 20, 21, num_cycles=2) == pytest.approx(
        listed, abs=DIGITS_10
    )
    schedule = compat.hf("cosine_with_restarts", 1.0, 0, 20, num_cycles=2)
    table, steps = schedule.table(device=DEVICE), torch.arange(1, 22)
    for values in (
        [schedule.lr_at(k) for k in range(1, 22)],
        evaluate(table, steps).tolist(),
        evaluate_triton(table, steps).tolist(),
    ):
        assert values == pytest.approx(listed, abs=DIGITS_10)
        assert values[9] == pytest.approx(0.0244717419, abs=DIGITS_10) and values[10] == 1.0


# --- the Triton evaluator ------------------------------------------------------------------------

TRITON_CASES = {
    "one_cycle": lambda: compat.torch_one_cycle(0.01, 13, pct_start=0.33),
    "one_cycle_short_linear": lambda: compat.torch_one_cycle(
        0.01, 7, pct_start=0.05, anneal_strategy="linear"
    ),
    "one_cycle_three_phase": lambda: compat.torch_one_cycle(
        0.01, 13, pct_start=0.6, three_phase=True
    ),
    "one_cycle_zero_warmup": lambda: compat.torch_one_cycle(0.01, 10, pct_start=0.1),
    "cosine_annealing": lambda: compat.torch_cosine_annealing(0.5, 7, 0.05),
    "linear": lambda: compat.torch_linear(0.3, 0.5, 0.1, 4),
    "warm_restarts": lambda: compat.torch_cosine_warm_restarts(0.1, 3, 2, 1e-3),
    "hf_linear": lambda: compat.hf("linear", 0.01, 3, 10),
    "hf_cosine_cycles": lambda: compat.hf("cosine", 0.01, 2, 12, num_cycles=1.5),
    "hf_polynomial": lambda: compat.hf("polynomial", 0.01, 2, 9, power=2.0),
    "hf_inverse_sqrt": lambda: compat.hf("inverse_sqrt", 0.01, 0),
    "hf_inverse_sqrt_w1": lambda: compat.hf("inverse_sqrt", 0.01, 1),
    "hf_polynomial_w_eq_t": lambda: compat.hf("polynomial", 0.01, 5, 5, power=2.0),
    "hf_wsd": lambda: compat.hf(
        "warmup_stable_decay",
        0.01,
        3,
        14,
        num_decay_steps=5,
        warmup_type="1-sqrt",
        decay_type="cosine",
        min_lr_ratio=0.1,
        num_cycles=1.25,
    ),  # fmt: skip
    "hf_min_lr": lambda: compat.hf("cosine_with_min_lr", 0.01, 2, 11, min_lr_rate=0.1),
}


@pytest.mark.interpreter
@pytest.mark.parametrize("case", TRITON_CASES)
def test_triton_evaluator_matches_host(case):
    # The Triton interpreter is slow: about 20 steps, through every phase and past the end.
    from fused_sched.triton_eval import evaluate_triton

    schedule = TRITON_CASES[case]()
    steps = torch.tensor(list(range(18)) + [25, 40, 10**6, 2**40])
    host = [schedule.lr_at(k) for k in steps.tolist()]
    table = schedule.table(device=DEVICE)
    assert_lrs(evaluate_triton(table, steps), host, scale_of(schedule))
    assert_lrs(evaluate(table, steps), host, scale_of(schedule))


# --- argument errors -----------------------------------------------------------------------------

ERRORS = [
    (lambda: compat.torch_one_cycle(-0.01, 10), "max_lr=-0.01"),
    (lambda: compat.torch_one_cycle(float("nan"), 10), "max_lr=nan"),
    (lambda: compat.torch_one_cycle(0.01), "total_steps=None"),
    (lambda: compat.torch_one_cycle(0.01, epochs=3), "steps_per_epoch=None"),
    (lambda: compat.torch_one_cycle(0.01, 0), "total_steps=0"),
    (lambda: compat.torch_one_cycle(0.01, 10.0), "total_steps=10.0"),
    (lambda: compat.torch_one_cycle(0.01, True), "total_steps=True"),
    (lambda: compat.torch_one_cycle(0.01, epochs=0, steps_per_epoch=5), "epochs=0"),
    (lambda: compat.torch_one_cycle(0.01, epochs=2, steps_per_epoch=-1), "steps_per_epoch=-1"),
    (lambda: compat.torch_one_cycle(0.01, 10, pct_start=1.5), "pct_start=1.5"),
    (lambda: compat.torch_one_cycle(0.01, 10, pct_start=-0.1), "pct_start=-0.1"),
    (lambda: compat.torch_one_cycle(0.01, 10, anneal_strategy="exp"), "anneal_strategy='exp'"),
    (lambda: compat.torch_one_cycle(0.01, 10, div_factor=0.0), "div_factor=0.0"),
    (lambda: compat.torch_one_cycle(0.01, 10, final_div_factor=-1.0), "final_div_factor=-1.0"),
    (lambda: compat.torch_one_cycle(0.01, 10, three_phase=1), "three_phase=1"),
    (lambda: compat.torch_cosine_annealing(-1.0, 10), "base_lr=-1.0"),
    (lambda: compat.torch_cosine_annealing(1.0, 0), "T_max=0"),
    (lambda: compat.torch_cosine_annealing(1.0, 2.5), "T_max=2.5"),
    (lambda: compat.torch_cosine_annealing(1.0, 10, eta_min=-0.1), "eta_min=-0.1"),
    (lambda: compat.torch_linear(-1.0), "base_lr=-1.0"),
    (lambda: compat.torch_linear(1.0, start_factor=0.0), "start_factor=0.0"),
    (lambda: compat.torch_linear(1.0, start_factor=1.5), "start_factor=1.5"),
    (lambda: compat.torch_linear(1.0, end_factor=1.5), "end_factor=1.5"),
    (lambda: compat.torch_linear(1.0, total_iters=-1), "total_iters=-1"),
    (lambda: compat.torch_cosine_warm_restarts(float("inf"), 10), "base_lr=inf"),
    (lambda: compat.torch_cosine_warm_restarts(1.0, 0), "T_0=0"),
    (lambda: compat.torch_cosine_warm_restarts(1.0, 10, T_mult=0), "T_mult=0"),
    (lambda: compat.torch_cosine_warm_restarts(1.0, 10, T_mult=1.5), "T_mult=1.5"),
    (lambda: compat.torch_cosine_warm_restarts(1.0, 10, eta_min=-1.0), "eta_min=-1.0"),
    (lambda: compat.hf("cosine_annealing", 1.0, 0, 10), "name='cosine_annealing'.*'linear'"),
    (lambda: compat.hf("reduce_lr_on_plateau", 1.0, 0, 10), "name='reduce_lr_on_plateau'"),
    (lambda: compat.hf("linear", 1.0, 0, 10, num_cycles=2), r"unknown.*num_cycles.*valid: \[\]"),
    (lambda: compat.hf("cosine", 1.0, 0, 10, power=2), r"\['power'\]; valid: \['num_cycles'\]"),
    (lambda: compat.hf("linear", -1.0, 0, 10), "max_lr=-1.0"),
    (lambda: compat.hf("linear", 1.0, None, 10), "needs num_warmup_steps"),
    (lambda: compat.hf("linear", 1.0, 0, None), "needs num_training_steps"),
    (lambda: compat.hf("linear", 1.0, -1, 10), "num_warmup_steps=-1"),
    (lambda: compat.hf("cosine", 1.0, 11, 10), "num_warmup_steps=11 must be <="),
    (lambda: compat.hf("cosine", 1.0, 0, 10.5), "num_training_steps=10.5"),
    (lambda: compat.hf("cosine", 1.0, 0, 10, num_cycles=-1), "num_cycles=-1"),
    (lambda: compat.hf("cosine_with_restarts", 1.0, 0, 10, num_cycles=0), "num_cycles=0"),
    (lambda: compat.hf("polynomial", 1e-8, 0, 10), "lr_end=1e-07 must be smaller"),
    (lambda: compat.hf("polynomial", 1.0, 0, 10, lr_end=-0.1), "lr_end=-0.1"),
    (lambda: compat.hf("polynomial", 1.0, 0, 10, power=0.0), "power=0.0"),
    (lambda: compat.hf("inverse_sqrt", 1.0, 0, timescale=0), "timescale=0"),
    (lambda: compat.hf("warmup_stable_decay", 1.0, 0, 10), "num_decay_steps=None"),
    (lambda: compat.hf("warmup_stable_decay", 1.0, 0, num_decay_steps=2), "num_training_steps"),
    (
        lambda: compat.hf("warmup_stable_decay", 1.0, 5, 10, num_decay_steps=6),
        "num_warmup_steps \\+ num_decay_steps=11 must be <= num_training_steps=10",
    ),
    (
        lambda: compat.hf("warmup_stable_decay", 1.0, 0, 10, num_decay_steps=2, decay_type="exp"),
        "decay_type='exp'",
    ),
    (
        lambda: compat.hf("warmup_stable_decay", 1.0, 0, 10, num_decay_steps=2, warmup_type="x"),
        "warmup_type='x'",
    ),
    (
        lambda: compat.hf("warmup_stable_decay", 1.0, 0, 10, num_decay_steps=2, min_lr_ratio=2),
        "min_lr_ratio=2",
    ),
    (lambda: compat.hf("cosine_with_min_lr", 1.0, 0, 10), "exactly one of min_lr and min_lr_rate"),
    (
        lambda: compat.hf("cosine_with_min_lr", 1.0, 0, 10, min_lr=0.1, min_lr_rate=0.1),
        "exactly one",
    ),
    (lambda: compat.hf("cosine_with_min_lr", 1.0, 0, 10, min_lr=2.0), "min_lr=2.0"),
    (lambda: compat.hf("cosine_with_min_lr", 1.0, 0, 10, min_lr_rate=-0.5), "min_lr_rate=-0.5"),
]


@pytest.mark.parametrize("build, pattern", ERRORS, ids=[p for _, p in ERRORS])
def test_bad_arguments_raise(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()
