"""FusedScheduledAdamW against torch.optim.AdamW driven by the same lr sequence, per backend."""

import copy
import io
import pickle

import pytest
import torch

from fused_sched import (
    Constant,
    FusedScheduledAdamW,
    OneCycle,
    Warmup,
    WarmupCosine,
)

BACKENDS = ["reference", "torch", "triton"]
# The Triton interpreter is slow: fewer steps there, hundreds elsewhere.
STEPS = {"reference": 300, "torch": 300, "triton": 60}
SIZES = [(37,), (5, 3), (129,)]


def make_groups(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(size, generator=gen, dtype=dtype) for size in SIZES]


def group_specs(total):
    """Three groups: own schedules, weight decay on and off, other betas and eps."""
    return [
        {"schedule": OneCycle(0.01, total, total // 3), "weight_decay": 0.05},
        {"schedule": WarmupCosine(3e-3, 5, total, min_lr=1e-5), "weight_decay": 0.0},
        {"schedule": Warmup(2e-3, 7), "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
    ]


def fresh_grads(params, step, dtype):
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(dtype) for p in params]


def run_ours(backend, dtype, steps, init):
    params = [p.clone().requires_grad_() for p in init]
    specs = group_specs(steps)
    groups = [dict(spec, params=[p]) for spec, p in zip(specs, params, strict=True)]
    opt = FusedScheduledAdamW(groups, Constant(1.0), backend=backend)
    for k in range(steps):
        for p, g in zip(params, fresh_grads(params, k, dtype), strict=True):
            p.grad = g
        opt.step()
    return opt, params


def run_torch(dtype, steps, init):
    """torch.optim.AdamW with a LambdaLR giving update k (scheduler index k - 1) lr_at(k)."""
    params = [p.clone().to(dtype).requires_grad_() for p in init]
    specs = group_specs(steps)
    groups = [
        dict({k: v for k, v in spec.items() if k != "schedule"}, params=[p])
        for spec, p in zip(specs, params, strict=True)
    ]
    opt = torch.optim.AdamW(groups, lr=1.0, foreach=False)
    lambdas = [lambda c, s=spec["schedule"]: s.lr_at(c + 1) for spec in specs]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambdas)
    for k in range(steps):
        for p, g in zip(params, fresh_grads(params, k, dtype), strict=True):
            p.grad = g
        opt.step()
        sched.step()
    return opt, params


def state_tensors(opt, params):
    out = []
    for p in params:
        state = opt.state[p]
        out += [p.detach(), state["exp_avg"], state["exp_avg_sq"]]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_trajectory_within_twice_torch_own_error(backend):
    steps = STEPS[backend]
    init = make_groups(torch.float32)
    gold_opt, gold = run_torch(torch.float64, steps, [p.double() for p in init])
    torch_opt, theirs = run_torch(torch.float32, steps, init)
    opt, ours = run_ours(backend, torch.float32, steps, init)

    gold_state = state_tensors(gold_opt, gold)
    for mine, eager, ref in zip(
        state_tensors(opt, ours), state_tensors(torch_opt, theirs), gold_state, strict=True
    ):
        eager_err = (eager.double() - ref).abs().max().item()
        our_err = (mine.double() - ref).abs().max().item()
        # Our fp32 error against the float64 run may be at most twice eager torch's own.
        assert our_err <= 2 * eager_err + 1e-7 * ref.abs().max().item(), (our_err, eager_err)
    for p in ours:
        assert opt.state[p]["step"].dtype == torch.float32
        assert opt.state[p]["step"].item() == steps
    assert opt.counter.item() == steps


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_float64_trajectory_matches_torch_to_rounding(backend):
    steps = STEPS[backend]
    init = make_groups(torch.float64)
    torch_opt, theirs = run_torch(torch.float64, steps, init)
    opt, ours = run_ours(backend, torch.float64, steps, init)
    for mine, eager in zip(state_tensors(opt, ours), state_tensors(torch_opt, theirs), strict=True):
        torch.testing.assert_close(mine, eager, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lr_tensor_holds_the_last_applied_lr(backend):
    """BR-18's kind: after update k the group's lr is lr_at(k), not the next update's."""
    schedules = [WarmupCosine(1.0, 3, 8), OneCycle(0.5, 8, 2)]
    params = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    groups = [{"params": [p], "schedule": s} for p, s in zip(params, schedules, strict=True)]
    opt = FusedScheduledAdamW(groups, Constant(0.0), backend=backend)
    for g, s in zip(opt.param_groups, schedules, strict=True):
        assert g["lr"].item() == s.lr_at(0)
        assert g["lr"].dtype == torch.float64 and g["lr"].dim() == 0
    for k in range(1, 11):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        for g, s in zip(opt.param_groups, schedules, strict=True):
            assert g["lr"].item() == pytest.approx(s.lr_at(k), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_without_gradient_are_skipped_and_counter_still_advances(backend):
    a, b = torch.ones(4, requires_grad=True), torch.ones(4, requires_grad=True)
    opt = FusedScheduledAdamW([a, b], Constant(1e-2), backend=backend)
    a.grad = torch.ones(4)
    opt.step()
    opt.step()  # a keeps its grad, b never has one
    assert torch.equal(b.detach(), torch.ones(4)) and b not in opt.state
    assert opt.state[a]["step"].item() == 2
    a.grad = None
    opt.step()
    assert opt.counter.item() == 3 and opt.state[a]["step"].item() == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_never_reads_a_tensor_value_on_the_host(backend, no_host_reads):
    """The guard (tests/conftest.py) makes every op and Tensor method that copies a value to
    the host raise; see test_evaluators.py for the test that it catches each kind of read."""
    params = [torch.randn(33, requires_grad=True), torch.randn(2, 5, requires_grad=True)]
    groups = [
        {"params": [params[0]], "schedule": OneCycle(1e-2, 10, 3)},
        {"params": [params[1]], "weight_decay": 0.0},
    ]
    opt = FusedScheduledAdamW(groups, WarmupCosine(1e-3, 2, 10), backend=backend)
    for _ in range(3):  # the first step creates state; later ones reuse it
        for p in params:
            p.grad = torch.randn_like(p)
        with no_host_reads():
            opt.step()
    assert opt.counter.item() == 3


def test_auto_backend_is_torch_on_cpu(caplog):
    with caplog.at_level("DEBUG", logger="fused_sched.optimizer"):
        opt = FusedScheduledAdamW([torch.zeros(2, requires_grad=True)], Constant(1.0))
    assert opt.backend == "torch"
    assert "chose 'torch'" in caplog.text


# --- checkpoints --------------------------------------------------------------------------


def save_load(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True, map_location="cpu")


def train(opt, params, steps, start=0):
    for k in range(start, start + steps):
        for p, g in zip(params, fresh_grads(params, k, params[0].dtype), strict=True):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("split", [1, 4, 7])
def test_resume_at_any_step_is_bit_for_bit(backend, split):
    total = 9
    init = make_groups(torch.float32)
    specs = group_specs(total)

    def build(params):
        groups = [dict(spec, params=[p]) for spec, p in zip(specs, params, strict=True)]
        return FusedScheduledAdamW(groups, Constant(1.0), backend=backend)

    straight = [p.clone().requires_grad_() for p in init]
    opt = build(straight)
    train(opt, straight, total)

    first = [p.clone().requires_grad_() for p in init]
    opt1 = build(first)
    train(opt1, first, split)
    checkpoint = save_load({"params": [p.detach() for p in first], "opt": opt1.state_dict()})

    resumed = [p.clone().requires_grad_() for p in checkpoint["params"]]
    opt2 = build(resumed)
    opt2.load_state_dict(checkpoint["opt"])
    assert opt2.counter.item() == split
    train(opt2, resumed, total - split, start=split)

    for a, b in zip(state_tensors(opt, straight), state_tensors(opt2, resumed), strict=True):
        assert torch.equal(a, b)
    assert opt2.counter.item() == total
    for g1, g2 in zip(opt.param_groups, opt2.param_groups, strict=True):
        assert torch.equal(g1["lr"], g2["lr"])


def test_state_dict_loads_into_torch_adamw_and_continues_identically():
    init = make_groups(torch.float64)
    specs = group_specs(10)
    ours = [p.clone().requires_grad_() for p in init]
    groups = [dict(spec, params=[p]) for spec, p in zip(specs, ours, strict=True)]
    opt = FusedScheduledAdamW(groups, Constant(1.0), backend="torch")
    train(opt, ours, 4)
    saved = save_load(opt.state_dict())

    theirs = [p.detach().clone().requires_grad_() for p in ours]
    torch_groups = [{"params": [p]} for p in theirs]
    topt = torch.optim.AdamW(torch_groups, lr=1.0, foreach=False)
    topt.load_state_dict(saved)
    for tg, spec in zip(topt.param_groups, specs, strict=True):
        # torch reads a group's lr as its next step's: after 4 updates, lr_at(5).
        assert tg["lr"] == spec["schedule"].lr_at(5)
        assert tg["weight_decay"] == spec.get("weight_decay", 1e-2)
    train(opt, ours, 1, start=4)
    train(topt, theirs, 1, start=4)
    for a, b in zip(state_tensors(opt, ours), state_tensors(topt, theirs), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_torch_adamw_state_dict_loads_into_ours_and_counter_follows_steps():
    init = make_groups(torch.float64)
    theirs = [p.clone().requires_grad_() for p in init]
    topt = torch.optim.AdamW(theirs, lr=1e-3, weight_decay=0.0, foreach=False)
    train(topt, theirs, 6)
    saved = save_load(topt.state_dict())

    ours = [p.detach().clone().requires_grad_() for p in theirs]
    opt = FusedScheduledAdamW(ours, Constant(1e-3), weight_decay=0.0, backend="reference")
    opt.load_state_dict(saved)
    assert opt.counter.item() == 6 and opt.counter.dtype == torch.int64
    assert isinstance(opt.param_groups[0]["schedule"], Constant)
    train(opt, ours, 3, start=6)
    train(topt, theirs, 3, start=6)
    for a, b in zip(state_tensors(opt, ours), state_tensors(topt, theirs), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_loaded_state_moves_to_the_parameters_device_and_dtype():
    """BR-22's kind on the CPU: whatever dtype the steps were saved in, they come back as the
    float32 tensors the kernels read, next to the parameters; the counter as int64."""
    p = torch.ones(3, requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1e-3), weight_decay=0.0, backend="torch")
    p.grad = torch.ones(3)
    opt.step()
    saved = opt.state_dict()
    saved["state"][0]["step"] = saved["state"][0]["step"].double()
    saved["schedule_counter"] = saved["schedule_counter"].float()
    opt2 = FusedScheduledAdamW([p], Constant(1e-3), weight_decay=0.0, backend="torch")
    opt2.load_state_dict(saved)
    assert opt2.state[p]["step"].dtype == torch.float32
    assert opt2.counter.dtype == torch.int64 and opt2.counter.item() == 1


# --- bad input ----------------------------------------------------------------------------


def _p():
    return [torch.zeros(2, requires_grad=True)]


BAD = [
    (lambda: FusedScheduledAdamW(_p(), 1e-3), ValueError, "must be a fused_sched.Schedule"),
    (lambda: FusedScheduledAdamW(_p(), Constant(1.0), betas=(1.0, 0.9)), ValueError, "betas="),
    (lambda: FusedScheduledAdamW(_p(), Constant(1.0), betas=(0.9,)), ValueError, "betas="),
    (lambda: FusedScheduledAdamW(_p(), Constant(1.0), eps=0.0), ValueError, "eps=0.0"),
    (lambda: FusedScheduledAdamW(_p(), Constant(1.0), weight_decay=-1), ValueError, "weight_decay"),
    (
        lambda: FusedScheduledAdamW(_p(), Constant(1.0), backend="cuda"),
        ValueError,
        "backend='cuda'",
    ),
    (
        lambda: FusedScheduledAdamW([torch.zeros(2, dtype=torch.complex64)], Constant(1.0)),
        ValueError,
        "complex parameters",
    ),
    (
        lambda: FusedScheduledAdamW([torch.zeros(2, dtype=torch.int64)], Constant(1.0)),
        ValueError,
        "floating point",
    ),
    (
        lambda: FusedScheduledAdamW([{"params": _p(), "schedule": "cosine"}], Constant(1.0)),
        ValueError,
        "schedule='cosine'",
    ),
    (
        lambda: FusedScheduledAdamW([torch.zeros(2, device="meta"), *_p()], Constant(1.0)),
        ValueError,
        "mixes devices",
    ),
]


BAD += [
    (
        lambda: FusedScheduledAdamW([{"params": _p(), "lr": 0.1}], Constant(1.0)),
        ValueError,
        "lr=0.1: the lr comes from the schedule",
    ),
    (
        lambda: FusedScheduledAdamW([{"params": _p(), "maximize": True}], Constant(1.0)),
        ValueError,
        "keys \\['maximize'\\] are not supported",
    ),
    (
        lambda: FusedScheduledAdamW([{"params": _p(), "amsgrad": True}], Constant(1.0)),
        ValueError,
        "amsgrad",
    ),
    (
        lambda: FusedScheduledAdamW([{"params": 2 * _p()[:1]}], Constant(1.0)),
        ValueError,
        "lists a parameter twice",
    ),
]


@pytest.mark.filterwarnings("ignore:optimizer contains a parameter group with duplicate")
@pytest.mark.parametrize("make, error, pattern", BAD)
def test_bad_construction_raises_a_clear_error(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def checkpoint_after_two_steps(**adamw):
    p = torch.ones(3, requires_grad=True)
    opt = torch.optim.AdamW([p], lr=1e-3, foreach=False, **adamw)
    for _ in range(2):
        p.grad = torch.ones(3)
        opt.step()
    return opt.state_dict()


BAD_CHECKPOINTS = [
    (lambda: checkpoint_after_two_steps(eps=0.0), "eps=0.0"),
    (lambda: checkpoint_after_two_steps(amsgrad=True), "amsgrad=True"),
    (lambda: checkpoint_after_two_steps(maximize=True), "maximize=True"),
]


def adam_l2_checkpoint():
    p = torch.ones(3, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-3, weight_decay=0.1)
    p.grad = torch.ones(3)
    opt.step()
    return opt.state_dict()


@pytest.mark.parametrize(
    "make, pattern",
    [*BAD_CHECKPOINTS, (adam_l2_checkpoint, "decoupled_weight_decay=False")],
)
def test_rejected_checkpoint_changes_nothing(make, pattern):
    p = torch.ones(3, requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1e-3), backend="torch")
    p.grad = torch.ones(3)
    opt.step()
    before = (opt.counter.clone(), {k: v.clone() for k, v in opt.state[p].items()})
    with pytest.raises(ValueError, match=pattern):
        opt.load_state_dict(make())
    assert torch.equal(opt.counter, before[0])
    for key, value in before[1].items():
        assert torch.equal(opt.state[p][key], value)
    assert opt.param_groups[0]["eps"] == 1e-8


def test_schedule_change_and_load_update_the_live_tensors_in_place():
    """What a logger or a captured CUDA graph holds keeps following the optimizer."""
    p = torch.zeros(2, requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1.0), backend="torch")
    lr, counter, tables = opt.param_groups[0]["lr"], opt.counter, opt._tables
    p.grad = torch.ones(2)
    opt.step()
    saved = opt.state_dict()
    opt.param_groups[0]["schedule"] = Warmup(0.5, 4)
    opt.step()
    assert lr.item() == 0.25 and opt.param_groups[0]["lr"] is lr
    opt.load_state_dict(saved)
    assert opt.counter is counter and counter.item() == 1 and opt._tables is tables
    assert lr.item() == Warmup(0.5, 4).lr_at(1)


def test_triton_on_a_cpu_without_the_interpreter_is_refused_at_construction(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="backend='triton' needs CUDA parameters"):
        FusedScheduledAdamW(_p(), Constant(1.0), backend="triton")


def test_rejected_param_group_leaves_optimizer_unchanged():
    opt = FusedScheduledAdamW(_p(), Constant(1.0))
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": _p(), "eps": -1.0})
    assert len(opt.param_groups) == 1


def test_writing_a_float_into_lr_raises_and_changes_nothing():
    p = torch.ones(2, requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1.0), backend="torch")
    p.grad = torch.ones(2)
    opt.param_groups[0]["lr"] = 0.1
    with pytest.raises(ValueError, match="assign param_groups\\[g\\]\\['schedule'\\]"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(2)) and opt.counter.item() == 0


def test_bad_hyperparameter_set_between_steps_raises_before_any_update():
    p = torch.ones(2, requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1.0), backend="torch")
    p.grad = torch.ones(2)
    opt.param_groups[0]["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError, match="betas"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(2)) and opt.counter.item() == 0


def test_changing_a_group_schedule_takes_effect_on_the_next_step():
    p = torch.zeros(2, requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1.0), backend="torch")
    p.grad = torch.ones(2)
    opt.step()
    opt.param_groups[0]["schedule"] = Constant(0.25)
    opt.step()
    assert opt.param_groups[0]["lr"].item() == 0.25


def test_sparse_gradients_are_refused():
    p = torch.zeros(3, requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1.0))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(NotImplementedError, match="sparse gradients"):
        opt.step()


