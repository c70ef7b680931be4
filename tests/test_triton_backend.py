"""The Triton backend's kernels and launcher against the float64 reference, kernel by kernel.

Without a GPU the kernels run in the Triton interpreter (see conftest.py): sizes stay small.
Trajectories against torch.optim.AdamW, state dicts and the no-host-sync check for every
backend live in test_optimizer.py.
"""

import math

import pytest
import torch

from fused_sched import Constant, InverseSqrt, OneCycle, Warmup, WarmupCosine
from fused_sched.functional import scheduled_adamw
from fused_sched.table import evaluate, rows_for
from fused_sched.triton_backend import BLOCK_SIZE, PLAN_KEY, SUPPORTED_DTYPES, program_map

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# Two full blocks and a tail, a single element, a 3-D tensor: none a multiple of the block.
SIZES = [(2 * BLOCK_SIZE + 37,), (1,), (3, 5, 7), (700,)]
GROUP_INDEX = [0, 1, 1, 2]  # contiguous runs, as the optimizer gathers them
SCHEDULES = [
    WarmupCosine(1e-2, 2, 6, min_lr=1e-4),
    OneCycle(3e-3, 6, 2),
    InverseSqrt(2e-3, 0),
]
HPARAMS = [(0.9, 0.999, 1e-8, 0.01), (0.8, 0.99, 1e-6, 0.0), (0.95, 0.9, 1e-8, 0.1)]


def make_tables(schedules):
    rows = max(rows_for(len(s.phases())) for s in schedules)
    return torch.stack([s.table(rows=rows) for s in schedules]).to(DEVICE)


class Run:
    """The state of one optimizer run through the functional API."""

    def __init__(self, init, param_dtype, moment_dtype, schedules=SCHEDULES, hparams=HPARAMS,
                 group_index=GROUP_INDEX):  # fmt: skip
        self.params = [p.to(DEVICE, param_dtype, copy=True) for p in init]
        self.exp_avgs = [torch.zeros_like(p, dtype=moment_dtype) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, dtype=moment_dtype) for p in self.params]
        self.steps = [torch.zeros((), device=DEVICE) for _ in self.params]
        self.group_index = list(group_index)
        self.tables = make_tables(schedules)
        self.hparams = list(hparams)
        self.counter = torch.zeros((), dtype=torch.int64, device=DEVICE)
        self.lrs = torch.full((len(schedules),), -1.0, dtype=torch.float64, device=DEVICE)
        self.workspace = {}

    def step(self, grads, backend, members=None):
        """One update of the parameters in ``members`` (default: all) with ``grads``."""
        members = range(len(self.params)) if members is None else members
        pick = lambda xs: [xs[i] for i in members]  # noqa: E731
        scheduled_adamw(
            pick(self.params),
            [grads[i].to(DEVICE, self.params[i].dtype) for i in members],
            pick(self.exp_avgs),
            pick(self.exp_avg_sqs),
            pick(self.steps),
            group_index=pick(self.group_index),
            tables=self.tables,
            hparams=self.hparams,
            counter=self.counter,
            lrs=self.lrs,
            backend=backend,
            workspace=self.workspace,
        )

    def state(self):
        return {"p": self.params, "exp_avg": self.exp_avgs, "exp_avg_sq": self.exp_avg_sqs}


def random_tensors(sizes, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(size, generator=gen, dtype=torch.float64).to(DEVICE, dtype) for size in sizes
    ]


def max_error(tensors, reference):
    return max((a.double() - r).abs().max().item() for a, r in zip(tensors, reference, strict=True))


# --- the update against the float64 reference -------------------------------------------


