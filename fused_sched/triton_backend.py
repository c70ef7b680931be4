"""The ``"triton"`` backend: host launcher of the kernels in ``fused_sched.kernels.adamw``.

One call of :func:`adamw_triton` is one update (see ``fused_sched.functional``) in these launches:
one ``adamw_kernel`` per dtype combination of the parameters (a second one for a combination
only if some of its tensors are not 16-byte aligned), then one ``advance_kernel`` that writes
the lrs and advances every step and the counter.

What the kernels read about the tensors (their addresses, sizes, groups, step tensors, and the
program -> (tensor, block start) map) is built once, as int64 tensors on the device, and kept in
the caller's ``workspace``. It is rebuilt only when one of the tensors moves: every call compares
the ``data_ptr()`` of every tensor, host metadata only. A call with the same tensors as the last
one allocates nothing on the device and reads no device value, so it can be captured in a CUDA
graph; make the first call (and any call after gradients move) before capturing.

Tensors: parameters, gradients and moments of one parameter share one dense layout (contiguous,
or any dense permutation such as channels_last); anything else raises ``ValueError`` (there is no
copying path: it would allocate every step). A tensor that is re-strided or re-typed in place
at the same address with the same size is not noticed.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from fused_sched.kernels.adamw import adamw_kernel, advance_kernel
from fused_sched.table import COLUMNS

__all__ = ["adamw_triton", "program_map", "SUPPORTED_DTYPES", "BLOCK_SIZE", "PLAN_KEY"]

BLOCK_SIZE = 1024  # elements per program of the update
NUM_WARPS = 4
ADVANCE_BLOCK_SIZE = 1024  # step tensors per iteration of the advance kernel
PLAN_KEY = "triton_plan"  # where the workspace keeps the plan (tests look at it)
_HPARAMS_KEY = "triton_hparams"

_TL_DTYPES = {
    torch.float32: tl.float32,
    torch.float64: tl.float64,
    torch.bfloat16: tl.bfloat16,
    torch.float16: tl.float16,
}
# (parameter dtype, moment dtype); a gradient has its parameter's dtype.
SUPPORTED_DTYPES = (
    (torch.float32, torch.float32),
    (torch.float64, torch.float64),
    (torch.bfloat16, torch.float32),
    (torch.bfloat16, torch.bfloat16),
    (torch.float16, torch.float32),
    (torch.float16, torch.float16),
)
# Rows of the per-tensor table the update kernel reads (all int64).
_PARAM, _GRAD, _EXP_AVG, _EXP_AVG_SQ, _STEP, _NUMEL, _GROUP = range(7)


def kernel_dtypes(param_dtype: torch.dtype, moment_dtype: torch.dtype) -> dict:
    """The dtype constexprs of ``adamw_kernel`` for a supported combination: the math runs in
    float32, or in float64 for float64 tensors."""
    compute = torch.float64 if param_dtype == torch.float64 else torch.float32
    return {
        "PARAM_DTYPE": _TL_DTYPES[param_dtype],
        "GRAD_DTYPE": _TL_DTYPES[param_dtype],
        "MOMENT_DTYPE": _TL_DTYPES[moment_dtype],
        "COMPUTE_DTYPE": _TL_DTYPES[compute],
    }


def program_map(numels: Sequence[int], block_size: int = BLOCK_SIZE) -> tuple[Tensor, Tensor]:
    """The update launch's programs for tensors of ``numels`` elements, ``block_size`` each.

    Returns int64 CPU tensors ``(block_tensors, block_starts)``, one entry per program:
    program j updates elements ``[block_starts[j], block_starts[j] + block_size)`` (clipped to
    the size) of tensor ``block_tensors[j]``. Tensors come in order, blocks in order within
    each; an empty tensor has no block. Pure and exact for any size below 2**63: nothing here
    is 32-bit.
    """
    if not (isinstance(block_size, int) and block_size > 0):
        raise ValueError(f"{block_size=} must be an int > 0")
    sizes = [int(n) for n in numels]
    if any(n < 0 for n in sizes):
        raise ValueError(f"numels={sizes} must be >= 0")
    # Host integers throughout (no tensor value is read back), int64 tensors at the end.
    counts = [(n + block_size - 1) // block_size for n in sizes]
    firsts = list(itertools.accumulate(counts, initial=0))
    total = firsts.pop()
    block_tensors = torch.repeat_interleave(
        torch.arange(len(sizes)), torch.tensor(counts, dtype=torch.int64), output_size=total
    )
    first_block = torch.tensor(firsts, dtype=torch.int64)[block_tensors]
    return block_tensors, (torch.arange(total, dtype=torch.int64) - first_block) * block_size


@dataclass
class _Launch:
    """One update launch: its grid, its table arguments, and its constexprs."""

    grid: tuple[int]
    tables: tuple[Tensor, ...]
    constexprs: dict


@dataclass
class _Plan:
    """What the kernels need about one set of tensors, built once for that set."""

    key: tuple  # the per-tensor table's rows, as host lists (see _key)
    launches: list[_Launch]
    step_addrs: Tensor  # int64 (max(n, 1),) on the device, the advance kernel's table
    n_steps: int


def _key(params, grads, exp_avgs, exp_avg_sqs, state_steps, group_index) -> tuple:
    """The rows _PARAM ... _GROUP of the per-tensor table: host metadata only, no sync."""
    ptr = Tensor.data_ptr
    return (
        list(map(ptr, params)),
        list(map(ptr, grads)),
        list(map(ptr, exp_avgs)),
        list(map(ptr, exp_avg_sqs)),
        list(map(ptr, state_steps)),
        list(map(Tensor.numel, params)),
        list(group_index),
    )


def _dense_strides(t: Tensor) -> bool:
    """Whether t's elements exactly fill ``numel`` consecutive slots in some dimension order."""
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape, strict=True) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _check_tensors(i, p, g, m, v, step, device, groups, group) -> None:
    named = {"params": p, "grads": g, "exp_avgs": m, "exp_avg_sqs": v, "state_steps": step}
    for name, t in named.items():
        if t.device != device:
            raise ValueError(f"{name}[{i}] is on {t.device}, not on the tables' device {device}")
        if t.layout != torch.strided:
            raise ValueError(f"{name}[{i}] has layout {t.layout}; only dense tensors are supported")
    if not 0 <= group < groups:
        raise ValueError(f"group_index[{i}]={group} is not one of the {groups} groups")
    if step.dtype != torch.float32 or step.numel() != 1:
        raise ValueError(f"state_steps[{i}] must be one float32 element, got {step.dtype} "
                         f"of shape {tuple(step.shape)}")  # fmt: skip
    if g.dtype != p.dtype or v.dtype != m.dtype or (p.dtype, m.dtype) not in SUPPORTED_DTYPES:
        raise ValueError(
            f"params[{i}] has dtypes param {p.dtype}, grad {g.dtype}, exp_avg {m.dtype}, "
            f"exp_avg_sq {v.dtype}; supported: a gradient of the parameter's dtype and both "
            f"moments of one dtype, (param, moment) one of "
            f"{[(str(a), str(b)) for a, b in SUPPORTED_DTYPES]}"
        )
    for name, t in named.items():
        if name != "state_steps" and t.shape != p.shape:
            raise ValueError(f"{name}[{i}] has shape {tuple(t.shape)}, its parameter has "
                             f"{tuple(p.shape)}")  # fmt: skip
    if not _dense_strides(p) or any(t.stride() != p.stride() for t in (g, m, v)):
        raise ValueError(
            f"params[{i}] (shape {tuple(p.shape)}, strides {p.stride()}), its gradient "
            f"{g.stride()} and moments {m.stride()}, {v.stride()} must share one dense layout; "
            "make the parameter contiguous (p.data = p.data.contiguous()) before its state exists"
        )


