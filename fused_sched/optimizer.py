"""FusedScheduledAdamW: torch.optim.AdamW with its lr schedule evaluated on the device."""

from __future__ import annotations

import logging
import math
import numbers
import operator
import os
import sys

import torch
from torch.optim import Optimizer

from fused_sched.functional import BACKENDS, scheduled_adamw
from fused_sched.schedules import Schedule
from fused_sched.table import rows_for, shapes_of

__all__ = ["FusedScheduledAdamW"]

log = logging.getLogger(__name__)

# Keys torch.optim.AdamW keeps in a param group; written on save so that torch can load ours.
_TORCH_GROUP_KEYS = {
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": None,
    "decoupled_weight_decay": True,
}
COUNTER_KEY = "schedule_counter"
_GROUP_KEYS = {"params", "param_names", "schedule", "betas", "eps", "weight_decay"}


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule={schedule!r} must be a fused_sched.Schedule, e.g. "
                         "fused_sched.Constant(1e-3) for a fixed lr")  # fmt: skip


def _check_hparams(betas, eps, weight_decay) -> None:
    ok = isinstance(betas, tuple | list) and len(betas) == 2
    if not ok or not all(isinstance(b, numbers.Real) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"betas={betas!r} must be two numbers in [0, 1)")
    if not (isinstance(eps, numbers.Real) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps={eps!r} must be a finite number > 0")
    if not (isinstance(weight_decay, numbers.Real) and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay={weight_decay!r} must be a finite number >= 0")
    if weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay!r} must be a finite number >= 0")


def _check_update(g: int, p: torch.Tensor, grad: torch.Tensor, state: dict) -> None:
    """Before any update: every tensor of the step fits its parameter (a mismatch would make
    the fused kernels read out of bounds, or fail half-way with some parameters updated)."""
    where = f"a parameter of param_groups[{g}] (shape {tuple(p.shape)}, {p.dtype})"
    if grad.shape != p.shape or grad.dtype != p.dtype or grad.device != p.device:
        raise ValueError(f"{where} has a gradient of shape {tuple(grad.shape)}, {grad.dtype} on "
                         f"{grad.device}; it must match the parameter")  # fmt: skip
    for key in ("exp_avg", "exp_avg_sq"):
        t = state[key]
        if t.shape != p.shape or t.device != p.device or not t.is_floating_point():
            raise ValueError(f"{where} has state {key} of shape {tuple(t.shape)}, {t.dtype} on "
                             f"{t.device}; was the parameter resized after its state existed, "
                             "or the wrong checkpoint loaded?")  # fmt: skip


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (a view: updating it updates the DTensor), else t itself.

    AdamW is elementwise, so each rank updating its own shard of parameters, gradients and
    moments (FSDP2's ``fully_shard``, or any DTensor placement) is the whole update.
    """
    # No DTensor exists unless its module was imported; importing it here would cost a second.
    dtensor = sys.modules.get("torch.distributed.tensor")
    return t.to_local() if dtensor is not None and isinstance(t, dtensor.DTensor) else t


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} must be 'auto' or one of {sorted(BACKENDS)}")
        if backend == "triton" and device.type != "cuda" and not os.environ.get("TRITON_INTERPRET"):
            raise ValueError(f"backend='triton' needs CUDA parameters, got {device}; on a CPU use "
                             "backend='torch' (or set TRITON_INTERPRET=1 for tests)")  # fmt: skip
        return backend
    chosen = "torch"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401

            chosen = "triton"
        except ImportError:
            log.debug("triton does not import; falling back to the torch backend")
    log.debug("backend 'auto' chose %r for parameters on %s", chosen, device)
    return chosen


class FusedScheduledAdamW(Optimizer):
    """AdamW (Loshchilov & Hutter, 2019) whose learning rate comes from a schedule evaluated on
    the device from a step counter that lives on the device.

    The k-th call of :meth:`step` applies update k (k = 1, 2, ...) with ``schedule.lr_at(k)``,
    using torch.optim.AdamW's math::

        p <- p * (1 - lr_k * wd);  m <- lerp(m, g, 1 - beta1);  v <- beta2 v + (1 - beta2) g^2
        p <- p - lr_k / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    where t is the parameter's own update count. ``step()`` never reads a device value on the
    host and never writes a Python float into ``param_groups``, so a training step, schedule
    included, can be captured in a CUDA graph and replayed.

    Args:
        params: parameters or param-group dicts; a group may carry its own ``schedule``,
            ``betas``, ``eps`` and ``weight_decay``. All parameters on one device, real
            floating point, dense gradients.
        schedule: a :class:`fused_sched.Schedule` (the default for groups without their own).
        betas, eps, weight_decay: as torch.optim.AdamW (weight decay scales with the scheduled
            lr: a scheduled lr of 0 means no decay either).
        backend: ``"triton"`` (one multi-tensor kernel per dtype combination; CUDA, or the
            Triton interpreter on a CPU), ``"torch"`` (torch's fused or foreach AdamW fed a
            tensor lr), ``"reference"`` (plain float64 torch ops, the oracle), or ``"auto"``:
            triton for CUDA parameters when Triton imports, torch otherwise.

    Attributes:
        counter: int64 0-dim tensor on the parameters' device, the updates applied so far.
        ``param_groups[g]["lr"]``: a live float64 0-dim tensor on the device holding the lr
        of the last applied update (``lr_at(0)`` before any); reading it is the reader's sync.
        To change a group's schedule assign ``param_groups[g]["schedule"]``; writing a number
        into ``"lr"`` is an error.

    Example::

        opt = FusedScheduledAdamW(model.parameters(), OneCycle(3e-3, total_steps=1000,
                                  warmup_steps=300), weight_decay=0.01)
        for x, y in loader:
            loss_fn(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    """

    def __init__(
        self,
        params,
        schedule: Schedule,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        backend: str = "auto",
    ):
        _check_schedule(schedule)
        _check_hparams(betas, eps, weight_decay)
        self._ready = False
        defaults = {
            "schedule": schedule,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)
        self.device = self._common_device()
        self.backend = _resolve_backend(backend, self.device)
        self.counter = torch.zeros((), dtype=torch.int64, device=self.device)
        self.workspace: dict = {}
        self._ready = True
        self._rebuild_groups()

    # --- param groups ---------------------------------------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        try:
            self._check_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()  # a rejected group leaves the optimizer as it was
            raise
        if self._ready:
            self._rebuild_groups()

    def _check_group(self, group: dict) -> None:
        unknown = sorted(set(group) - _GROUP_KEYS)
        if "lr" in unknown:
            raise ValueError(f"param group lr={group['lr']!r}: the lr comes from the schedule; "
                             "give the group a 'schedule' instead")  # fmt: skip
        if unknown:
            raise ValueError(f"param group keys {unknown} are not supported; a group takes "
                             f"{sorted(_GROUP_KEYS)}")  # fmt: skip
        if len({id(p) for p in group["params"]}) != len(group["params"]):
            raise ValueError("a param group lists a parameter twice; list each once")
        for p in group["params"]:
            self._check_param(p)
        devices = {p.device for p in group["params"]}
        if len(devices) > 1:
            raise ValueError(f"a param group mixes devices {sorted(map(str, devices))}; "
                             "put each device's parameters in their own optimizer")  # fmt: skip
        if self._ready and devices and devices != {self.device}:
            raise ValueError(f"new param group on {devices.pop()} is not on {self.device}")
        _check_schedule(group["schedule"])
        _check_hparams(group["betas"], group["eps"], group["weight_decay"])
        group["betas"] = tuple(group["betas"])

    @staticmethod
    def _check_param(p: torch.Tensor) -> None:
        if p.is_complex():
            raise ValueError("complex parameters are not supported; view them as real pairs")
        if not p.is_floating_point():
            raise ValueError(f"parameters must be floating point, got {p.dtype}")

    def _common_device(self) -> torch.device:
        devices = {p.device for group in self.param_groups for p in group["params"]}
        if len(devices) != 1:
            raise ValueError(f"parameters must share one device, got {sorted(map(str, devices))}")
        return devices.pop()

    def _rebuild_groups(self) -> None:
        """Tables, hyperparameters and the live lr tensors, after groups or schedules changed.

        Tensors are updated in place where their shapes allow (a captured CUDA graph and a
        logger holding a group's ``"lr"`` keep seeing them); a group added, or a schedule
        needing more table rows, makes new ones.
        """
        schedules = [group["schedule"] for group in self.param_groups]
        rows = max(rows_for(len(s.phases())) for s in schedules)
        tables = torch.stack([s.table(rows=rows) for s in schedules])
        if getattr(self, "_tables", None) is not None and self._tables.shape == tables.shape:
            self._tables.copy_(tables)
        else:
            self._tables = tables.to(self.device)
        self._schedules = schedules
        self._shapes = shapes_of(phase for s in schedules for phase in s.phases())
        self._hparams = self._read_hparams()
        old = getattr(self, "_lrs", None)
        if old is None or old.numel() != len(schedules):
            # New groups start at lr_at(0); existing ones keep their last applied lr.
            self._lrs = torch.tensor(
                [s.lr_at(0) for s in schedules], dtype=torch.float64, device=self.device
            )
            if old is not None and old.numel() < self._lrs.numel():
                self._lrs[: old.numel()].copy_(old)
            self._lr_views = [self._lrs[g] for g in range(len(schedules))]
        for group, view in zip(self.param_groups, self._lr_views, strict=True):
            group["lr"] = view
        self._flat_params = [p for group in self.param_groups for p in group["params"]]
        self._gathered = self._gathered_grads = None

    def _read_hparams(self) -> list[tuple[float, float, float, float]]:
        return [(*g["betas"], g["eps"], g["weight_decay"]) for g in self.param_groups]

    def _sync_groups(self) -> None:
        """Notice, on the host alone, what the user changed in param_groups since last step."""
        current = [group["schedule"] for group in self.param_groups]
        if any(new is not old for new, old in zip(current, self._schedules, strict=True)):
            for schedule in current:
                _check_schedule(schedule)
            self._rebuild_groups()  # also puts back a replaced "lr"
        for g, group in enumerate(self.param_groups):
            if group["lr"] is not self._lr_views[g]:
                raise ValueError(
                    f"param_groups[{g}]['lr'] was replaced by {group['lr']!r}; the lr comes "
                    "from the schedule: assign param_groups[g]['schedule'] instead"
                )
            foreign = sorted(set(group) - _GROUP_KEYS - {"lr"})
            if foreign:
                hint = " (a torch LR scheduler was attached: the schedule is built in, drop it)"
                raise ValueError(
                    f"param_groups[{g}] gained keys {foreign}"
                    f"{hint if 'initial_lr' in foreign else ''}; a group takes "
                    f"{sorted(_GROUP_KEYS)}"
                )
        hparams = self._read_hparams()
        if hparams != self._hparams:
            for group in self.param_groups:
                _check_hparams(group["betas"], group["eps"], group["weight_decay"])
            self._hparams = hparams

    # --- the update -----------------------------------------------------------------------

    def _gather(self):
        """Parameters with a gradient, group by group, creating state on first sight.

        The lists are reused while every parameter keeps the same gradient tensor (the
        common case with ``zero_grad(set_to_none=False)``), so a step costs one pass of
        identity checks rather than six lists and a state lookup per parameter.
        """
        grads_now = [p.grad for p in self._flat_params]
        cached = self._gathered
        if cached is not None and all(map(operator.is_, grads_now, self._gathered_grads)):
            return cached
        lists = ([], [], [], [], [], [])
        params, grads, exp_avgs, exp_avg_sqs, steps, group_index = lists
        for g, group in enumerate(self.param_groups):
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise NotImplementedError("sparse gradients are not supported")
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                _check_update(g, p, grad, state)
                params.append(_local(p))
                grads.append(_local(grad))
                exp_avgs.append(_local(state["exp_avg"]))
                exp_avg_sqs.append(_local(state["exp_avg_sq"]))
                steps.append(state["step"])
                group_index.append(g)
        self._gathered, self._gathered_grads = lists, grads_now
        return lists

    @torch.no_grad()
    def step(self, closure=None):
        """Apply update k = counter + 1 to every parameter with a gradient; advance the
        counter (also when no parameter has a gradient: the schedule follows step() calls)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync_groups()
        params, grads, exp_avgs, exp_avg_sqs, steps, group_index = self._gather()
        scheduled_adamw(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            steps,
            group_index=group_index,
            tables=self._tables,
            hparams=self._hparams,
            counter=self.counter,
            lrs=self._lrs,
            shapes=self._shapes,
            backend=self.backend,
            workspace=self.workspace,
        )
        return loss

    # --- copies ---------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        # Everything torch keeps plus our tensors; caches that name tensor addresses are
        # rebuilt by the copy.
        skip = {"workspace", "_gathered", "_gathered_grads", "_flat_params"}
        return {key: value for key, value in self.__dict__.items() if key not in skip}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "_lrs" in state:  # a copy or an unpickling, not torch's load_state_dict
            self.workspace = {}
            self._lr_views = [self._lrs[g] for g in range(self._lrs.numel())]
            self._rebuild_groups()

    # --- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        """torch.optim.AdamW's layout (loadable by it, and with ``weights_only=True``), plus
        the schedule counter under ``"schedule_counter"``. Groups store the lr of the last
        update as a float; schedules are code, not state: the loader brings its own."""
        saved = super().state_dict()
        next_update = int(self.counter.item()) + 1
        for group in saved["param_groups"]:
            schedule = group.pop("schedule")
            # torch reads a group's lr as the lr of its next step.
            group["lr"] = schedule.lr_at(next_update)
            for key, value in _TORCH_GROUP_KEYS.items():
                group.setdefault(key, value)
        saved[COUNTER_KEY] = self.counter.clone()
        return saved

    def load_state_dict(self, state_dict: dict) -> None:
        """Load ours or torch.optim.AdamW's. Moments, steps and the counter move to the
        parameters' device (a checkpoint mapped to the CPU resumes on the GPU). Without a saved
        counter (torch's checkpoints) the counter is the largest per-parameter step. Schedules
        are not in a checkpoint: each group keeps its own, and its lr becomes the schedule's
        at the loaded counter. Nothing changes if the checkpoint is rejected."""
        for g, group in enumerate(state_dict["param_groups"]):
            for key in ("amsgrad", "maximize"):
                if group.get(key):
                    raise ValueError(f"param_groups[{g}] has {key}=True, which is unsupported")
            if group.get("decoupled_weight_decay") is False and group.get("weight_decay"):
                raise ValueError(
                    f"param_groups[{g}] has weight_decay={group['weight_decay']} with "
                    "decoupled_weight_decay=False (torch.optim.Adam's L2 penalty), which AdamW "
                    "cannot continue; load an AdamW checkpoint"
                )
            try:
                _check_hparams(tuple(group["betas"]), group["eps"], group["weight_decay"])
            except (KeyError, ValueError) as error:
                raise ValueError(f"param_groups[{g}] of the checkpoint: {error}") from None
        flat = [p for group in self.param_groups for p in group["params"]]
        for index, state in state_dict["state"].items():
            if not (isinstance(index, int) and 0 <= index < len(flat)):
                raise ValueError(f"the checkpoint has state for parameter {index!r}; this "
                                 f"optimizer has parameters 0..{len(flat) - 1}")  # fmt: skip
            missing = sorted({"step", "exp_avg", "exp_avg_sq"} - set(state))
            if missing:
                raise ValueError(f"the checkpoint's state of parameter {index} lacks {missing}")
            for key in ("exp_avg", "exp_avg_sq"):
                if tuple(state[key].shape) != tuple(flat[index].shape):
                    raise ValueError(
                        f"the checkpoint's {key} of parameter {index} has shape "
                        f"{tuple(state[key].shape)}, the parameter {tuple(flat[index].shape)}"
                    )
        schedules = [group["schedule"] for group in self.param_groups]
        counter = state_dict.get(COUNTER_KEY)
        if counter is not None:
            counter = torch.as_tensor(counter).detach().cpu()
            exact = counter.numel() == 1 and not counter.is_complex()
            if not exact or counter.item() != int(counter.item()) or counter.item() < 0:
                raise ValueError(f"the checkpoint's {COUNTER_KEY}={counter!r} must be one "
                                 "integer >= 0 (the updates applied)")  # fmt: skip
        super().load_state_dict(state_dict)
        for group, schedule in zip(self.param_groups, schedules, strict=True):
            group["schedule"] = schedule
            group["betas"] = tuple(group["betas"])
            for key in set(group) - _GROUP_KEYS - {"lr"}:
                group.pop(key)
        steps = []
        for state in self.state.values():
            for key, value in state.items():
                dtype = torch.float32 if key == "step" else value.dtype
                state[key] = value.to(device=self.device, dtype=dtype)
            steps.append(state["step"])
        if counter is None:
            counter = torch.stack(steps).max() if steps else torch.zeros(())
        self.counter.copy_(counter.reshape(()))
        self._rebuild_groups()
        done = int(self.counter.item())
        self._lrs.copy_(torch.tensor([s.lr_at(done) for s in schedules], dtype=torch.float64))
