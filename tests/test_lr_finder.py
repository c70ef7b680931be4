"""The LR range test: its ladder, suggestions on curves with known answers, divergence stopping,
and restoring the model and optimizer bit for bit (BR-30)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from fused_sched import Constant, FusedScheduledAdamW, WarmupCosine, evaluate
from fused_sched.lr_finder import (
    half_life,
    lr_find,
    smooth_losses,
    suggest_lr,
    sweep_schedule,
)

# Where a test is not about the suggestion: a sweep too short to leave points after the moving
# average's half-life warns that it has none.
no_suggestion_is_fine = pytest.mark.filterwarnings("ignore:lr_find:UserWarning")

# --- the sweep's ladder -------------------------------------------------------------------------


@pytest.mark.parametrize("num_steps", [2, 3, 17, 100])
@pytest.mark.parametrize(("start", "end"), [(1e-7, 10.0), (3e-4, 5e-4)])
def test_exponential_ladder(num_steps, start, end):
    schedule = sweep_schedule(start, end, num_steps)
    host = np.array([schedule.lr_at(k) for k in range(1, num_steps + 3)])
    device = evaluate(schedule.table(), torch.arange(1, num_steps + 3)).numpy()
    np.testing.assert_allclose(device, host, rtol=1e-13)
    ladder = host[:num_steps]
    assert ladder[0] == start and ladder[-1] == end  # exactly
    # Against the closed form in log space; neighbours in a constant ratio.
    k = np.arange(num_steps)
    expected = np.exp(math.log(start) + k / (num_steps - 1) * math.log(end / start))
    np.testing.assert_allclose(ladder, expected, rtol=1e-13)
    ratio = (end / start) ** (1 / (num_steps - 1))
    np.testing.assert_allclose(ladder[1:] / ladder[:-1], ratio, rtol=1e-13)
    assert host[num_steps] == host[num_steps + 1] == end  # holds past the end


def test_linear_ladder():
    schedule = sweep_schedule(1e-4, 1e-2, 12, mode="linear")
    ladder = np.array([schedule.lr_at(k) for k in range(1, 13)])
    assert ladder[0] == 1e-4 and ladder[-1] == 1e-2
    np.testing.assert_allclose(np.diff(ladder), (1e-2 - 1e-4) / 11, rtol=1e-12)


def regression(seed=0, rows=32):
    """Linear(4 -> 1) and a least-squares problem it can fit, as a list of batches."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(rows, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, rows, 8)]
    return model, batches


def mse(model, batch):
    return torch.nn.functional.mse_loss(model(batch[0]), batch[1])


@no_suggestion_is_fine
@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_applied_lrs_are_the_ladder(mode):
    """What the optimizer applied, read from its live lr tensor, is the schedule's ladder."""
    model, batches = regression()
    result = lr_find(model, mse, batches, start_lr=1e-3, end_lr=1e-1, num_steps=17, mode=mode)
    assert not result.diverged and len(result.lrs) == 17
    ladder = sweep_schedule(1e-3, 1e-1, 17, mode)
    # The device evaluates pow() its own way: within a few ulps of the host's float64.
    np.testing.assert_allclose(result.lrs, [ladder.lr_at(k) for k in range(1, 18)], rtol=1e-13)
    assert result.lrs[0] == 1e-3 and result.lrs[-1] == 1e-1
    assert result.lrs.dtype == result.losses.dtype == result.raw_losses.dtype == np.float64


# --- suggest_lr on curves with known answers -----------------------------------------------------

X = np.linspace(-7.0, 1.0, 161)  # log10(lr), 0.05 apart
LRS = 10.0**X
STEP = X[1] - X[0]


def sigmoid_drop(x):
    """From 3 down to 1, steepest (in x and in log lr alike) at x = -3."""
    return 2.0 - np.tanh((x + 3.0) / 0.5)


def valley(x):
    """sigmoid_drop, then a rise that passes 4 times the minimum before x = 1."""
    return sigmoid_drop(x) + 0.5 * np.exp(3.0 * (x + 0.5))


def valley_slope(x):
    return -2.0 / np.cosh((x + 3.0) / 0.5) ** 2 + 1.5 * np.exp(3.0 * (x + 0.5))


