"""Multi-tensor AdamW whose lr comes from a phase table and a step counter on the device.

Two kernels, launched in this order by ``fused_sched.triton_backend`` for one ``step()``:

``adamw_kernel``
    One program per block of one tensor. Every tensor of the launch shares one dtype
    combination (the constexprs); its addresses, sizes, groups and step tensors are read from
    int64 tables indexed by tensor, and program ``pid`` updates elements
    ``[block_starts[pid], block_starts[pid] + BLOCK_SIZE)`` of tensor ``block_tensors[pid]``.
    It reads the counter and the per-parameter steps and writes neither: programs run in any
    order, so a program that advanced them would change the k or t that a later one reads.
``advance_kernel``
    One program, after every update launch: writes each group's lr of update k to ``lrs``,
    adds one to every parameter's step and sets the counter to k.

The update is torch.optim.AdamW's (Loshchilov & Hutter, 2019), with k = counter + 1, lr the
group's schedule at k and t = step + 1 the parameter's own update count::

    p <- p * (1 - lr * wd)
    m <- lerp(m, g, 1 - beta1)        v <- beta2 * v + (1 - beta2) * g * g
    p <- p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

The scalars (1 - lr * wd, the bias corrections, lr / (1 - beta1**t)) are formed in float64
from the float64 lr; the elementwise math runs in COMPUTE_DTYPE (float32, or float64 for
float64 tensors) and every stream is cast back to its own dtype on store. Nothing divides by
lr, so lr = 0 leaves p exactly unchanged.
"""

import triton
import triton.language as tl
from fused_sched.kernels.schedule import schedule_lr

from fused_sched import table as _table

_COLUMNS = tl.constexpr(_table.COLUMNS)
# A row of the hyperparameter table: beta1, beta2, eps, weight_decay (float64).
_HPARAMS = tl.constexpr(4)


@triton.jit
def _power(base, exponent):
    # base in [0, 1) and exponent >= 1: 0 ** t is 0, and log(0) must not be evaluated.
    positive = base > 0
    return tl.where(positive, tl.exp(exponent * tl.log(tl.where(positive, base, 1.0))), 0.0)


@triton.jit
def _stream(
    addrs_ptr,
    tensor,
    DTYPE: tl.constexpr,
    ALIGNED: tl.constexpr,
):
    # The host checked data_ptr() % 16 == 0 for ALIGNED launches; saying so enables 128-bit access.
    ptr = tl.load(addrs_ptr + tensor).to(tl.pointer_type(DTYPE))
    if ALIGNED:
        ptr = tl.multiple_of(ptr, 16)
    return ptr


@triton.jit
def _adamw_block(
    streams,
    scalars,
    offsets,
    mask,
    PARAM_DTYPE: tl.constexpr,
    MOMENT_DTYPE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
):
    param_ptr, grad_ptr, exp_avg_ptr, exp_avg_sq_ptr = streams
    decay, lerp_weight, beta2, one_minus_beta2, eps, step_size, bias_correction2_sqrt = scalars

    # Load: every stream widened to the compute dtype (mask is None on full blocks).
    p = tl.load(param_ptr + offsets, mask=mask).to(COMPUTE_DTYPE)
    g = tl.load(grad_ptr + offsets, mask=mask).to(COMPUTE_DTYPE)
    m = tl.load(exp_avg_ptr + offsets, mask=mask).to(COMPUTE_DTYPE)
    v = tl.load(exp_avg_sq_ptr + offsets, mask=mask).to(COMPUTE_DTYPE)

    # Compute: torch's order of operations, lerp in its two-sided form (exact at weight 1).
    p = p * decay
    m = tl.where(lerp_weight < 0.5, m + lerp_weight * (g - m), g - (g - m) * (1.0 - lerp_weight))
    v = v * beta2 + one_minus_beta2 * g * g
    denom = tl.sqrt(v) / bias_correction2_sqrt + eps
    p = p - step_size * (m / denom)

    # Store: each stream back in its own dtype; the gradient is only read.
    tl.store(param_ptr + offsets, p.to(PARAM_DTYPE), mask=mask)
    tl.store(exp_avg_ptr + offsets, m.to(MOMENT_DTYPE), mask=mask)
    tl.store(exp_avg_sq_ptr + offsets, v.to(MOMENT_DTYPE), mask=mask)


