"""The learning-rate range test (Smith, 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3) run with this package's optimizer, and the suggestion read off its curve.

The sweep: update k = 1..n uses ``lr_k``, with ``lr_1 = start_lr`` and ``lr_n = end_lr``;
geometric by default (``lr_{k+1} / lr_k = (end_lr / start_lr) ** (1 / (n - 1))``) or linear.
Each update's loss (the loss of the batch that produced its gradient) is kept on the device and
smoothed on the host by a bias-corrected exponential moving average::

    avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,   smoothed_i = avg_i / (1 - beta ** (i + 1))

The curve is cut where it diverges: at the first smoothed value that is not finite or that
exceeds its best so far by ``(diverge_factor - 1) * |best|`` (for positive losses: passes
``diverge_factor`` times the best).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fused_sched.optimizer import FusedScheduledAdamW
from fused_sched.schedules import Constant, ExponentialRamp, Schedule, Sequence, Warmup
from fused_sched.validation import check_int

__all__ = [
    "LRFindResult",
    "half_life",
    "lr_find",
    "smooth_losses",
    "suggest_lr",
    "sweep_schedule",
]

METHODS = ("steepest", "valley", "minimum")
MODES = ("exponential", "linear")
MIN_POINTS = 3
SMOOTH_BETA = 0.95


@dataclass(frozen=True, eq=False)
class LRFindResult:
    """The outcome of :func:`lr_find`; arrays are float64 of one length n (updates 1..n).

    Attributes:
        lrs: the lr each update applied, as the optimizer recorded it on the device.
        losses: the smoothed loss (see the module docstring).
        raw_losses: the loss of each update's batch, as ``loss_fn`` returned it.
        suggestion: ``suggest_lr(lrs, losses, method, skip_start=half_life(smooth_beta))``,
            or None where the curve has no usable descent (a warning says why).
        method: the suggestion method.
        diverged: whether the sweep stopped on divergence; the last point is then the first
            diverged one (kept for the plot, left out of the suggestion).
    """

    lrs: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    suggestion: float | None
    method: str
    diverged: bool

    def plot(self, path: str | Path) -> None:
        """Draw the raw and smoothed loss against the lr (log axis), the suggestion marked,
        to an image file (format from the suffix) with matplotlib's Agg renderer."""
        try:
            from matplotlib.figure import Figure
        except ImportError as error:
            raise ImportError("plots need matplotlib: pip install 'fused_sched[cli]'") from error
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.subplots()
        ax.plot(self.lrs, self.raw_losses, color="0.75", linewidth=0.8, label="loss")
        ax.plot(self.lrs, self.losses, color="C0", label="smoothed")
        if self.suggestion is not None:
            label = f"{self.method}: {self.suggestion:.3g}"
            ax.axvline(self.suggestion, color="C3", linestyle="--", label=label)
        smoothed = self.losses[np.isfinite(self.losses)]
        if smoothed.size:  # the raw tail may explode: frame the smoothed curve and what is below
            raw = self.raw_losses[np.isfinite(self.raw_losses)]
            low, high = min(smoothed.min(), raw.min(initial=np.inf)), smoothed.max()
            pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
            ax.set_ylim(low - pad, high + pad)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("LR range test")
        ax.legend()
        fig.savefig(path)


def sweep_schedule(
    start_lr: float, end_lr: float, num_steps: int, mode: str = "exponential"
) -> Sequence:
    """The range test's schedule: update 1 uses start_lr, update num_steps end_lr.

    ``"exponential"``: a constant ratio between neighbours; ``"linear"``: a constant difference.
    Built as ``Sequence([(Constant(start_lr), 1), (ramp, num_steps - 1)])``, where the ramp's
    own update j (global update j + 1) uses ``start * (end / start) ** (j / (n - 1))``, or
    ``lin(start, end, j / (n - 1))``; past the end it holds end_lr.
    """
    _check_sweep(start_lr, end_lr, num_steps, mode)
    if mode == "exponential":
        ramp: Schedule = ExponentialRamp(start_lr, end_lr, num_steps - 1)
    else:
        ramp = Warmup(end_lr, num_steps - 1, start_lr=start_lr)
    return Sequence([(Constant(start_lr), 1), (ramp, num_steps - 1)])