def snapshot(opt, params):
    return [t.clone() for t in state_tensors(opt, params)] + [
        opt.counter.clone(),
        *[g["lr"].clone() for g in opt.param_groups],
    ]


def two_params_after_one_step(backend="torch"):
    a, b = torch.ones(4, requires_grad=True), torch.ones(4, requires_grad=True)
    opt = FusedScheduledAdamW([a, b], Warmup(1e-2, 5), backend=backend)
    a.grad, b.grad = torch.ones(4), torch.ones(4)
    opt.step()
    return opt, [a, b]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "spoil, pattern",
    [
        (
            lambda a, b: (
                setattr(b, "grad", None),
                setattr(b, "grad_dtype", None),  # torch refuses the mismatch unless told
                setattr(b, "grad", torch.ones(4, dtype=torch.float64)),
            ),
            "gradient of shape",
        ),
        (
            lambda a, b: (setattr(b, "data", torch.ones(6)), setattr(b, "grad", torch.ones(6))),
            "resized",
        ),
    ],
    ids=["grad-dtype", "resized-param"],
)
def test_a_rejected_step_changes_nothing(backend, spoil, pattern):
    opt, (a, b) = two_params_after_one_step(backend)
    before = snapshot(opt, [a])
    a.grad = torch.ones(4)
    spoil(a, b)
    with pytest.raises(ValueError, match=pattern):
        opt.step()
    for x, y in zip(snapshot(opt, [a]), before, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    "spoil, pattern",
    [
        (lambda sd: sd["state"][0].update(exp_avg=torch.zeros(1)), "exp_avg of parameter 0"),
        (lambda sd: sd["state"][1].pop("exp_avg_sq"), "lacks \\['exp_avg_sq'\\]"),
        (lambda sd: sd.update(schedule_counter=torch.tensor(-5)), "schedule_counter"),
        (lambda sd: sd.update(schedule_counter=3.5), "schedule_counter"),
        (lambda sd: sd["param_groups"][0].update(betas=(1.5, 0.9)), "betas"),
    ],
    ids=["moment-shape", "missing-moment", "negative-counter", "fractional-counter", "betas"],
)
def test_a_rejected_checkpoint_of_ours_changes_nothing(spoil, pattern):
    opt, params = two_params_after_one_step()
    saved = copy.deepcopy(opt.state_dict())  # a state dict shares the live state's dicts
    spoil(saved)
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match=pattern):
        opt.load_state_dict(saved)
    for x, y in zip(snapshot(opt, params), before, strict=True):
        assert torch.equal(x, y)