@triton.jit
def adamw_kernel(
    param_addrs_ptr,
    grad_addrs_ptr,
    exp_avg_addrs_ptr,
    exp_avg_sq_addrs_ptr,
    step_addrs_ptr,
    numels_ptr,
    groups_ptr,
    block_tensors_ptr,
    block_starts_ptr,
    tables_ptr,
    hparams_ptr,
    counter_ptr,
    PARAM_DTYPE: tl.constexpr,
    GRAD_DTYPE: tl.constexpr,
    MOMENT_DTYPE: tl.constexpr,
    COMPUTE_DTYPE: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    ALIGNED: tl.constexpr,
):
    """One AdamW block update (see the module docstring).

    Tables (int64, indexed by tensor): ``*_addrs`` the data_ptr() of each stream and of the
    float32 step tensor, ``numels``, ``groups``. ``block_tensors``/``block_starts`` (int64,
    indexed by program): the tensor and first element of each block, a multiple of BLOCK_SIZE.
    ``tables``: float64 (groups, ROWS, COLUMNS) phase tables; ``hparams``: float64 (groups, 4);
    ``counter``: int64, updates applied so far. ALIGNED: all four streams 16-byte aligned.
    """
    # Which block: int64 from the table, so elements past 2**31 are addressed exactly.
    pid = tl.program_id(0).to(tl.int64)
    tensor = tl.load(block_tensors_ptr + pid)
    start = tl.multiple_of(tl.load(block_starts_ptr + pid), BLOCK_SIZE)
    numel = tl.load(numels_ptr + tensor)
    group = tl.load(groups_ptr + tensor)

    # The group's lr of update k = counter + 1, and its hyperparameters, all float64.
    lr = schedule_lr(tables_ptr + group * (ROWS * _COLUMNS), tl.load(counter_ptr) + 1, ROWS)
    hparams = hparams_ptr + group * _HPARAMS
    beta1 = tl.load(hparams)
    beta2 = tl.load(hparams + 1)
    eps = tl.load(hparams + 2)
    weight_decay = tl.load(hparams + 3)

    # The parameter's own update count t (float32, as torch keeps it) and the scalars of t.
    step_ptr = tl.load(step_addrs_ptr + tensor).to(tl.pointer_type(tl.float32))
    t = (tl.load(step_ptr) + 1.0).to(tl.float64)
    bias_correction1 = 1.0 - _power(beta1, t)
    bias_correction2_sqrt = tl.sqrt(1.0 - _power(beta2, t))

    # The streams of this tensor, and this block's int64 element offsets.
    streams = (
        _stream(param_addrs_ptr, tensor, PARAM_DTYPE, ALIGNED),
        _stream(grad_addrs_ptr, tensor, GRAD_DTYPE, ALIGNED),
        _stream(exp_avg_addrs_ptr, tensor, MOMENT_DTYPE, ALIGNED),
        _stream(exp_avg_sq_addrs_ptr, tensor, MOMENT_DTYPE, ALIGNED),
    )
    scalars = (
        (1.0 - lr * weight_decay).to(COMPUTE_DTYPE),
        (1.0 - beta1).to(COMPUTE_DTYPE),
        beta2.to(COMPUTE_DTYPE),
        (1.0 - beta2).to(COMPUTE_DTYPE),
        eps.to(COMPUTE_DTYPE),
        (lr / bias_correction1).to(COMPUTE_DTYPE),
        bias_correction2_sqrt.to(COMPUTE_DTYPE),
    )
    offsets = start + tl.arange(0, BLOCK_SIZE).to(tl.int64)

    # Full blocks unmasked (a mask against a loaded size would force 32-bit access), the tail
    # block masked.
    if start + BLOCK_SIZE <= numel:
        _adamw_block(streams, scalars, offsets, None, PARAM_DTYPE, MOMENT_DTYPE, COMPUTE_DTYPE)
    else:
        mask = offsets < numel
        _adamw_block(streams, scalars, offsets, mask, PARAM_DTYPE, MOMENT_DTYPE, COMPUTE_DTYPE)


@triton.jit
def advance_kernel(
    step_addrs_ptr,
    tables_ptr,
    counter_ptr,
    lrs_ptr,
    n_steps,
    n_groups,
    ROWS: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """Finish update k: ``lrs[g] = lr_g(k)`` for every group, ``step += 1`` for each of the
    ``n_steps`` float32 step tensors at ``step_addrs`` (int64), ``counter = k``.

    Launch with one program, after the update launches of the same step.
    """
    # The only access to the counter: one atomic read-and-advance, so no thread of this
    # program can read the new value.
    k = tl.atomic_add(counter_ptr, 1) + 1

    # Every group's lr, also of groups none of whose parameters has a gradient.
    for group in range(n_groups):
        lr = schedule_lr(tables_ptr + group * (ROWS * _COLUMNS), k, ROWS)
        tl.store(lrs_ptr + group, lr)

    # Each parameter's step, BLOCK_SIZE step tensors at a time.
    for first in range(0, n_steps, BLOCK_SIZE):
        indices = first + tl.arange(0, BLOCK_SIZE)
        mask = indices < n_steps
        addrs = tl.load(step_addrs_ptr + indices, mask=mask, other=0)
        step_ptrs = addrs.to(tl.pointer_type(tl.float32))
        tl.store(step_ptrs, tl.load(step_ptrs, mask=mask) + 1.0, mask=mask)