@pytest.mark.interpreter
@pytest.mark.parametrize(("param_dtype", "moment_dtype"), SUPPORTED_DTYPES, ids=str)
def test_update_is_as_close_to_float64_as_eager_torch(param_dtype, moment_dtype):
    """Three groups with their own schedules and hyperparameters, four updates, one of them
    without the last parameter: p, moments, steps, counter and lrs against the reference in
    float64 from the same rounded inputs; the kernel's error at most twice eager torch's (torch
    run with the parameter's dtype for both moments) plus one unit in the last place.

    The interpreter truncates float32 -> bfloat16 casts where a GPU rounds to nearest even, so
    there bfloat16 results come out up to twice as far from float64 as torch's."""
    init = random_tensors(SIZES, seed=1, dtype=param_dtype)
    ours = Run(init, param_dtype, moment_dtype)
    eager = Run(init, param_dtype, param_dtype)
    reference = Run(init, torch.float64, torch.float64)
    for k in range(4):
        grads = random_tensors(SIZES, seed=100 + k, dtype=param_dtype)
        members = [0, 1, 2] if k == 2 else None  # the last parameter lags by one update
        for run, backend in ((ours, "triton"), (eager, "torch"), (reference, "reference")):
            run.step(grads, backend, members)

    ulp = torch.finfo(param_dtype).eps
    for name, expected in reference.state().items():
        scale = max(t.abs().max().item() for t in expected)
        ours_error = max_error(ours.state()[name], expected)
        eager_error = max_error(eager.state()[name], expected)
        assert ours_error <= 2 * eager_error + ulp * scale, (name, ours_error, eager_error)
    assert [s.item() for s in ours.steps] == [s.item() for s in reference.steps] == [4, 4, 4, 3]
    assert ours.counter.item() == reference.counter.item() == 4
    torch.testing.assert_close(ours.lrs, reference.lrs, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(ours.lrs, evaluate(ours.tables, 4), rtol=1e-12, atol=0.0)


@pytest.mark.interpreter
def test_dense_permuted_layout_is_updated_in_place():
    """A channels_last parameter (dense, not contiguous) with gradient and moments alike."""
    init = [torch.randn(2, 3, 5, 7, dtype=torch.float64)]
    ours = Run(init, torch.float32, torch.float32, group_index=[0])
    ours.params = [p.to(memory_format=torch.channels_last) for p in ours.params]
    ours.exp_avgs = [torch.zeros_like(p) for p in ours.params]
    ours.exp_avg_sqs = [torch.zeros_like(p) for p in ours.params]
    reference = Run(
        [p.double() for p in ours.params], torch.float64, torch.float64, group_index=[0]
    )
    for k in range(2):
        grad = random_tensors([init[0].shape], seed=k)[0].to(memory_format=torch.channels_last)
        ours.step([grad], "triton")
        reference.step([grad], "reference")
    assert ours.params[0].is_contiguous(memory_format=torch.channels_last)
    for name, expected in reference.state().items():
        torch.testing.assert_close(ours.state()[name][0].double(), expected[0], rtol=1e-5,
                                   atol=1e-6)  # fmt: skip


# --- the launcher's plan: alignment, dtype combinations, rebuilds ---------------------------


@pytest.mark.interpreter
def test_unaligned_view_takes_the_unaligned_launch_and_leaves_its_neighbours_alone():
    buffer = torch.randn(BLOCK_SIZE + 200, dtype=torch.float64).float().to(DEVICE)
    view = buffer[1 : BLOCK_SIZE + 101]  # 4 bytes into the buffer: not 16-byte aligned
    assert view.data_ptr() % 16 != 0
    init = [view.double().cpu(), torch.randn(300, dtype=torch.float64)]
    ours = Run(init, torch.float32, torch.float32, group_index=[0, 0])
    ours.params[0] = view
    reference = Run(init, torch.float64, torch.float64, group_index=[0, 0])
    untouched = (buffer[:1].clone(), buffer[BLOCK_SIZE + 101 :].clone())
    for k in range(2):
        grads = random_tensors([view.shape, (300,)], seed=10 + k)
        ours.step(grads, "triton")
        reference.step(grads, "reference")

    launches = ours.workspace[PLAN_KEY].launches
    assert [(launch.constexprs["ALIGNED"], launch.grid) for launch in launches] == [
        (True, (1,)),
        (False, (2,)),
    ]
    for name, expected in reference.state().items():
        for got, want in zip(ours.state()[name], expected, strict=True):
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(buffer[:1], untouched[0])
    assert torch.equal(buffer[BLOCK_SIZE + 101 :], untouched[1])


@pytest.mark.interpreter
def test_one_update_launch_per_dtype_combination():
    init = [torch.randn(5, dtype=torch.float64) for _ in range(4)]
    run = Run(init, torch.float32, torch.float32, group_index=[0, 0, 0, 0])
    run.params[1], run.params[3] = run.params[1].bfloat16(), run.params[3].bfloat16()
    run.exp_avgs[3], run.exp_avg_sqs[3] = run.exp_avgs[3].bfloat16(), run.exp_avg_sqs[3].bfloat16()
    run.step(random_tensors([(5,)] * 4, seed=0), "triton")
    launches = run.workspace[PLAN_KEY].launches
    dtypes = [
        (str(c.constexprs["PARAM_DTYPE"]), str(c.constexprs["MOMENT_DTYPE"])) for c in launches
    ]
    assert dtypes == [("fp32", "fp32"), ("bf16", "fp32"), ("bf16", "bf16")]
    assert [launch.grid for launch in launches] == [(2,), (1,), (1,)]
    assert run.counter.item() == 1 and all(s.item() == 1.0 for s in run.steps)


@pytest.mark.interpreter
def test_plan_is_rebuilt_when_gradients_move_and_only_then():
    init = random_tensors(SIZES, seed=2)
    ours = Run(init, torch.float32, torch.float32)
    reference = Run(init, torch.float64, torch.float64)
    grads = random_tensors(SIZES, seed=3)

    ours.step(grads, "triton")
    reference.step(grads, "reference")
    plan = ours.workspace[PLAN_KEY]
    for g, new in zip(grads, random_tensors(SIZES, seed=4), strict=True):
        g.copy_(new)  # the same gradient tensors, new values: nothing to rebuild
    ours.step(grads, "triton")
    reference.step(grads, "reference")
    assert ours.workspace[PLAN_KEY] is plan

    kept = grads  # still alive, so the new gradients cannot reuse their memory
    grads = random_tensors(SIZES, seed=5)
    ours.step(grads, "triton")
    reference.step(grads, "reference")
    assert ours.workspace[PLAN_KEY] is not plan
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(kept, grads, strict=True))

    for name, expected in reference.state().items():
        for got, want in zip(ours.state()[name], expected, strict=True):
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    assert ours.counter.item() == 3