def valley_references():
    """Steepest, minimum and half-way-down point of `valley`, from its formula (scipy roots)."""
    x_min = brentq(valley_slope, -3.0, 0.5)
    grid = X[x_min >= X]
    x_steep = grid[np.argmin(valley_slope(grid))]  # the slope's minimum on the grid
    level = 0.5 * (valley(-7.0) + valley(x_min))
    x_half = brentq(lambda x: valley(x) - level, -7.0, x_min)
    return {"steepest": x_steep, "minimum": x_min - 1.0, "valley": x_half}


def test_smooth_sigmoid():
    losses = sigmoid_drop(X)
    assert suggest_lr(LRS, losses, "steepest") == pytest.approx(1e-3, rel=1e-12)
    assert suggest_lr(LRS, losses, "valley") == pytest.approx(1e-3, rel=1e-9)
    assert suggest_lr(LRS, losses, "minimum") == pytest.approx(LRS[-1] / 10, rel=1e-12)


@pytest.mark.parametrize("method", ["steepest", "valley", "minimum"])
def test_valley_with_diverging_tail(method):
    """The tail passes 4x the minimum (left out); each answer within its grid's reach."""
    losses = valley(X)
    assert losses[-1] > 4 * losses.min()
    got = math.log10(suggest_lr(LRS, losses, method))
    # The grid holds the steepest point exactly, the minimum to half a step, and the valley's
    # level crossing is linear interpolation over a 0.05-decade step.
    tolerance = {"steepest": 1e-12, "minimum": STEP / 2, "valley": 1e-3}[method]
    assert abs(got - valley_references()[method]) <= tolerance


@pytest.mark.parametrize("method", ["steepest", "valley", "minimum"])
def test_noisy_curve_fixed_seed(method):
    """5% multiplicative noise, smoothed as lr_find does: within a quarter decade of the
    noise-free curve's answer (the average's lag moves both alike)."""
    rng = np.random.default_rng(3)
    noisy = valley(X) * (1.0 + 0.05 * rng.standard_normal(X.size))
    skip = half_life(0.95)
    got = suggest_lr(LRS, smooth_losses(noisy, 0.95), method, skip_start=skip)
    clean = suggest_lr(LRS, smooth_losses(valley(X), 0.95), method, skip_start=skip)
    assert abs(math.log10(got) - math.log10(clean)) < 0.25
    # Without leaving out the average's first points, their noise wins "steepest" here.
    if method == "steepest":
        assert suggest_lr(LRS, smooth_losses(noisy, 0.95), method) == LRS[0]


def test_skip_start_leaves_out_a_deceptive_start():
    losses = sigmoid_drop(X)
    losses[0] = 9.0  # a steeper drop between points 0 and 1 than anywhere in the curve
    assert suggest_lr(LRS, losses, "steepest") == LRS[0]
    assert suggest_lr(LRS, losses, "steepest", skip_start=1) == pytest.approx(1e-3, rel=1e-12)


@pytest.mark.parametrize("method", ["steepest", "valley", "minimum"])
def test_nan_tail_is_left_out(method):
    """A NaN after the minimum, then values that would win every method if they counted."""
    losses = valley(X)
    cut = int(np.argmin(losses)) + 5
    tailed = losses.copy()
    tailed[cut] = np.nan
    tailed[cut + 1 :] = np.linspace(0.5, 0.0, X.size - cut - 1)
    expected = suggest_lr(LRS[:cut], losses[:cut], method)
    assert suggest_lr(LRS, tailed, method) == expected
    assert abs(math.log10(expected) - valley_references()[method]) <= STEP


@pytest.mark.parametrize("method", ["steepest", "valley", "minimum"])
def test_diverged_tail_is_left_out(method):
    """Past 4x the best, a plunge to the lowest loss of all must not count."""
    losses = valley(X)
    over = int(np.argmax(losses > 4 * losses.min()))
    plunged = losses.copy()
    plunged[over + 1] = 0.01
    assert suggest_lr(LRS, plunged, method) == suggest_lr(LRS, losses, method)
    assert suggest_lr(LRS, plunged, method) == suggest_lr(LRS[:over], losses[:over], method)