def smooth_losses(losses, beta: float = SMOOTH_BETA) -> np.ndarray:
    """Bias-corrected exponential moving average (see the module docstring), float64.

    A non-finite loss makes it and every later smoothed value non-finite.
    """
    _check_unit("beta", beta)
    values = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(values)
    avg = 0.0
    for i, value in enumerate(values):
        avg = beta * avg + (1.0 - beta) * value
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def suggest_lr(
    lrs, losses, method: str = "steepest", *, skip_start: int = 0, diverge_factor: float = 4.0
) -> float:
    """A learning rate read off a range-test curve.

    ``losses`` should be the smoothed curve (``LRFindResult.losses``): the methods do not smooth.
    The curve is cut before its first non-finite value and before the point where it diverges
    (the module docstring's rule with ``diverge_factor``), and its first ``skip_start`` points
    are left out. Of what remains, let m be the point of the lowest loss, which must come after
    the first point. Then:

    - ``"steepest"``: the lr of the most negative slope d loss / d log(lr) (``np.gradient``:
      central differences inside, one-sided at the ends) among the points up to m.
    - ``"valley"``: the middle of the descent into the valley: with ``top`` the highest loss
      before m and ``bottom`` the loss at m, the lr where the curve last crosses down through
      ``(top + bottom) / 2`` before m, interpolated linearly in log(lr). Level crossings do not
      differentiate the curve, so noise that survives smoothing moves it little.
    - ``"minimum"``: the lr at m, divided by 10.

    Args:
        lrs: 1-D, finite, > 0, strictly increasing; at least 3 points.
        losses: 1-D, the same length.
        skip_start: leading points to leave out, >= 0 (a moving average's first values
            average few losses, and their noise can pass for the steepest slope).
        diverge_factor: > 1.

    Raises:
        ValueError: for the inputs above, an unknown method, or fewer than 3 points left, or a
            curve that never falls below its first value.
    """
    if method not in METHODS:
        raise ValueError(f"{method=} must be one of {METHODS}")
    check_int("skip_start", skip_start, minimum=0)
    _check_factor(diverge_factor)
    lrs, losses = _check_curve(lrs, losses)
    n = _usable_length(losses, diverge_factor)
    if n - skip_start < MIN_POINTS:
        raise ValueError(
            f"only {max(0, n - skip_start)} point(s) after skip_start={skip_start} and before "
            f"the loss diverges or turns non-finite; need {MIN_POINTS}: lower start_lr or use "
            "more steps"
        )
    lrs, losses = lrs[skip_start:n], losses[skip_start:n]
    low = int(np.argmin(losses))
    if low == 0:
        raise ValueError(
            "the loss never falls below its first value: lower start_lr, or check the model"
        )
    if method == "minimum":
        return float(lrs[low] / 10.0)
    log_lrs = np.log(lrs)
    if method == "steepest":
        slope = np.gradient(losses, log_lrs)
        return float(lrs[int(np.argmin(slope[: low + 1]))])
    level = 0.5 * (losses[:low].max() + losses[low])
    above = np.flatnonzero(losses[:low] >= level)
    j = int(above[-1])  # the curve is above the level at j and below it at j + 1
    fraction = (losses[j] - level) / (losses[j] - losses[j + 1])
    return float(np.exp(log_lrs[j] + fraction * (log_lrs[j + 1] - log_lrs[j])))


def half_life(beta: float) -> int:
    """Points until the moving average's first loss weighs at most half: ``ceil(log 0.5 /
    log beta)`` (0 for beta = 0); :func:`lr_find` leaves these out of its suggestion."""
    _check_unit("beta", beta)
    return 0 if beta == 0 else math.ceil(math.log(0.5) / math.log(beta))


