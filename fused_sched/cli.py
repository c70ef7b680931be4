"""The ``fused-sched`` command line: train a small classifier, run the LR range test, or draw
a schedule.

    fused-sched train   [--data digits|FILE.csv|FILE.npz] [--schedule NAME --param KEY=VALUE ...]
                        [--max-lr auto|LR] [--epochs N] [--batch-size N] [--out DIR] ...
    fused-sched lr-find [--data ...] [--start-lr LR] [--end-lr LR] [--num-steps N] [--out DIR]
    fused-sched plot    NAME [--KEY VALUE | --KEY=VALUE | KEY=VALUE ...] [--out FILE.png]

Exit status: 0 on success, 1 when the range test finds no suggestion, 2 for bad input (one
line on stderr naming the problem).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import math
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fused_sched import compat, schedules
from fused_sched.data import load, split
from fused_sched.lr_finder import METHODS, LRFindResult, lr_find
from fused_sched.optimizer import FusedScheduledAdamW
from fused_sched.table import evaluate

PROG = "fused-sched"
BACKENDS = ("auto", "torch", "reference", "triton")
HIDDEN = 128
# Filled in for a schedule that takes them and was not given them (see `train --help`).
PEAK_NAMES = ("max_lr", "lr", "base_lr")
TOTAL_NAMES = ("total_steps", "num_training_steps", "T_max")
WARMUP_NAMES = ("warmup_steps", "num_warmup_steps")
WARMUP_FRACTION = 0.3
# The range test's sweep, for `lr-find` and for `train --max-lr auto`.
START_LR, END_LR, NUM_STEPS = 1e-7, 10.0, 100
# Bounds on sizes, so that a typo fails at once instead of exhausting memory or running for
# days: a training run's updates (histories of 12 bytes an update stay on the device), a
# range test's updates, and the updates drawn by `plot` (10**6 draw in about 8 s; 10**7 took
# over a minute and several GB).
MAX_UPDATES, MAX_FIND_STEPS, MAX_PLOT_STEPS = 10**7, 10**6, 10**6


class UsageError(Exception):
    """Bad input: exit with ``status`` and this message on one line."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    parser = _parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if args.command is None:
            raise UsageError("choose a command: train, lr-find or plot (see --help)")
        if extras and args.command != "plot":
            raise UsageError(f"unrecognized arguments: {' '.join(extras)}")
        return args.run(args, extras)
    except (UsageError, ValueError, OSError) as error:
        status = error.status if isinstance(error, UsageError) else 2
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return status


# --- train ------------------------------------------------------------------------------------


def _train(args, _extras) -> int:
    device, out = _device(args.device), _out_dir(args.out)
    data = _data(args)
    with _cpu_threads(device):
        model, x, y = _setup(args, data, device)
        steps_per_epoch = math.ceil(len(x) / args.batch_size)
        total = args.epochs * steps_per_epoch
        if total > MAX_UPDATES:
            raise UsageError(
                f"--epochs {args.epochs} is {total} updates ({steps_per_epoch} an epoch); "
                f"a run is at most {MAX_UPDATES}"
            )
        schedule, peak = _train_schedule(args, model, x, y, total)
        optimizer = FusedScheduledAdamW(model.parameters(), schedule, backend=args.backend)
        started = time.perf_counter()
        losses, lrs = _fit(model, optimizer, x, y, args, total, steps_per_epoch)
        seconds = time.perf_counter() - started
        test_loss, test_accuracy = _evaluate(model, data, device)

    final_loss = float(losses[-steps_per_epoch:].mean())
    metrics = {
        "data": args.data,
        "train_rows": len(data.y_train),
        "test_rows": len(data.y_test),
        "features": data.x_train.shape[1],
        "classes": data.classes,
        "schedule": repr(schedule),
        **peak,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "steps": total,
        "backend": optimizer.backend,
        "device": str(device),
        "seed": args.seed,
        "seconds": seconds,
        "final_loss": final_loss,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
    }
    _write_json(out / "metrics.json", metrics)
    _plot_lr(np.arange(1, total + 1), lrs, schedule, out / "lr.png", "lr applied per update")
    _plot_loss(losses, steps_per_epoch, out / "loss.png")

    rows = f"{len(data.y_train)} train / {len(data.y_test)} test rows"
    print(f"{args.data}: {rows}, {data.x_train.shape[1]} features, {data.classes} classes")
    print(f"schedule {schedule!r}" + (f", peak from {peak['max_lr_from']}" if peak else ""))
    print(
        f"{total} steps ({args.epochs} epochs) in {seconds:.2f} s, backend {optimizer.backend}: "
        f"final loss {final_loss:.4f}, test accuracy {100 * test_accuracy:.2f}%"
    )
    print(f"wrote {out / 'metrics.json'}, {out / 'lr.png'}, {out / 'loss.png'}")
    return 0