def test_plateaus():
    """Flat at 3, a half-cosine down to 1 over 60 points, flat at 1, then up."""
    losses = np.empty(X.size)
    losses[:40] = 3.0
    q = np.arange(61) / 60
    losses[40:101] = 1.0 + (1.0 + np.cos(np.pi * q))  # 3 at q = 0, 1 at q = 1
    losses[101:121] = 1.0
    losses[121:] = 1.0 + 0.1 * np.arange(1, X.size - 120)
    assert suggest_lr(LRS, losses, "steepest") == LRS[70]  # the cosine's steepest, q = 1/2
    assert suggest_lr(LRS, losses, "valley") == pytest.approx(LRS[70], rel=1e-9)
    assert suggest_lr(LRS, losses, "minimum") == LRS[100] / 10  # the first point at the floor


def test_half_life():
    assert half_life(0.0) == 0
    assert half_life(0.5) == 1
    assert half_life(0.95) == 14
    assert 0.95**14 <= 0.5 < 0.95**13


def test_smoothing_is_bias_corrected():
    raw = np.array([4.0, 2.0, 3.0, 1.0])
    beta, avg, expected = 0.9, 0.0, []
    for i, value in enumerate(raw):
        avg = beta * avg + (1 - beta) * value
        expected.append(avg / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(smooth_losses(raw, beta), expected, rtol=1e-15)
    assert smooth_losses(raw, beta)[0] == 4.0
    np.testing.assert_array_equal(smooth_losses(raw, 0.0), raw)


GOOD = np.array([1e-3, 1e-2, 1e-1, 1.0])
SUGGEST_ERRORS = [
    ((GOOD[:2], [2.0, 1.0]), {}, "too few points: 2"),
    ((GOOD, [3.0, 2.0, 1.0]), {}, "differ in length: 4 and 3"),
    ((GOOD.reshape(2, 2), np.ones((2, 2))), {}, "must be 1-D"),
    (([0.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0]), {}, "finite and > 0"),
    (([-1.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0]), {}, "finite and > 0"),
    (([1.0, np.nan, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0]), {}, "finite and > 0"),
    (([1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0]), {}, "strictly increasing"),
    ((GOOD, [4.0, 3.0, 2.0, 1.0]), {"method": "fastest"}, "method='fastest' must be one of"),
    ((GOOD, [1.0, 2.0, 3.0, 4.0]), {}, "never falls below its first value"),
    ((GOOD, [1.0, np.nan, 0.5, 0.2]), {}, "only 1 point"),
    ((GOOD, [1.0, 0.9, 5.0, 0.1]), {}, "only 2 point"),
    ((GOOD, [4.0, 3.0, 2.0, 1.0]), {"skip_start": 2}, "after skip_start=2"),
    ((GOOD, [4.0, 3.0, 2.0, 1.0]), {"skip_start": -1}, "skip_start=-1 must be an int >= 0"),
    ((GOOD, [4.0, 3.0, 2.0, 1.0]), {"diverge_factor": 1.0}, "diverge_factor=1.0 must be"),
]


@pytest.mark.parametrize(("args", "kwargs", "message"), SUGGEST_ERRORS)
def test_suggest_lr_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        suggest_lr(*args, **kwargs)


# --- divergence ----------------------------------------------------------------------------------


def scripted(values, calls):
    """A loss_fn whose loss takes the given values in turn (its gradient is the model's)."""

    def loss_fn(model, batch):
        calls.append(batch)
        value = values[min(len(calls) - 1, len(values) - 1)]
        return mse(model, batch) * 0.0 + value

    return loss_fn


def first_divergence(raw, beta, factor):
    """The divergence rule, written out on its own: index of the first bad smoothed value."""
    avg, best = 0.0, math.inf
    for i, value in enumerate(raw):
        avg = beta * avg + (1 - beta) * value
        smoothed = avg / (1 - beta ** (i + 1))
        if not math.isfinite(smoothed) or smoothed > factor * best:
            return i
        best = min(best, smoothed)
    return None


@pytest.mark.parametrize("check_every", [1, 7, 100])
def test_stops_when_smoothed_loss_passes_four_times_its_best(check_every):
    raw = [2.0] * 10 + [1.0 - 0.02 * i for i in range(30)] + [1.0 * 1.5**i for i in range(60)]
    raw = np.float32(raw).astype(np.float64).tolist()  # what a float32 loss can hold
    stop = first_divergence(raw, 0.9, 4.0)
    assert stop is not None and stop < 90
    model, batches = regression()
    calls = []
    result = lr_find(model, scripted(raw, calls), batches, num_steps=100, smooth_beta=0.9,
                     check_every=check_every)  # fmt: skip
    assert result.diverged
    assert len(result.lrs) == stop + 1  # the first diverged point is kept, for the plot
    ladder = sweep_schedule(1e-7, 10.0, 100)  # lr_find's defaults; stopped short of end_lr
    expected = [ladder.lr_at(k) for k in range(1, stop + 2)]
    np.testing.assert_allclose(result.lrs, expected, rtol=1e-13)
    assert result.lrs[0] == 1e-7 and result.lrs[-1] < 10.0
    np.testing.assert_array_equal(result.raw_losses, raw[: stop + 1])
    assert result.losses[-1] > 4 * result.losses[:-1].min()
    assert (result.losses[:-1] <= 4 * np.minimum.accumulate(result.losses[:-1])).all()
    # Host reads happen every check_every updates, so the sweep runs on to the next check.
    ran = min(100, math.ceil((stop + 1) / check_every) * check_every)
    assert len(calls) == ran
    assert result.suggestion is not None and result.suggestion < result.lrs[-1]


def test_stops_on_nan():
    raw = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, math.nan, 0.1, 0.1]
    model, batches = regression()
    calls = []
    result = lr_find(model, scripted(raw, calls), batches, num_steps=50, method="minimum",
                     smooth_beta=0.0, check_every=1)  # fmt: skip
    assert result.diverged and len(result.lrs) == 7 and math.isnan(result.raw_losses[-1])
    assert len(calls) == 7
    assert result.suggestion == result.lrs[5] / 10