def lr_find(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    batches: Iterable,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exponential",
    method: str = "steepest",
    smooth_beta: float = SMOOTH_BETA,
    diverge_factor: float = 4.0,
    check_every: int = 10,
    optimizer: torch.optim.Optimizer | None = None,
    backend: str = "auto",
) -> LRFindResult:
    """Run the LR range test on ``model`` and leave no trace of it.

    Each of up to ``num_steps`` updates draws the next batch, computes
    ``loss = loss_fn(model, batch)`` (a 0-dim tensor), back-propagates it and applies one
    :class:`FusedScheduledAdamW` update on :func:`sweep_schedule`'s lr. The optimizer is fresh
    (zero moments, counter 0). With ``optimizer`` given, its param groups say which parameters
    move and supply ``betas``, ``eps`` and ``weight_decay`` where they have them; all groups
    share the sweep's lr. Otherwise every parameter of ``model`` that requires a gradient moves,
    with the optimizer's defaults.

    Losses and applied lrs are written into preallocated device tensors; nothing is read on the
    host per step. Divergence (the module docstring's rule) is checked every ``check_every``
    updates by reading the loss history once: a sweep that diverges may run up to
    ``check_every - 1`` updates past the point, which are dropped from the result (a model
    restored afterwards loses nothing by them). ``check_every >= num_steps`` reads only at the
    end.

    Afterwards the model's parameters, buffers and gradients are restored bit for bit (the same
    tensor objects, their values copied back from copies held on their device during the
    test), ``optimizer`` is never touched, and the random
    number generators of the CPU and of the CUDA devices in use are restored, so that dropout
    or a shuffling loader inside the sweep leaves the caller's random stream as it was, and two
    consecutive tests on the same batches give identical histories.

    Args:
        batches: an iterable of batches, iterated again (or, for a one-shot iterator, replayed
            from memory) when it runs out before ``num_steps``.
        start_lr, end_lr: the lrs of the first and the last update; ``0 < start_lr < end_lr``.
        num_steps: updates at most, >= 2.
        mode: ``"exponential"`` or ``"linear"`` (see :func:`sweep_schedule`).
        method: passed to :func:`suggest_lr` with the smoothed curve and
            ``skip_start=half_life(smooth_beta)``.
        smooth_beta: the moving average's beta, in [0, 1).
        diverge_factor: > 1; see the module docstring.
        check_every: updates between divergence checks, >= 1.
        backend: the optimizer backend; ``"auto"`` takes ``optimizer``'s when it is a
            FusedScheduledAdamW.
    """
    _check_sweep(start_lr, end_lr, num_steps, mode)
    if method not in METHODS:
        raise ValueError(f"{method=} must be one of {METHODS}")
    _check_unit("smooth_beta", smooth_beta)
    _check_factor(diverge_factor)
    check_int("check_every", check_every)

    groups = _sweep_groups(model, optimizer)
    if backend == "auto" and isinstance(optimizer, FusedScheduledAdamW):
        backend = optimizer.backend
    params = [p for group in groups for p in group["params"]]
    devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    snapshot = _Snapshot(model, params)
    try:
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            schedule = sweep_schedule(start_lr, end_lr, num_steps, mode)
            sweep = FusedScheduledAdamW(groups, schedule, backend=backend)
            raw, lrs = _sweep(
                model, loss_fn, batches, sweep, num_steps, check_every, smooth_beta, diverge_factor
            )
    finally:
        snapshot.restore()

    smoothed = smooth_losses(raw, smooth_beta)
    usable = _usable_length(smoothed, diverge_factor)
    diverged = usable < len(raw)
    keep = min(usable + 1, len(raw))
    lrs, raw, smoothed = lrs[:keep], raw[:keep], smoothed[:keep]
    try:
        skip = half_life(smooth_beta)
        suggestion = suggest_lr(
            lrs, smoothed, method, skip_start=skip, diverge_factor=diverge_factor
        )
    except ValueError as error:
        warnings.warn(f"lr_find: no suggestion: {error}", stacklevel=2)
        suggestion = None
    return LRFindResult(lrs, smoothed, raw, suggestion, method, diverged)


def _sweep(model, loss_fn, batches, sweep, num_steps, check_every, beta, diverge_factor):
    """The updates; returns the host copies of the raw losses and applied lrs, as far as run."""
    device = sweep.device
    raw = torch.full((num_steps,), math.nan, dtype=torch.float64, device=device)
    lrs = torch.full((num_steps,), math.nan, dtype=torch.float64, device=device)
    lr = sweep.param_groups[0]["lr"]
    done = 0
    for i, batch in zip(range(num_steps), _cycle(batches), strict=False):
        sweep.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        if not (isinstance(loss, torch.Tensor) and loss.dim() == 0):
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a 0-dim tensor, got {shape}")
        loss.backward()
        sweep.step()
        raw[i] = loss.detach()
        lrs[i] = lr
        done = i + 1
        if done % check_every == 0 and done < num_steps:
            head = raw[:done].cpu().numpy()  # the one host read per check_every updates
            if _usable_length(smooth_losses(head, beta), diverge_factor) < done:
                break
    return raw[:done].cpu().numpy(), lrs[:done].cpu().numpy()