def test_a_python_int_counter_loads():
    opt, _ = two_params_after_one_step()
    saved = opt.state_dict()
    saved["schedule_counter"] = 3
    opt.load_state_dict(saved)
    assert opt.counter.item() == 3 and opt.param_groups[0]["lr"].item() == Warmup(1e-2, 5).lr_at(3)


@pytest.mark.parametrize("copy_fn", [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))])
def test_copies_are_working_independent_optimizers(copy_fn):
    opt, params = two_params_after_one_step()
    twin = copy_fn(opt)
    twin_params = [p for group in twin.param_groups for p in group["params"]]
    for p, q in zip(params, twin_params, strict=True):
        p.grad, q.grad = torch.ones(4), torch.ones(4)
    opt.step()
    twin.step()
    for x, y in zip(state_tensors(opt, params), state_tensors(twin, twin_params), strict=True):
        assert torch.equal(x, y)
    assert twin.counter.item() == 2 and twin.param_groups[0]["lr"].item() == 4e-3
    assert twin.counter is not opt.counter


def test_an_attached_torch_scheduler_is_refused():
    opt, params = two_params_after_one_step()
    torch.optim.lr_scheduler.ExponentialLR(opt, gamma=10.0)
    with pytest.raises(ValueError, match="torch LR scheduler was attached"):
        opt.step()


def test_assigning_a_schedule_repairs_a_replaced_lr():
    opt, params = two_params_after_one_step()
    opt.param_groups[0]["lr"] = 0.1
    with pytest.raises(ValueError, match="assign param_groups"):
        opt.step()
    opt.param_groups[0]["schedule"] = Constant(0.5)
    opt.step()
    assert opt.param_groups[0]["lr"].item() == 0.5