def _train_schedule(args, model, x, y, total) -> tuple[schedules.Schedule, dict]:
    """The schedule of a run, and (for metrics) its peak lr and where that came from: --param,
    --max-lr, or the range test (`--max-lr auto`, the default, for schedules with a peak)."""
    factory, name = _resolve(args.schedule)
    values = _coerce_all(factory, name, _pairs(args.param))
    parameters = inspect.signature(factory).parameters
    peak_name = next((key for key in PEAK_NAMES if key in parameters), None)
    peak: dict = {}
    if peak_name is None:
        if args.max_lr is not None:
            raise UsageError(f"--max-lr: schedule {name} has no {' or '.join(PEAK_NAMES)}")
    elif peak_name in values:
        if args.max_lr is not None:
            raise UsageError(f"give {peak_name} with --max-lr or with --param, not both")
        peak = {"max_lr": values[peak_name], "max_lr_from": "--param"}
    elif args.max_lr not in (None, "auto"):
        peak = {"max_lr": args.max_lr, "max_lr_from": "--max-lr"}
    else:
        found = _range_test(model, x, y, args, START_LR, END_LR, NUM_STEPS, METHODS[0])
        if found.suggestion is None:
            raise UsageError("the range test found no suggestion; pass --max-lr", status=1)
        peak = {"max_lr": found.suggestion, "max_lr_from": f"lr-find ({found.method})"}
    if peak_name is not None:
        values[peak_name] = peak["max_lr"]
    return _build(factory, name, _defaults(factory, values, total)), peak


def _fit(model, optimizer, x, y, args, total: int, steps_per_epoch: int):
    """Train for ``total`` updates; the per-update loss and applied lr, read once at the end."""
    from tqdm import tqdm

    # Histories stay on the device, written each step and read once after the loop.
    losses = torch.empty(total, dtype=torch.float32, device=x.device)
    lrs = torch.empty(total, dtype=torch.float64, device=x.device)
    lr = optimizer.param_groups[0]["lr"]
    model.train()
    batches = itertools.islice(_batches(x, y, args.batch_size, args.seed), total)
    with tqdm(total=total, desc="train", unit="step", disable=None) as bar:
        for k, (xb, yb) in enumerate(batches):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            losses[k] = loss.detach()
            lrs[k] = lr
            bar.update()
            if not bar.disable and (k + 1) % steps_per_epoch == 0:  # one host read an epoch
                epoch = losses[k + 1 - steps_per_epoch : k + 1].mean().item()
                bar.set_postfix(loss=f"{epoch:.4f}", lr=f"{lr.item():.3g}")
    return losses.cpu().numpy(), lrs.cpu().numpy()