def test_real_divergence_on_a_regression():
    """Adam's steps grow with the lr until the least-squares loss blows up."""
    model, batches = regression()
    result = lr_find(model, mse, batches, start_lr=1e-4, end_lr=100.0, num_steps=80)
    assert result.diverged and len(result.lrs) < 80
    assert 1e-3 < result.suggestion < result.lrs[-1]


def test_no_descent_warns_and_suggests_nothing():
    model, batches = regression()
    with pytest.warns(UserWarning, match="never falls below"):
        result = lr_find(model, scripted([1.0 + i for i in range(30)], []), batches,
                         num_steps=30, smooth_beta=0.0)  # fmt: skip
    assert result.suggestion is None


# --- batches -------------------------------------------------------------------------------------


@no_suggestion_is_fine
@pytest.mark.parametrize("one_shot", [False, True])
def test_batches_are_cycled(one_shot):
    model, batches = regression()
    source = iter(batches) if one_shot else batches
    calls = []
    lr_find(model, scripted([1.0], calls), source, num_steps=10, start_lr=1e-6, end_lr=1e-5)
    order = [next(i for i, b in enumerate(batches) if b is seen) for seen in calls]
    assert order == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]


# --- restoring the model and optimizer (BR-30) ---------------------------------------------------

BR30_BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.interpreter)]


def bits(tensor):
    """The tensor's bytes as integers, so that comparisons are bitwise (-0.0, NaN payloads)."""
    ints = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}
    if tensor.is_floating_point():
        return tensor.detach().clone().view(ints[tensor.element_size()])
    return tensor.detach().clone()


def snapshot(model, optimizer):
    return {
        "params": [bits(p) for p in model.parameters()],
        "grads": [None if p.grad is None else bits(p.grad) for p in model.parameters()],
        "buffers": [bits(b) for b in model.buffers()],
        "state": [
            {key: bits(value) for key, value in optimizer.state[p].items()}
            for p in model.parameters()
        ],
        "counter": bits(optimizer.counter),
        "lrs": [bits(group["lr"]) for group in optimizer.param_groups],
        "lr_tensors": [id(group["lr"]) for group in optimizer.param_groups],
        "groups": [
            {key: value for key, value in group.items() if key not in ("params", "lr")}
            for group in optimizer.param_groups
        ],
    }