@pytest.mark.interpreter
def test_changed_hyperparameters_rebuild_only_their_tensor():
    init = [torch.ones(4, dtype=torch.float64)]
    run = Run(init, torch.float32, torch.float32, [Constant(1e-3)], [(0.9, 0.999, 1e-8, 0.0)], [0])
    grads = [torch.ones(4, device=DEVICE)]
    run.step(grads, "triton")
    plan = run.workspace[PLAN_KEY]
    run.hparams = [(0.9, 0.999, 1e-8, 0.5)]
    run.step(grads, "triton")
    assert run.workspace[PLAN_KEY] is plan
    reference = Run(init, torch.float64, torch.float64, [Constant(1e-3)], [(0.9, 0.999, 1e-8, 0.0)],
                    [0])  # fmt: skip
    reference.step(grads, "reference")
    reference.hparams = [(0.9, 0.999, 1e-8, 0.5)]
    reference.step(grads, "reference")
    torch.testing.assert_close(run.params[0].double(), reference.params[0], rtol=1e-6, atol=0.0)


@pytest.mark.interpreter
def test_without_gradients_every_group_still_gets_its_lr_and_the_counter_advances():
    run = Run([torch.ones(3, dtype=torch.float64)], torch.float32, torch.float32, group_index=[2])
    for _ in range(2):
        run.step([], "triton", members=[])
    assert run.counter.item() == 2 and run.steps[0].item() == 0.0
    torch.testing.assert_close(run.lrs, evaluate(run.tables, 2), rtol=1e-12, atol=0.0)
    run.step([torch.ones(3)], "triton")  # group 2 alone has a gradient: groups 0, 1 get lrs too
    torch.testing.assert_close(run.lrs, evaluate(run.tables, 3), rtol=1e-12, atol=0.0)
    assert run.steps[0].item() == 1.0


# --- the program map, for sizes past 2**31 without allocating them ------------------------


def test_program_map_of_a_tensor_past_int32_is_exact():
    huge = 2**31 + 8
    tensors, starts = program_map([5, huge, 3000], BLOCK_SIZE)
    assert tensors.dtype == starts.dtype == torch.int64
    blocks = [1, math.ceil(huge / BLOCK_SIZE), 3]
    assert tensors.tolist() == [0] * blocks[0] + [1] * blocks[1] + [2] * blocks[2]
    huge_starts = starts[tensors == 1]
    assert huge_starts[-1].item() == 2**31  # the tail block holds elements 2**31 ... 2**31 + 7
    assert huge_starts[-2].item() == 2**31 - BLOCK_SIZE
    assert torch.equal(huge_starts, torch.arange(blocks[1], dtype=torch.int64) * BLOCK_SIZE)
    assert starts[tensors == 2].tolist() == [0, 1024, 2048]


