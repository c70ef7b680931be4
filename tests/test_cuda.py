"""On a GPU only (marked ``cuda``, skipped elsewhere): graph capture, allocation, devices."""

import io

import pytest
import torch

from fused_sched import Constant, FusedScheduledAdamW, OneCycle

pytestmark = pytest.mark.cuda
BACKENDS = ["triton", "torch"]


def model_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 257), torch.nn.GELU(), torch.nn.Linear(257, 10)
    ).cuda()
    x = torch.randn(32, 64, device="cuda")
    y = torch.randint(0, 10, (32,), device="cuda")
    return model, x, y


def train_step(model, opt, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_replays_equal_eager_steps_and_advance_the_schedule(backend):
    schedule = OneCycle(1e-2, total_steps=40, warmup_steps=10)
    warmup, replays = 3, 20

    eager_model, x, y = model_and_data()
    eager_opt = FusedScheduledAdamW(eager_model.parameters(), schedule, backend=backend)
    for _ in range(warmup + replays):
        eager_opt.zero_grad(set_to_none=False)
        train_step(eager_model, eager_opt, x, y)

    model, x, y = model_and_data()
    opt = FusedScheduledAdamW(model.parameters(), schedule, backend=backend)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            opt.zero_grad(set_to_none=False)
            train_step(model, opt, x, y)
    torch.cuda.current_stream().wait_stream(side)

    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=False)
    with torch.cuda.graph(graph):
        train_step(model, opt, x, y)
    # Capture recorded the step without running it: the counter is still at `warmup`.
    assert opt.counter.item() == warmup
    for replay in range(1, replays + 1):
        for p in model.parameters():
            p.grad.zero_()
        graph.replay()
        torch.cuda.synchronize()
        assert opt.counter.item() == warmup + replay
        lr = opt.param_groups[0]["lr"].item()
        assert lr == pytest.approx(schedule.lr_at(warmup + replay), rel=1e-12)

    for a, b in zip(model.parameters(), eager_model.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # the same kernels: equal up to float32 rounding


def test_triton_backend_allocates_nothing_after_its_first_step():
    model, x, y = model_and_data()
    opt = FusedScheduledAdamW(model.parameters(), Constant(1e-3), backend="triton")
    train_step(model, opt, x, y)
    torch.cuda.synchronize()
    params = list(model.parameters())
    before = torch.cuda.memory_stats()["allocation.all.allocated"]
    for _ in range(5):
        opt.step()  # same gradients: nothing but the update runs
    torch.cuda.synchronize()
    assert torch.cuda.memory_stats()["allocation.all.allocated"] == before
    assert all(p.grad is not None for p in params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_br22_checkpoint_mapped_to_cpu_resumes_on_the_gpu(backend):
    def run(opt, p, steps):
        for _ in range(steps):
            p.grad = torch.ones_like(p)
            opt.step()

    p = torch.ones(1, device="cuda", requires_grad=True)
    opt = FusedScheduledAdamW([p], Constant(1e-3), weight_decay=0.0, backend=backend)
    run(opt, p, 3)
    assert p.item() == pytest.approx(0.99700000003, abs=1e-7)
    buffer = io.BytesIO()
    torch.save({"p": p.detach(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, map_location="cpu", weights_only=True)

    q = saved["p"].cuda().requires_grad_()
    opt2 = FusedScheduledAdamW([q], Constant(1e-3), weight_decay=0.0, backend=backend)
    opt2.load_state_dict(saved["opt"])
    assert opt2.counter.device == q.device and opt2.state[q]["step"].device == q.device
    run(opt2, q, 2)
    assert opt2.counter.item() == 5 and opt2.state[q]["step"].item() == 5
    assert q.item() == pytest.approx(0.99500006, abs=1e-7)
    run(opt, p, 2)
    assert torch.equal(p, q)