def assert_same(before, after):
    assert before.keys() == after.keys()
    for key in before:
        assert_nested_equal(before[key], after[key], key)


def assert_nested_equal(a, b, where):
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_nested_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_nested_equal(x, y, f"{where}[{i}]")
    else:
        assert a is b or a == b, where


def br30_setup(backend):
    """Linear(4 -> 1), seed 0, our optimizer with a schedule, three steps already taken."""
    model, batches = regression(seed=0)
    schedule = WarmupCosine(1e-2, warmup_steps=2, total_steps=10, min_lr=1e-4)
    optimizer = FusedScheduledAdamW(model.parameters(), schedule, backend=backend)
    for batch in batches[:3]:
        optimizer.zero_grad()
        mse(model, batch).backward()
        optimizer.step()
    mse(model, batches[3]).backward()  # a gradient pending, as mid-step code would have
    return model, batches, optimizer


@no_suggestion_is_fine
@pytest.mark.parametrize("backend", BR30_BACKENDS)
def test_br30_restores_model_and_optimizer(backend):
    model, batches, optimizer = br30_setup(backend)
    before = snapshot(model, optimizer)
    first = lr_find(model, mse, batches, start_lr=1e-7, end_lr=10.0, num_steps=20,
                    optimizer=optimizer)  # fmt: skip
    assert_same(before, snapshot(model, optimizer))
    second = lr_find(model, mse, batches, start_lr=1e-7, end_lr=10.0, num_steps=20,
                     optimizer=optimizer)  # fmt: skip
    assert_same(before, snapshot(model, optimizer))
    np.testing.assert_array_equal(first.lrs, second.lrs)
    np.testing.assert_array_equal(first.raw_losses, second.raw_losses)
    assert first.lrs[0] == 1e-7 and len(first.lrs) >= 2

    # Training goes on exactly as if the range test had never run.
    twin_model, _, twin = br30_setup(backend)
    for opt, net in ((optimizer, model), (twin, twin_model)):
        opt.step()
        opt.zero_grad()
        mse(net, batches[0]).backward()
        opt.step()
    ours, theirs = snapshot(model, optimizer), snapshot(twin_model, twin)
    del ours["lr_tensors"], theirs["lr_tensors"]
    assert_same(ours, theirs)


