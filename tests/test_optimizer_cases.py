"""Bug-report cases (../shared/cases/bug-reports.md) on the optimizer, for every backend."""

import json
import subprocess
import sys

import pytest
import torch

from fused_sched import Constant, FusedScheduledAdamW, Warmup, WarmupCosine, compat

BACKENDS = ["reference", "torch", "triton"]


def one_step(backend, schedule, p0, g, dtype=torch.float32, weight_decay=0.01, steps=1):
    p = torch.tensor(p0, dtype=dtype, requires_grad=True)
    opt = FusedScheduledAdamW([p], schedule, weight_decay=weight_decay, backend=backend)
    for _ in range(steps):
        p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
    return p.detach(), opt.state[p], opt


@pytest.mark.parametrize("backend", BACKENDS)
def test_br01_first_warmup_update_moves_the_weights(backend):
    schedule = WarmupCosine(1e-3, 4, 10, min_lr=1e-5)
    p, _, opt = one_step(backend, schedule, [1.0], [0.5], dtype=torch.float64)
    assert opt.param_groups[0]["lr"].item() == pytest.approx(2.5e-4, rel=1e-12)
    assert p.item() == pytest.approx(0.999747500005, rel=1e-11)
    p32, _, _ = one_step(backend, schedule, [1.0], [0.5])
    assert p32.item() == pytest.approx(0.99974751, abs=1e-7) and p32.item() != 1.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lr", [0.0, 1e-30])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_br24_zero_or_tiny_lr_leaves_parameters_exactly(backend, lr, dtype):
    p0, g = [1.0, -2.0, 3.0], [0.0, 0.5, 0.0]
    p, state, _ = one_step(backend, Constant(lr), p0, g, dtype=dtype)
    assert torch.equal(p, torch.tensor(p0, dtype=dtype))
    assert state["step"].item() == 1
    m, v = state["exp_avg"].double(), state["exp_avg_sq"].double()
    rtol = {torch.float64: 1e-13, torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 1e-3}
    expected_m = torch.tensor([0.0, 0.05, 0.0], dtype=torch.float64)
    expected_v = torch.tensor([0.0, 0.00025, 0.0], dtype=torch.float64)
    torch.testing.assert_close(m, expected_m, rtol=rtol[dtype], atol=0)
    torch.testing.assert_close(v, expected_v, rtol=rtol[dtype], atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "schedule, steps, expected64, expected32",
    [
        (Constant(0.0), 3, 1.0, 1.0),
        (Constant(1e-3), 2, 0.99980001, 0.99980001),
        (Warmup(1e-3, 4), 4, 0.9997500218742186, 0.99975002),
    ],
)
def test_br25_weight_decay_scales_with_the_scheduled_lr(
    backend, schedule, steps, expected64, expected32
):
    for dtype, expected, tol in [
        (torch.float64, expected64, 1e-15),
        (torch.float32, expected32, 6e-8),
    ]:
        p, _, _ = one_step(backend, schedule, [1.0], [0.0], dtype, weight_decay=0.1, steps=steps)
        assert p.item() == pytest.approx(expected, abs=tol)


RESUME_SCRIPT = """
import json, sys, torch
from fused_sched import FusedScheduledAdamW, compat
path, mode = sys.argv[1], sys.argv[2]
schedule = compat.hf("linear", 1e-5, num_warmup_steps=0, num_training_steps=10)
saved = torch.load(path, weights_only=True)
p = saved["param"].clone().requires_grad_()
opt = FusedScheduledAdamW([p], schedule, backend="torch")
if mode == "full":
    opt.load_state_dict(saved["opt"])
else:
    opt.counter.copy_(saved["opt"]["schedule_counter"])
lrs = []
for _ in range(5):
    p.grad = torch.ones_like(p)
    opt.step()
    lrs.append(opt.param_groups[0]["lr"].item())
print(json.dumps(lrs))
"""


@pytest.mark.parametrize("mode", ["full", "counter-only"])
def test_br17_resume_in_a_fresh_process_repeats_no_lr(tmp_path, mode):
    schedule = compat.hf("linear", 1e-5, num_warmup_steps=0, num_training_steps=10)
    p = torch.ones(3, requires_grad=True)
    opt = FusedScheduledAdamW([p], schedule, backend="torch")
    used = []
    for _ in range(5):
        p.grad = torch.ones_like(p)
        opt.step()
        used.append(opt.param_groups[0]["lr"].item())
    assert used == pytest.approx([1e-5, 9e-6, 8e-6, 7e-6, 6e-6], rel=1e-12)
    path = tmp_path / "ckpt.pt"
    torch.save({"param": p.detach(), "opt": opt.state_dict()}, path)

    out = subprocess.run(
        [sys.executable, "-c", RESUME_SCRIPT, str(path), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    resumed = json.loads(out.stdout)
    assert resumed == pytest.approx([5e-6, 4e-6, 3e-6, 2e-6, 1e-6], rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_br18_reported_lr_is_the_lr_the_update_used(backend):
    schedule = compat.hf("cosine_with_restarts", 1.0, 0, 20, num_cycles=2)
    p = torch.zeros(2, requires_grad=True)
    opt = FusedScheduledAdamW([p], schedule, backend=backend)
    for _ in range(10):
        p.grad = torch.ones_like(p)
        opt.step()
    assert opt.param_groups[0]["lr"].item() == pytest.approx(
        0.0244717419, abs=5e-11
    )  # 10 decimals given
    p.grad = torch.ones_like(p)
    opt.step()
    assert opt.param_groups[0]["lr"].item() == pytest.approx(1.0, rel=1e-12)