def _evaluate(model, data, device) -> tuple[float, float]:
    """Test loss and accuracy."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x_test).to(device))
        labels = torch.from_numpy(data.y_test).to(device)
        loss = F.cross_entropy(logits, labels).item()
        return loss, (logits.argmax(1) == labels).double().mean().item()


# --- lr-find ----------------------------------------------------------------------------------


def _lr_find(args, _extras) -> int:
    device, out = _device(args.device), _out_dir(args.out)
    data = _data(args)
    with _cpu_threads(device):
        model, x, y = _setup(args, data, device)
        result = _range_test(
            model, x, y, args, args.start_lr, args.end_lr, args.num_steps, args.method
        )

    _write_json(
        out / "lr_find.json",
        {
            "lrs": _finite_list(result.lrs),
            "losses": _finite_list(result.losses),
            "raw_losses": _finite_list(result.raw_losses),
            "suggested_lr": result.suggestion,
            "method": result.method,
            "diverged": result.diverged,
            "start_lr": args.start_lr,
            "end_lr": args.end_lr,
            "num_steps": args.num_steps,
        },
    )
    result.plot(out / "lr_find.png")
    stop = f"diverged at lr {result.lrs[-1]:.3g}" if result.diverged else "did not diverge"
    print(f"range test: {len(result.lrs)} updates from {args.start_lr:.3g}, {stop}")
    print(f"wrote {out / 'lr_find.json'}, {out / 'lr_find.png'}")
    if result.suggestion is None:
        raise UsageError("the range test found no suggestion (see lr_find.png)", status=1)
    print(f"suggested lr: {result.suggestion:.3g} ({result.method})")
    return 0


def _range_test(model, x, y, args, start_lr, end_lr, num_steps, method) -> LRFindResult:
    from tqdm import tqdm

    batches = _batches(x, y, args.batch_size, args.seed)
    with (
        tqdm(batches, total=num_steps, desc="lr-find", unit="step", disable=None) as bar,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # a missing suggestion is reported by the caller
        return lr_find(
            model,
            lambda m, batch: F.cross_entropy(m(batch[0]), batch[1]),
            bar,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            method=method,
            backend=args.backend,
        )


# --- plot -------------------------------------------------------------------------------------


def _plot(args, extras) -> int:
    factory, name = _resolve(args.name)
    out = _image_path(args.out if args.out is not None else f"{name}.png")
    schedule = _build(factory, name, _coerce_all(factory, name, _options(extras)), "--{key} VALUE")
    phases = schedule.phases()
    ends = [p.begin + p.span for p in phases if math.isfinite(p.begin + p.span)]
    last = math.ceil(max(ends))
    horizon = max([10, last + math.ceil(last / 10), *(2 * b for b in schedule.boundaries())])
    if args.until is None and horizon > MAX_PLOT_STEPS:
        raise UsageError(
            f"schedule {name} ends at update {last}, drawn to {horizon} by default; "
            f"give --until N (at most {MAX_PLOT_STEPS})"
        )
    until = args.until if args.until is not None else horizon
    steps = np.arange(until + 1)
    curve = evaluate(schedule.table(), torch.from_numpy(steps)).numpy()
    _plot_lr(steps, curve, schedule, out, repr(schedule))
    peak = int(np.argmax(curve))
    print(f"{schedule!r}")
    print(
        f"start {curve[1]:.6g} (update 1), peak {curve[peak]:.6g} (update {peak}), "
        f"end {curve[-1]:.6g} (update {until})"
    )
    print(f"wrote {out}")
    return 0


# --- schedules by name ------------------------------------------------------------------------


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _registry() -> dict[str, tuple[str, Callable]]:
    """Schedules by normalised name (case, ``_`` and ``-`` ignored): the native classes (by
    class or snake name) and the functions of ``fused_sched.compat``."""
    skip = (schedules.Schedule, schedules.Sequence, schedules.PhaseSchedule)
    found = {}
    for name in schedules.__all__:
        cls = getattr(schedules, name)
        if isinstance(cls, type) and issubclass(cls, schedules.Schedule) and cls not in skip:
            found[_key(name)] = (_snake(name), cls)
    for name in compat.__all__:
        function = getattr(compat, name)
        if inspect.isfunction(function):
            found[_key(name)] = (name, function)
    return found


def _resolve(name: str) -> tuple[Callable, str]:
    registry = _registry()
    if _key(name) not in registry:
        known = ", ".join(sorted(snake for snake, _ in registry.values()))
        raise UsageError(f"unknown schedule {name!r}; known: {known}")
    snake, factory = registry[_key(name)]
    return factory, snake


def _pairs(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict (``-`` in keys read as ``_``)."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r} must be KEY=VALUE")
        _put(found, key, value)
    return found


def _options(tokens: list[str]) -> dict[str, str]:
    """``--KEY VALUE``, ``--KEY=VALUE`` and ``KEY=VALUE`` tokens to a dict."""
    found: dict[str, str] = {}
    tokens = iter(tokens)
    for token in tokens:
        if token.startswith("--"):
            key, sep, value = token[2:].partition("=")
            if not sep:
                value = next(tokens, None)
                if value is None:
                    raise UsageError(f"{token} needs a value")
        else:
            key, sep, value = token.partition("=")
            if not sep:
                raise UsageError(f"unexpected argument {token!r}: give KEY=VALUE or --KEY VALUE")
        _put(found, key, value)
    return found


def _put(found: dict[str, str], key: str, value: str) -> None:
    key = key.replace("-", "_")
    if key in found:
        raise UsageError(f"parameter {key} given twice")
    found[key] = value


def _coerce_all(factory: Callable, name: str, raw: dict[str, str]) -> dict:
    """Parameter strings to values of the type the schedule declares for them."""
    signature = inspect.signature(factory)
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    named = {k: p for k, p in signature.parameters.items() if p.kind not in kinds}
    open_ended = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    values = {}
    for key, text in raw.items():
        if key not in named and not open_ended:
            raise UsageError(
                f"schedule {name} has no parameter {key!r}; it takes {', '.join(named)}"
            )
        annotation = named[key].annotation if key in named else None
        values[key] = _coerce(key, text, annotation)
    return values


def _coerce(key: str, text: str, annotation) -> object:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    parse = {"int": _int, "float": float, "bool": _bool, "str": str}.get(kind, _literal)
    try:
        return parse(text)
    except ValueError:
        raise UsageError(f"parameter {key}={text!r} is not a valid {kind}") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)  # "1e3" is an int too
        if not value.is_integer():
            raise
        return int(value)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ValueError(text)


def _literal(text: str) -> object:
    """An undeclared value: none, a bool, an int, a float, a comma list of these, or text."""
    if "," in text:
        return tuple(_literal(part.strip()) for part in text.split(","))
    if text.lower() == "none":
        return None
    for parse in (_int, float, _bool):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def _defaults(factory: Callable, given: dict, total: int) -> dict:
    """``given``, plus the run's length and a warmup of 30% of it for the parameters that
    name them, unless the schedule has a default of its own for them (None aside)."""
    values = dict(given)
    for key, parameter in inspect.signature(factory).parameters.items():
        if key in values or parameter.default not in (inspect.Parameter.empty, None):
            continue
        if key in TOTAL_NAMES:
            values[key] = total
        elif key in WARMUP_NAMES:
            values[key] = round(WARMUP_FRACTION * total)
    return values


def _build(
    factory: Callable, name: str, values: dict, hint: str = "--param {key}=VALUE"
) -> schedules.Schedule:
    """The schedule from ``values``; a missing parameter is named with ``hint``, the way the
    subcommand takes parameters."""
    parameters = inspect.signature(factory).parameters
    missing = [
        key
        for key, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and key not in values
    ]
    if missing:
        raise UsageError(
            f"schedule {name} needs {', '.join(missing)} (give {hint.format(key=missing[0])})"
        )
    try:
        return factory(**values)
    except TypeError as error:
        raise UsageError(f"schedule {name}: {error}") from None


# --- data, model, batches -------------------------------------------------------------------


def _data(args):
    x, y = load(args.data, args.label_column)
    return split(x, y)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # Only these: torch names many more devices (meta, mps, xpu, ...) that the optimizer's
    # backends cannot run on, and they failed deep in a step.
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", name)
    if match is None:
        raise UsageError(f"--device {name!r} is not a device here: give cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here (use --device cpu)")
        count = torch.cuda.device_count()
        if match[1] is not None and int(match[1]) >= count:
            raise UsageError(f"--device {name}: there are {count} CUDA devices (0..{count - 1})")
    return torch.device(name)


def _setup(args, data, device):
    """The model (a one-hidden-layer MLP, seeded) and the training set, on ``device``."""
    torch.manual_seed(args.seed)
    features = data.x_train.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(features, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, data.classes)
    ).to(device)
    x, y = (torch.from_numpy(a).to(device) for a in (data.x_train, data.y_train))
    return model, x, y


@contextlib.contextmanager
def _cpu_threads(device: torch.device):
    """One intra-op thread on the CPU for the duration: for a model this small, threads
    synchronising cost more than the matrix products (on two busy cores we measured 27 ms an
    update with two threads, 1.1 ms with one). The setting is put back for callers of main()
    in the same process."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int):
    """Shuffled mini-batches forever, a new order each epoch, from a generator of its own."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch_size):
            rows = order[start : start + batch_size]
            yield x[rows], y[rows]


# --- output -----------------------------------------------------------------------------------


def _out_dir(path: str) -> Path:
    """The output directory, made now, so that a bad --out fails before any work."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {path}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {path}: cannot make the directory ({error.strerror})") from None
    return out


