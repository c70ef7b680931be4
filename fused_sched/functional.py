"""One scheduled AdamW update, with one keyword-only signature and several implementations.

Every implementation takes the same arguments and does the same thing:

1. ``k = counter + 1`` (the update index; ``counter`` holds the updates applied so far);
2. ``lrs[g] = lr_g(k)`` for every group g, from the group's phase table ``tables[g]``;
3. for every parameter i (of group ``group_index[i]``): ``state_steps[i] += 1``, then
   torch.optim.AdamW's update with that group's lr, betas, eps and weight decay::

       p <- p * (1 - lr * wd)
       m <- lerp(m, g, 1 - beta1)            v <- beta2 * v + (1 - beta2) * g * g
       p <- p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

   with t the parameter's own step count (parameters that had no gradient at some update lag
   the optimizer's counter, exactly as torch's per-parameter ``step`` does);
4. ``counter += 1``.

None of them reads a tensor value on the host, so every one is safe under CUDA-graph capture
as far as its own ops are. Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim.adam import adam as torch_adam

from fused_sched.table import evaluate

__all__ = ["scheduled_adamw", "BACKENDS"]

HParams = tuple[float, float, float, float]  # beta1, beta2, eps, weight_decay


def scheduled_adamw(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    state_steps: list[Tensor],
    *,
    group_index: list[int],
    tables: Tensor,
    hparams: list[HParams],
    counter: Tensor,
    lrs: Tensor,
    shapes: tuple[int, ...] | None = None,
    backend: str,
    workspace: dict | None = None,
) -> None:
    """Apply one scheduled AdamW update (see the module docstring) with ``backend``.

    Args:
        params, grads, exp_avgs, exp_avg_sqs: one entry per parameter that has a gradient;
            the moments have the parameter's shape (float32 or the parameter's dtype).
        state_steps: float32 0-dim tensors on the parameters' device, updates applied to each.
        group_index: the group of each parameter, an index into ``tables``, ``hparams``, ``lrs``.
        tables: float64 ``(groups, rows, COLUMNS)`` phase tables on the device.
        hparams: ``(beta1, beta2, eps, weight_decay)`` of each group.
        counter: int64 0-dim tensor on the device, updates applied so far; advanced by one.
        lrs: float64 ``(groups,)`` on the device; ``lrs[g]`` receives group g's lr of update k.
        shapes: the phase shapes that occur in ``tables`` (None: any); evaluators may skip
            the formulas of the others.
        backend: ``"reference"``, ``"torch"`` or ``"triton"``.
        workspace: a dict the caller keeps between calls, where a backend may cache what it
            builds once (the triton backend keeps its pointer tables there).
    """
    implementation = BACKENDS.get(backend)
    if implementation is None:
        raise ValueError(f"{backend=} is not one of {sorted(BACKENDS)}")
    implementation()(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        state_steps,
        group_index=group_index,
        tables=tables,
        hparams=hparams,
        counter=counter,
        lrs=lrs,
        shapes=shapes,
        workspace={} if workspace is None else workspace,
    )


def _write_lrs(tables: Tensor, counter: Tensor, lrs: Tensor, shapes) -> None:
    # Every group's table at the same update index k = counter + 1, in one batch of ops.
    lrs.copy_(evaluate(tables, counter + 1, shapes))


def adamw_reference(
    params, grads, exp_avgs, exp_avg_sqs, state_steps, *, group_index, tables, hparams, counter,
    lrs, shapes, workspace,
) -> None:  # fmt: skip
    """The oracle: one parameter at a time, plain torch ops, all arithmetic in float64."""
    _write_lrs(tables, counter, lrs, shapes)
    for i, param in enumerate(params):
        beta1, beta2, eps, weight_decay = hparams[group_index[i]]
        lr = lrs[group_index[i]]
        state_steps[i] += 1
        t = state_steps[i].double()

        p, g = param.double(), grads[i].double()
        m, v = exp_avgs[i].double(), exp_avg_sqs[i].double()
        p.mul_(1.0 - lr * weight_decay)
        m.lerp_(g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        bias_correction1 = 1.0 - torch.pow(beta1, t)
        bias_correction2 = 1.0 - torch.pow(beta2, t)
        denom = v.sqrt() / bias_correction2.sqrt() + eps
        p.sub_(lr / bias_correction1 * m / denom)

        param.copy_(p)
        exp_avgs[i].copy_(m)
        exp_avg_sqs[i].copy_(v)
    counter += 1


def adamw_torch(
    params, grads, exp_avgs, exp_avg_sqs, state_steps, *, group_index, tables, hparams, counter,
    lrs, shapes, workspace,
) -> None:  # fmt: skip
    """torch's own AdamW math (fused where torch has it, else foreach) with a tensor lr.

    Parameters of one group must be contiguous in the lists (the optimizer gathers them so).
    """
    _write_lrs(tables, counter, lrs, shapes)
    if lrs.device.type == "cuda":
        # torch's CUDA fused kernel reads a tensor lr as float32 (its CPU kernel as float64).
        lrs32 = workspace.get("lrs_float32")
        if lrs32 is None or lrs32.shape != lrs.shape:
            lrs32 = workspace["lrs_float32"] = torch.empty_like(lrs, dtype=torch.float32)
        lrs = lrs32.copy_(lrs)
    start = 0
    for g, run in itertools.groupby(group_index):
        members = slice(start, start + len(list(run)))
        start = members.stop
        beta1, beta2, eps, weight_decay = hparams[g]
        fused = params[start - 1].device.type in ("cpu", "cuda")
        torch_adam(
            params[members],
            grads[members],
            exp_avgs[members],
            exp_avg_sqs[members],
            [],
            state_steps[members],
            foreach=None if fused else True,
            capturable=not fused,
            fused=fused or None,
            decoupled_weight_decay=True,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=lrs[g],
            weight_decay=weight_decay,
            eps=eps,
            maximize=False,
        )
    counter += 1


def _triton() -> Callable:
    from fused_sched.triton_backend import adamw_triton

    return adamw_triton


BACKENDS: dict[str, Callable[[], Callable]] = {
    "reference": lambda: adamw_reference,
    "torch": lambda: adamw_torch,
    "triton": _triton,
}
