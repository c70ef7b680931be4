"""Per-step time of FusedScheduledAdamW against torch.optim.AdamW + a host OneCycleLR.

Each contender runs the same parameters and gradients; a round times ``--steps`` consecutive
steps of every contender in turn (interleaved, so drift in the machine hits all alike), and the
script reports the median and 20th/80th percentiles of the per-step time over ``--rounds``
rounds, the ratio to torch fused AdamW + OneCycleLR, and on a GPU the GB/s moved against the 28
bytes an fp32 AdamW step must move per parameter (read p, g, m, v; write p, m, v) and the
fraction of the device's measured copy bandwidth. Rows are appended to a CSV file.

    python bench/step_time.py                  # both configurations, default backend
    python bench/step_time.py --config small --rounds 30 --backends torch,reference
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from fused_sched import FusedScheduledAdamW, OneCycle

BYTES_PER_PARAM = 28  # fp32 AdamW: read p, g, m, v and write p, m, v, 4 bytes each
TOTAL_STEPS = 10**9  # schedules long enough never to end inside a benchmark


def make_params(config: str, device: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if config == "large":  # 11.0M parameters in a few large tensors
        shapes = [(4096, 1024), (1024, 4096), (1024, 1024), (1024, 1024), (521, 1000)]
    else:  # 300 small tensors of 500 to 4000 elements
        sizes = torch.randint(500, 4000, (300,), generator=gen).tolist()
        shapes = [(n,) for n in sizes]
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device).requires_grad_()
        p.grad = torch.randn(shape, generator=gen).to(device) * 1e-3
        params.append(p)
    return params


def clone(params: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = p.grad.clone()
        out.append(q)
    return out


def contenders(params, device: str, backends: list[str]) -> dict:
    """name -> a function doing one training-loop step of that optimizer (and scheduler)."""
    schedule_args = {"max_lr": 1e-3, "total_steps": TOTAL_STEPS}
    runs = {}
    for name, extra in [("fused", {"fused": True}), ("foreach", {"foreach": True})]:
        opt = torch.optim.AdamW(clone(params), lr=1e-3, **extra)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, pct_start=0.3, **schedule_args)

        def step(opt=opt, sched=sched):
            opt.step()
            sched.step()

        runs[f"torch {name} + OneCycleLR"] = step
    ours_schedule = OneCycle(1e-3, TOTAL_STEPS, int(0.3 * TOTAL_STEPS))
    for backend in backends:
        opt = FusedScheduledAdamW(clone(params), ours_schedule, backend=backend)
        runs[f"fused_sched {opt.backend}"] = opt.step
        if device == "cuda":
            runs[f"fused_sched {opt.backend} graph"] = captured(opt)
    return runs


def captured(opt: FusedScheduledAdamW):
    """The optimizer step captured once in a CUDA graph; each call replays it."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    return graph.replay


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_rounds(runs: dict, device: str, steps: int, rounds: int) -> dict[str, list[float]]:
    for fn in runs.values():  # warm-up: state creation, compilation, allocator
        for _ in range(3):
            fn()
    sync(device)
    samples = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            sync(device)
            samples[name].append((time.perf_counter() - start) / steps)
    return samples


def copy_bandwidth(device: str) -> float | None:
    """Measured device-to-device copy bandwidth in GB/s (bytes read + written)."""
    if device != "cuda":
        return None
    src = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync(device)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * src.numel() / statistics.median(times) / 1e9


def hardware(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return f"{platform.processor()} ({os.cpu_count()} cores)"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True)
        return out.stdout.decode().strip() or "unknown"
    except OSError:
        return "unknown"


def quantiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return cuts[1], statistics.median(values), cuts[7]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=["large", "small", "both"], default="both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backends", default="auto", help="comma-separated fused_sched backends")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--csv", type=Path, default=Path("bench/results/step_time.csv"))
    args = parser.parse_args(argv)

    versions = f"torch {torch.__version__}, python {platform.python_version()}"
    try:
        import triton

        versions += f", triton {triton.__version__}"
    except ImportError:
        pass
    hw, rev = hardware(args.device), commit()
    bandwidth = copy_bandwidth(args.device)
    print(f"# {hw}; {versions}; commit {rev}; torch threads {torch.get_num_threads()}")
    if bandwidth:
        print(f"# measured copy bandwidth {bandwidth:.0f} GB/s")

    rows = []
    configs = ["large", "small"] if args.config == "both" else [args.config]
    for config in configs:
        params = make_params(config, args.device)
        n = sum(p.numel() for p in params)
        runs = contenders(params, args.device, args.backends.split(","))
        samples = time_rounds(runs, args.device, args.steps, args.rounds)
        base = statistics.median(samples["torch fused + OneCycleLR"])
        print(f"\n{config}: {len(params)} tensors, {n / 1e6:.2f}M fp32 parameters, "
              f"{args.rounds} interleaved rounds of {args.steps} steps")  # fmt: skip
        print(f"{'contender':34} {'p20 ms':>8} {'median':>8} {'p80 ms':>8} {'vs fused':>9} "
              f"{'GB/s':>7}")  # fmt: skip
        for name, values in samples.items():
            p20, median, p80 = quantiles(values)
            gbps = BYTES_PER_PARAM * n / median / 1e9
            share = f" ({gbps / bandwidth:.0%})" if bandwidth else ""
            print(f"{name:34} {p20 * 1e3:8.3f} {median * 1e3:8.3f} {p80 * 1e3:8.3f} "
                  f"{median / base:8.2f}x {gbps:7.1f}{share}")  # fmt: skip
            rows.append({
                "date": datetime.date.today().isoformat(), "commit": rev, "hardware": hw,
                "versions": versions, "config": config, "tensors": len(params), "params": n,
                "contender": name, "rounds": args.rounds, "steps": args.steps,
                "p20_ms": p20 * 1e3, "median_ms": median * 1e3, "p80_ms": p80 * 1e3,
                "ratio_vs_fused": median / base, "gbps": gbps,
            })  # fmt: skip

    args.csv.parent.mkdir(parents=True, exist_ok=True)
    new = not args.csv.exists()
    with args.csv.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"\nappended {len(rows)} rows to {args.csv}")


if __name__ == "__main__":
    main()
