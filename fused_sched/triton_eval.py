"""Host launcher for the Triton schedule evaluator (``fused_sched.kernels.schedule``)."""

from __future__ import annotations

import torch


def evaluate_triton(table: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Evaluate a phase table at int64 ``steps`` (1-D) with the device function the update
    kernels inline. On a CPU this needs ``TRITON_INTERPRET=1``. Returns float64 like ``steps``.
    """
    from fused_sched.kernels.schedule import schedule_lr_kernel

    if table.dtype != torch.float64 or table.dim() != 2:
        raise ValueError(f"table must be a 2-D float64 tensor, got {table.dtype} {table.shape}")
    steps = steps.to(device=table.device, dtype=torch.int64).reshape(-1).contiguous()
    out = torch.empty(steps.shape, dtype=torch.float64, device=table.device)
    if steps.numel():
        schedule_lr_kernel[(steps.numel(),)](table.contiguous(), steps, out, ROWS=table.shape[0])
    return out