@pytest.mark.parametrize("numels", [[], [0], [0, 7, 0], [1024, 1025, 1], [3000, 5, 2048]])
def test_program_map_covers_each_tensor_once(numels):
    tensors, starts = program_map(numels, 1024)
    for i, n in enumerate(numels):
        covered = torch.cat([torch.arange(s, min(s + 1024, n)) for s in starts[tensors == i]] or
                            [torch.zeros(0, dtype=torch.int64)])  # fmt: skip
        assert torch.equal(covered, torch.arange(n))


@pytest.mark.parametrize(
    ("numels", "block_size", "pattern"),
    [([4, -1], 1024, r"numels=\[4, -1\] must be >= 0"), ([4], 0, r"block_size=0 must be an int")],
)
def test_program_map_rejects(numels, block_size, pattern):
    with pytest.raises(ValueError, match=pattern):
        program_map(numels, block_size)


# --- what the launcher refuses ------------------------------------------------------------


def _one_param_call(param=None, **changes):
    """Arguments of one valid call for one fp32 parameter ``param`` (default 6 ones; its
    gradient and moments contiguous), with ``changes`` applied."""
    p = torch.ones(6, device=DEVICE) if param is None else param
    args = {
        "params": [p],
        "grads": [torch.ones(p.shape, device=DEVICE)],
        "exp_avgs": [torch.zeros(p.shape, device=DEVICE)],
        "exp_avg_sqs": [torch.zeros(p.shape, device=DEVICE)],
        "state_steps": [torch.zeros((), device=DEVICE)],
        "group_index": [0],
        "tables": make_tables([Constant(1e-3)]),
        "hparams": [(0.9, 0.999, 1e-8, 0.0)],
        "counter": torch.zeros((), dtype=torch.int64, device=DEVICE),
        "lrs": torch.zeros(1, dtype=torch.float64, device=DEVICE),
    }
    args.update(changes)
    return args


def _six(dtype=torch.float32, device=DEVICE):
    return [torch.zeros(6, dtype=dtype, device=device)]


F64 = torch.float64
REJECTED = [
    ({"param": torch.ones(3, 2, device=DEVICE).t()},
     r"params\[0\] \(shape \(2, 3\), strides \(1, 2\)\).*must share one dense layout"),
    ({"param": torch.ones(12, device=DEVICE)[::2]}, r"strides \(2,\).*must share one dense layout"),
    ({"grads": _six(F64)}, r"param torch.float32, grad torch.float64"),
    ({"exp_avgs": _six(torch.bfloat16)}, r"exp_avg torch.bfloat16, exp_avg_sq torch.float32"),
    ({"param": torch.ones(6, device=DEVICE, dtype=F64), "grads": _six(F64)},
     r"param torch.float64, grad torch.float64, exp_avg torch.float32.*supported"),
    ({"exp_avg_sqs": [torch.zeros(7, device=DEVICE)]}, r"exp_avg_sqs\[0\] has shape \(7,\)"),
    ({"state_steps": [torch.zeros((), device=DEVICE, dtype=F64)]},
     r"state_steps\[0\] must be one float32"),
    ({"grads": _six(device="meta")}, r"grads\[0\] is on meta"),
    ({"group_index": [1]}, r"group_index\[0\]=1 is not one of the 1 groups"),
    ({"group_index": [0, 0]}, r"one entry per parameter, got lengths \[1, 1, 1, 1, 1, 2\]"),
    ({"tables": make_tables([Constant(1e-3)]).float()}, r"tables must be float64"),
    ({"hparams": [(0.9, 0.999, 1e-8, 0.0)] * 2}, r"hparams has 2 groups, tables has 1"),
    ({"counter": torch.zeros((), device=DEVICE)}, r"counter must be one int64"),
    ({"lrs": torch.zeros(2, dtype=F64, device=DEVICE)}, r"lrs must be 1 contiguous float64"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "pattern"), REJECTED)