def _build_plan(key, streams, device) -> _Plan:
    """Tables and launches for ``streams`` (params, grads, exp_avgs, exp_avg_sqs per
    parameter), whose table rows are ``key``."""
    # One launch per (dtype combination, alignment), in a fixed order.
    buckets: dict[tuple, list[int]] = {}
    for i, tensors in enumerate(streams):
        aligned = all(t.data_ptr() % 16 == 0 for t in tensors)
        buckets.setdefault((tensors[0].dtype, tensors[2].dtype, aligned), []).append(i)
    order = sorted(buckets, key=lambda b: (SUPPORTED_DTYPES.index(b[:2]), not b[2]))

    # Each launch's programs, mapped to the tensors' columns in the per-tensor table.
    block_tensors, block_starts = [torch.zeros(0, dtype=torch.int64)], []
    for bucket in order:
        columns = torch.tensor(buckets[bucket], dtype=torch.int64)
        local, starts = program_map([key[_NUMEL][i] for i in buckets[bucket]])
        block_tensors.append(columns[local])
        block_starts.append(starts)
    blocks = torch.stack([torch.cat(block_tensors), torch.cat([block_tensors[0], *block_starts])])

    # On the device; one unused column when no parameter has a gradient.
    meta = torch.zeros(len(key), max(len(streams), 1), dtype=torch.int64)
    meta[:, : len(streams)] = torch.tensor(key, dtype=torch.int64)
    meta, blocks = meta.to(device), blocks.to(device)

    launches, begin = [], 0
    for bucket, starts in zip(order, block_starts, strict=True):
        end = begin + len(starts)
        if end > begin:
            param_dtype, moment_dtype, aligned = bucket
            constexprs = {**kernel_dtypes(param_dtype, moment_dtype), "ALIGNED": aligned}
            tables = (*meta, blocks[0, begin:end], blocks[1, begin:end])
            launches.append(_Launch((end - begin,), tables, constexprs))
        begin = end
    return _Plan(key, launches, meta[_STEP], len(streams))