def _image_path(path: str) -> Path:
    """The file `plot` writes: ``path``, with ``.png`` appended when it has no suffix (as
    matplotlib would, silently), its directory made."""
    from matplotlib.figure import Figure

    out = Path(path)
    if out.is_dir():
        raise UsageError(f"--out {path}: is a directory; give a file, e.g. {out / 'lr.png'}")
    if not out.suffix:
        out = out.with_name(out.name + ".png")
    kinds = Figure().canvas.get_supported_filetypes()
    if out.suffix[1:].lower() not in kinds:
        raise UsageError(
            f"--out {path}: unknown image type; give .png, or one of {', '.join(kinds)}"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {path}: cannot make its directory ({error.strerror})") from None
    return out


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")


def _finite_list(values: np.ndarray) -> list:
    return [float(v) if math.isfinite(v) else None for v in values]


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    return fig, fig.subplots()


def _plot_lr(steps, lrs, schedule, path: Path, title: str) -> None:
    fig, ax = _figure()
    ax.plot(steps, lrs, color="C0")
    for boundary in schedule.boundaries():
        if steps[0] <= boundary <= steps[-1]:
            ax.axvline(boundary, color="0.6", linestyle=":", linewidth=1)
    ax.set_xlabel("update k")
    ax.set_ylabel("lr")
    ax.set_title(title, fontsize=9)
    fig.savefig(path)


def _plot_loss(losses: np.ndarray, steps_per_epoch: int, path: Path) -> None:
    fig, ax = _figure()
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="0.7", linewidth=0.8, label="batch loss")
    epochs = losses.reshape(-1, steps_per_epoch).mean(axis=1)
    ax.plot(steps[steps_per_epoch - 1 :: steps_per_epoch], epochs, "o-", label="epoch mean")
    ax.set_yscale("log")
    ax.set_xlabel("update k")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.savefig(path)