def _cycle(batches: Iterable) -> Iterator:
    """Yield batches forever: iterate ``batches`` again each time it runs out, or replay a
    one-shot iterator's batches from memory."""
    source, replay = batches, []
    while True:
        iterator = iter(source)
        one_shot = iterator is source
        empty = True
        for batch in iterator:
            empty = False
            if one_shot:
                replay.append(batch)
            yield batch
        if empty:
            raise ValueError(f"batches={batches!r} yielded no batch")
        if one_shot:
            source = replay


def _sweep_groups(model: torch.nn.Module, optimizer) -> list[dict]:
    """Param groups for the sweep's optimizer: the given optimizer's, or the model's."""
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no parameter that requires a gradient")
        return [{"params": params}]
    keys = ("betas", "eps", "weight_decay")
    return [
        {"params": list(group["params"]), **{k: group[k] for k in keys if k in group}}
        for group in optimizer.param_groups
    ]


class _Snapshot:
    """Copies of a model's parameters, buffers and gradients, to copy back in place."""

    def __init__(self, model: torch.nn.Module, params: list[torch.Tensor]):
        tensors = {id(t): t for t in [*model.parameters(), *params, *model.buffers()]}
        self.values = [(t, t.detach().clone()) for t in tensors.values()]
        self.grads = [
            (t, t.grad, None if t.grad is None else t.grad.clone())
            for t in tensors.values()
            if isinstance(t, torch.nn.Parameter)
        ]

    @torch.no_grad()
    def restore(self) -> None:
        for tensor, value in self.values:
            tensor.copy_(value)
        for param, grad, value in self.grads:
            # The same gradient tensor as before (it may be a view others hold), its values back.
            if grad is not None:
                grad.copy_(value)
            param.grad = grad


def _usable_length(losses: np.ndarray, diverge_factor: float) -> int:
    """How many leading points come before the first non-finite or diverged one."""
    finite = np.isfinite(losses)
    n = len(losses) if finite.all() else int(np.argmin(finite))
    head = losses[:n]
    best = np.minimum.accumulate(head)
    over = head - best > (diverge_factor - 1.0) * np.abs(best)
    return int(np.argmax(over)) if over.any() else n


def _check_curve(lrs, losses) -> tuple[np.ndarray, np.ndarray]:
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if lrs.ndim != 1 or losses.ndim != 1:
        raise ValueError(f"lrs and losses must be 1-D, got shapes {lrs.shape} and {losses.shape}")
    if len(lrs) != len(losses):
        raise ValueError(f"lrs and losses differ in length: {len(lrs)} and {len(losses)}")
    if len(lrs) < MIN_POINTS:
        raise ValueError(f"too few points: {len(lrs)}, need at least {MIN_POINTS}")
    if not (np.isfinite(lrs).all() and (lrs > 0).all()):
        raise ValueError(f"lrs must be finite and > 0, got min {lrs.min()!r}")
    if not (np.diff(lrs) > 0).all():
        raise ValueError("lrs must be strictly increasing")
    return lrs, losses


def _check_sweep(start_lr, end_lr, num_steps, mode) -> None:
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value!r} must be a finite number > 0")
    if start_lr >= end_lr:
        raise ValueError(f"{start_lr=} must be < {end_lr=}")
    check_int("num_steps", num_steps, minimum=2)
    if mode not in MODES:
        raise ValueError(f"{mode=} must be one of {MODES}")


def _check_factor(diverge_factor) -> None:
    if not (isinstance(diverge_factor, numbers.Real) and diverge_factor > 1):
        raise ValueError(f"{diverge_factor=} must be a number > 1")


def _check_unit(name: str, value) -> None:
    if not (isinstance(value, numbers.Real) and 0 <= value < 1):
        raise ValueError(f"{name}={value!r} must be a number in [0, 1)")