@no_suggestion_is_fine
def test_restores_buffers_grads_and_random_state():
    """BatchNorm statistics, gradients (the same tensor objects) and the RNG stream."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)
    )
    _, batches = regression()
    mse(model, batches[0]).backward()
    grads = [p.grad for p in model.parameters()]
    before = {name: bits(t) for name, t in model.state_dict().items()}
    before_grads = [bits(g) for g in grads]
    rng = torch.get_rng_state()

    first = lr_find(model, mse, batches, num_steps=12, backend="reference")
    second = lr_find(model, mse, batches, num_steps=12, backend="reference")

    after = {name: bits(t) for name, t in model.state_dict().items()}
    assert_same(before, after)
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))
    assert_same({"grads": before_grads}, {"grads": [bits(g) for g in grads]})
    assert torch.equal(torch.get_rng_state(), rng)
    np.testing.assert_array_equal(first.raw_losses, second.raw_losses)


@no_suggestion_is_fine
def test_restores_when_loss_fn_raises():
    model, batches = regression()
    before = [bits(p) for p in model.parameters()]
    calls = []

    def failing(model, batch):
        calls.append(batch)
        if len(calls) == 4:
            raise RuntimeError("out of data")
        return mse(model, batch)

    with pytest.raises(RuntimeError, match="out of data"):
        lr_find(model, failing, batches, start_lr=1e-2, end_lr=1.0, num_steps=10)
    assert_same({"p": before}, {"p": [bits(p) for p in model.parameters()]})


@no_suggestion_is_fine
def test_optimizer_groups_and_hyperparameters_are_used():
    """Only the optimizer's parameters move, with its hyperparameters; gradients of the others
    gather in place during the test and are put back."""
    model, batches = regression()
    frozen = [bits(model.bias)]
    optimizer = torch.optim.AdamW([model.weight], lr=1e-3, weight_decay=0.5, betas=(0.8, 0.9))
    twin, _ = regression()
    calls = []

    def watch(net, batch):
        calls.append((bits(net.weight), bits(net.bias)))
        return mse(net, batch)

    mse(model, batches[0]).backward()  # pending gradients; the bias's gathers more in the test
    grads = [model.weight.grad, model.bias.grad]
    grad_bits = [bits(g) for g in grads]
    lr_find(model, watch, batches, num_steps=6, start_lr=1e-3, end_lr=1e-1, optimizer=optimizer)
    assert all(torch.equal(bias, frozen[0]) for _, bias in calls)
    assert model.weight.grad is grads[0] and model.bias.grad is grads[1]
    assert_same({"grads": grad_bits}, {"grads": [bits(g) for g in grads]})
    # The same sweep by hand: our optimizer, the AdamW group's hyperparameters.
    by_hand = FusedScheduledAdamW([twin.weight], sweep_schedule(1e-3, 1e-1, 6),
                                  weight_decay=0.5, betas=(0.8, 0.9))  # fmt: skip
    for i in range(6):
        assert torch.equal(calls[i][0], bits(twin.weight))
        by_hand.zero_grad()
        mse(twin, batches[i % 4]).backward()
        by_hand.step()


# --- the plot and bad input ----------------------------------------------------------------------


def test_plot_writes_a_png(tmp_path):
    model, batches = regression()
    result = lr_find(model, mse, batches, start_lr=1e-4, end_lr=100.0, num_steps=40)
    result.plot(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def returns_vector(model, batch):
    return model(batch[0]).squeeze(1)


FIND_ERRORS = [
    ({"start_lr": 1.0, "end_lr": 1.0}, "start_lr=1.0 must be < end_lr=1.0"),
    ({"start_lr": 2.0, "end_lr": 1.0}, "start_lr=2.0 must be < end_lr=1.0"),
    ({"start_lr": 0.0}, "start_lr=0.0 must be a finite number > 0"),
    ({"start_lr": -1e-7}, "start_lr=-1e-07 must be a finite number > 0"),
    ({"end_lr": math.inf}, "end_lr=inf must be a finite number > 0"),
    ({"num_steps": 1}, "num_steps=1 must be an int >= 2"),
    ({"num_steps": 10.0}, "num_steps=10.0 must be an int >= 2"),
    ({"mode": "log"}, "mode='log' must be one of"),
    ({"method": "fastest"}, "method='fastest' must be one of"),
    ({"smooth_beta": 1.0}, "smooth_beta=1.0 must be a number in"),
    ({"diverge_factor": 0.5}, "diverge_factor=0.5 must be a number > 1"),
    ({"check_every": 0}, "check_every=0 must be an int >= 1"),
    ({"batches": []}, "yielded no batch"),
    ({"loss_fn": returns_vector}, r"loss_fn must return a 0-dim tensor, got \(8,\)"),
    ({"model": torch.nn.Linear(4, 1).requires_grad_(False)}, "no parameter that requires"),
]


@pytest.mark.parametrize(("kwargs", "message"), FIND_ERRORS)
def test_lr_find_errors(kwargs, message):
    model, batches = regression()
    model = kwargs.pop("model", model)
    loss_fn = kwargs.pop("loss_fn", mse)
    batches = kwargs.pop("batches", batches)
    with pytest.raises(ValueError, match=message):
        lr_find(model, loss_fn, batches, **kwargs)


def test_two_step_sweep():
    """num_steps = 2: update 1 at start_lr, update 2 at end_lr, nothing in between."""
    schedule = sweep_schedule(1e-3, 1e-1, 2)
    assert [schedule.lr_at(k) for k in (0, 1, 2, 3)] == [1e-3, 1e-3, 1e-1, 1e-1]
    assert isinstance(schedule.parts[0][0], Constant)