def test_launcher_rejects_what_the_kernel_cannot_update(changes, pattern):
    args = _one_param_call(**changes)
    before = args["params"][0].clone()
    with pytest.raises(ValueError, match=pattern):
        scheduled_adamw(**args, backend="triton", workspace={})
    assert torch.equal(args["params"][0], before) and args["counter"].item() == 0


# --- bug reports --------------------------------------------------------------------------

LOW_PRECISION = [
    (torch.float32, torch.float32),
    (torch.bfloat16, torch.bfloat16),
    (torch.bfloat16, torch.float32),
    (torch.float16, torch.float16),
    (torch.float16, torch.float32),
]


@pytest.mark.interpreter
@pytest.mark.parametrize("lr", [0.0, 1e-30])
@pytest.mark.parametrize(("param_dtype", "moment_dtype"), LOW_PRECISION, ids=str)
def test_br24_zero_or_tiny_lr_leaves_parameters_exactly_unchanged(lr, param_dtype, moment_dtype):
    init = [torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)]
    run = Run(init, param_dtype, moment_dtype, [Constant(lr)], [(0.9, 0.999, 1e-8, 0.01)], [0])
    run.step([torch.tensor([0.0, 0.5, 0.0])], "triton")
    p = run.params[0]
    assert not p.isnan().any()
    assert torch.equal(p, init[0].to(DEVICE, param_dtype))
    assert run.steps[0].item() == 1.0
    rtol = torch.finfo(moment_dtype).eps
    expected_m = torch.tensor([0.0, 0.05, 0.0], dtype=torch.float64)
    expected_v = torch.tensor([0.0, 0.00025, 0.0], dtype=torch.float64)
    torch.testing.assert_close(run.exp_avgs[0].double().cpu(), expected_m, rtol=rtol, atol=0.0)
    torch.testing.assert_close(run.exp_avg_sqs[0].double().cpu(), expected_v, rtol=rtol, atol=0)


@pytest.mark.interpreter
@pytest.mark.parametrize(
    ("schedule", "steps", "expected", "tolerance"),
    [
        (Constant(0.0), 3, 1.0, 0.0),
        (Constant(1e-3), 2, 0.99980001, 6e-8),
        (Warmup(1e-3, 4), 4, 0.9997500218742186, 6e-8),  # lrs 2.5e-4, 5e-4, 7.5e-4, 1e-3
    ],
)
def test_br25_weight_decay_scales_with_the_scheduled_lr(schedule, steps, expected, tolerance):
    run = Run([torch.ones(1, dtype=torch.float64)], torch.float32, torch.float32, [schedule],
              [(0.9, 0.999, 1e-8, 0.1)], [0])  # fmt: skip
    for _ in range(steps):
        run.step([torch.zeros(1)], "triton")
    assert abs(run.params[0].item() - expected) <= tolerance
    assert run.lrs.item() == pytest.approx(schedule.lr_at(steps), rel=1e-12)


@pytest.mark.cuda
def test_br27_a_tensor_past_int32_is_updated_whole():
    """One fp32 parameter of 2**31 + 8 elements (p, g, m, v and a comparison: about 43 GB)."""
    n = 2**31 + 8
    if torch.cuda.get_device_properties(DEVICE).total_memory < 48 * 2**30:
        pytest.skip("needs about 48 GiB of GPU memory")
    run = Run([], torch.float32, torch.float32, [Constant(1e-3)], [(0.9, 0.999, 1e-8, 0.0)], [0])
    run.params = [torch.ones(n, device=DEVICE)]
    run.exp_avgs = [torch.zeros(n, device=DEVICE)]
    run.exp_avg_sqs = [torch.zeros(n, device=DEVICE)]
    run.steps = [torch.zeros((), device=DEVICE)]
    run.step([torch.ones(n, device=DEVICE)], "triton")
    p, m, v = run.params[0], run.exp_avgs[0], run.exp_avg_sqs[0]
    expected = 0.9990000128746033
    assert torch.equal(p, torch.full_like(p, expected))  # every element, not only the probes
    for i in (0, 2**31 - 1, 2**31, 2**31 + 7):
        assert p[i].item() == expected
        assert m[i].item() == pytest.approx(0.1, rel=1e-7)
        assert v[i].item() == pytest.approx(0.001, rel=1e-7)