# --- arguments --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def _positive(kind: type, name: str, most: int | None = None) -> Callable[[str], object]:
    """A parser of a finite number > 0 (an int for ``kind`` int), at most ``most``."""

    def parse(text: str):
        try:
            value = _int(text) if kind is int else float(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} must be finite, got {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {text!r}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{name} must be at most {most}, got {text!r}")
        return value

    return parse


def _seed(text: str) -> int:
    """An int in the range torch's generators take (a larger one failed as "Overflow")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not -(2**63) <= value < 2**64:
        raise argparse.ArgumentTypeError(f"a seed must be in [-2**63, 2**64), got {text!r}")
    return value


def _max_lr(text: str):
    return "auto" if text == "auto" else _positive(float, "an lr")(text)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = _Parser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--data",
        default="digits",
        help="'digits' (scikit-learn's, the default), or a .csv or .npz file",
    )
    common.add_argument(
        "--label-column", help="the .csv label column (default: label; .csv files only)"
    )
    common.add_argument("--batch-size", type=_positive(int, "a size"), default=64)
    common.add_argument("--backend", choices=BACKENDS, default="auto")
    common.add_argument("--seed", type=_seed, default=0, help="model init and batch order")
    common.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if any)")
    lr = _positive(float, "an lr")

    train = commands.add_parser(
        "train",
        parents=[common],
        allow_abbrev=False,
        help="train a small MLP classifier with a schedule",
        description="Train a one-hidden-layer MLP on standardised features (a fixed stratified "
        "75/25 split). Unless given with --param (or given a default by the schedule), "
        "total_steps, num_training_steps and T_max are the run's length, warmup_steps and "
        "num_warmup_steps 30% of it, and max_lr, lr or base_lr come from --max-lr.",
    )
    train.add_argument(
        "--schedule",
        default="one_cycle",
        help="a native schedule (class or snake name) or a compat function",
    )
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a schedule parameter (repeatable)",
    )
    train.add_argument(
        "--max-lr",
        type=_max_lr,
        default=None,
        help="the peak lr, or 'auto' (the default): the range test's suggestion",
    )
    train.add_argument(
        "--epochs",
        type=_positive(int, "a count", MAX_UPDATES),
        default=15,
        help=f"passes over the training set (default 15; a run is at most {MAX_UPDATES} updates)",
    )
    train.add_argument("--out", default="runs/train", help="writes metrics.json, lr.png, loss.png")
    train.set_defaults(run=_train)

    find = commands.add_parser(
        "lr-find",
        parents=[common],
        allow_abbrev=False,
        help="run the LR range test on the same data and model",
    )
    find.add_argument("--start-lr", type=lr, default=START_LR)
    find.add_argument("--end-lr", type=lr, default=END_LR)
    find.add_argument(
        "--num-steps",
        type=_positive(int, "a count", MAX_FIND_STEPS),
        default=NUM_STEPS,
        help=f"updates in the sweep (default {NUM_STEPS}, at most {MAX_FIND_STEPS})",
    )
    find.add_argument("--method", choices=METHODS, default=METHODS[0])
    find.add_argument("--out", default="runs/lr-find", help="writes lr_find.json, lr_find.png")
    find.set_defaults(run=_lr_find)

    plot = commands.add_parser(
        "plot",
        allow_abbrev=False,
        help="draw a schedule to a PNG with its phase boundaries",
        description="Draw NAME with parameters given as --KEY VALUE, --KEY=VALUE or KEY=VALUE.",
    )
    plot.add_argument("name", help="a native schedule or a compat function")
    plot.add_argument(
        "--out", help="the image file (default: NAME.png; .png appended when it has no suffix)"
    )
    plot.add_argument(
        "--until",
        type=_positive(int, "a step", MAX_PLOT_STEPS),
        help=f"the last update drawn (at most {MAX_PLOT_STEPS}; default: 10%% past the end)",
    )
    plot.set_defaults(run=_plot)
    return parser