def _hparams_tensor(hparams, device, workspace) -> Tensor:
    """(groups, 4) float64 on the device, rebuilt only when a group's hyperparameters change."""
    values = [tuple(map(float, h)) for h in hparams]
    cached = workspace.get(_HPARAMS_KEY)
    if cached is not None and cached[0] == values and cached[1].device == device:
        return cached[1]
    tensor = torch.tensor(values, dtype=torch.float64).reshape(-1, 4).to(device)
    workspace[_HPARAMS_KEY] = (values, tensor)
    return tensor


def _check_shared(tables, counter, lrs, hparams) -> None:
    if tables.dtype != torch.float64 or tables.dim() != 3 or tables.shape[2] != COLUMNS:
        raise ValueError(f"tables must be float64 (groups, rows, {COLUMNS}), got {tables.dtype} "
                         f"{tuple(tables.shape)}")  # fmt: skip
    if not tables.is_contiguous():
        raise ValueError("tables must be contiguous")
    groups = tables.shape[0]
    if len(hparams) != groups:
        raise ValueError(f"hparams has {len(hparams)} groups, tables has {groups}")
    if counter.dtype != torch.int64 or counter.numel() != 1 or counter.device != tables.device:
        raise ValueError(f"counter must be one int64 element on {tables.device}, got "
                         f"{counter.dtype} {tuple(counter.shape)} on {counter.device}")  # fmt: skip
    lrs_ok = lrs.dtype == torch.float64 and lrs.is_contiguous() and lrs.device == tables.device
    if not lrs_ok or lrs.numel() != groups:
        raise ValueError(f"lrs must be {groups} contiguous float64 on {tables.device}, got "
                         f"{lrs.dtype} {tuple(lrs.shape)} on {lrs.device}")  # fmt: skip
    if tables.device.type != "cuda" and not triton.knobs.runtime.interpret:
        raise ValueError(f"the triton backend needs CUDA tensors, got {tables.device}; on a CPU "
                         "use backend='torch' (or TRITON_INTERPRET=1 for tests)")  # fmt: skip


def adamw_triton(
    params, grads, exp_avgs, exp_avg_sqs, state_steps, *, group_index, tables, hparams, counter,
    lrs, shapes, workspace,
) -> None:  # fmt: skip
    """One scheduled AdamW update with the Triton kernels (contract: ``fused_sched.functional``).

    ``shapes`` is accepted and not used: the device evaluator selects each row's formula by
    its shape id, and a schedule's numbers never cause a recompilation.

    ``workspace`` keeps the plan under ``PLAN_KEY`` and the hyperparameter tensor; pass the same
    dict every call. Raises ValueError for tensors the kernels cannot update (see the module
    docstring), before launching anything.
    """
    _check_shared(tables, counter, lrs, hparams)
    device = tables.device
    key = _key(params, grads, exp_avgs, exp_avg_sqs, state_steps, group_index)
    plan = workspace.get(PLAN_KEY)
    if plan is None or plan.key != key or plan.step_addrs.device != device:
        n = len(params)
        lists = (grads, exp_avgs, exp_avg_sqs, state_steps, group_index)
        if any(len(x) != n for x in lists):
            raise ValueError(f"params, grads, exp_avgs, exp_avg_sqs, state_steps and "
                             f"group_index must have one entry per parameter, got "
                             f"lengths {[n, *map(len, lists)]}")  # fmt: skip
        streams = list(zip(params, grads, exp_avgs, exp_avg_sqs, strict=True))
        for i, tensors in enumerate(streams):
            _check_tensors(i, *tensors, state_steps[i], device, tables.shape[0], group_index[i])
        plan = _build_plan(key, streams, device)
        workspace[PLAN_KEY] = plan
    hparams_tensor = _hparams_tensor(hparams, device, workspace)
    rows = tables.shape[1]

    guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with guard:
        for launch in plan.launches:
            adamw_kernel[launch.grid](
                *launch.tables,
                tables,
                hparams_tensor,
                counter,
                **launch.constexprs,
                ROWS=rows,
                BLOCK_SIZE=BLOCK_SIZE,
                num_warps=NUM_WARPS,
            )
        advance_kernel[(1,)](
            plan.step_addrs,
            tables,
            counter,
            lrs,
            plan.n_steps,
            tables.shape[0],
            ROWS=rows,
            BLOCK_SIZE=ADVANCE_BLOCK_SIZE,
            num_warps=NUM_WARPS,
        )
