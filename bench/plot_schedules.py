"""Draw every native schedule, phase boundaries marked, into one PNG for the README.

Each panel is the lr of update k for k = 0..T+tail, read from the schedule's phase table by
``fused_sched.evaluate`` (the torch evaluator; the Triton kernel reads the same table). Dotted
vertical lines are ``Schedule.boundaries()``, the updates where a phase begins. Several
variants of one schedule share a panel.

    python bench/plot_schedules.py              # writes docs/schedules.png
    python bench/plot_schedules.py --out /tmp --dpi 120
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402  (Pillow: a dependency of matplotlib)

from fused_sched import (  # noqa: E402
    Constant,
    CosineRestarts,
    ExponentialRamp,
    InverseSqrt,
    OneCycle,
    Polynomial,
    Schedule,
    Sequence,
    Warmup,
    WarmupCosine,
    WarmupStableDecay,
    evaluate,
)

# (title, steps drawn, log y axis, [(label, schedule), ...]): one panel each.
PANELS = [
    ("Constant(1e-3)", 100, False, [("", Constant(1e-3))]),
    (
        "Warmup(1e-3, W=20)",
        100,
        False,
        [("start_lr=0", Warmup(1e-3, 20)), ("start_lr=3e-4", Warmup(1e-3, 20, start_lr=3e-4))],
    ),
    (
        "WarmupCosine(1e-3, W=10, T=100)",
        120,
        False,
        [("min_lr=1e-4", WarmupCosine(1e-3, 10, 100, min_lr=1e-4))],
    ),
    (
        "OneCycle(1e-3, T=100, W=30)",
        120,
        True,
        [
            ("", OneCycle(1e-3, 100, 30)),
            ("final_drop=(0.1, 0.01)", OneCycle(1e-3, 100, 30, final_drop=(0.1, 0.01))),
        ],
    ),
    (
        "WarmupStableDecay(1e-3, W=10, D=30, T=100)",
        120,
        False,
        [
            (decay, WarmupStableDecay(1e-3, 10, 30, 100, min_lr=1e-5, decay=decay))
            for decay in ("linear", "cosine", "sqrt")
        ],
    ),
    (
        "InverseSqrt(1e-3, W)",
        100,
        False,
        [(f"W={w}", InverseSqrt(1e-3, w)) for w in (0, 4, 20)],
    ),
    (
        "Polynomial(1e-3, T=100, W=10)",
        120,
        False,
        [(f"power={p}", Polynomial(1e-3, 100, 10, power=p)) for p in (0.5, 1.0, 2.0)],
    ),
    (
        "ExponentialRamp(1e-7, 10, 100)",
        120,
        True,
        [("", ExponentialRamp(1e-7, 10.0, 100))],
    ),
    (
        "CosineRestarts(1e-3, 10, min_lr=2e-4, W=5)",
        45,
        False,
        [
            ("default (as torch)", CosineRestarts(1e-3, 10, 1.0, 2e-4, 5)),
            ("land_on_min=True", CosineRestarts(1e-3, 10, 1.0, 2e-4, 5, land_on_min=True)),
        ],
    ),
    (
        "CosineRestarts(1e-3, 10, cycle_mult)",
        160,
        False,
        [
            ("cycle_mult=2", CosineRestarts(1e-3, 10, 2.0)),
            ("cycle_mult=1.5", CosineRestarts(1e-3, 10, 1.5)),
        ],
    ),
    (
        "Sequence: Warmup 20, WarmupCosine 60, Constant",
        110,
        False,
        [
            (
                "",
                Sequence(
                    [
                        (Warmup(1e-3, 20), 20),
                        (WarmupCosine(1e-3, 0, 60, min_lr=2e-4), 60),
                        (Constant(2e-4), 20),
                    ]
                ),
            )
        ],
    ),
    (
        "Sequence: OneCycle 50, then InverseSqrt",
        110,
        False,
        [
            (
                "",
                Sequence([(OneCycle(1e-3, 50, 15), 50), (InverseSqrt(5e-4, 10), 60)]),
            )
        ],
    ),
]


def curve(schedule: Schedule, steps: int) -> tuple[list[int], list[float]]:
    """(k, lr of update k) for k = 0..steps, from the phase table."""
    k = torch.arange(steps + 1)
    return k.tolist(), evaluate(schedule.table(), k).tolist()


def draw(path: Path, dpi: int) -> None:
    columns = 3
    rows = -(-len(PANELS) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.7 * rows), squeeze=False)
    for ax, (title, steps, log, variants) in zip(axes.flat, PANELS, strict=False):
        top = 0.0
        for label, schedule in variants:
            k, lr = curve(schedule, steps)
            top = max(top, *lr)
            # Short runs get a dot per update, so off-by-one details (restarts) show.
            ax.plot(k, lr, lw=1.2, marker="." if steps <= 50 else None, ms=4, label=label or None)
        marks = sorted({b for _, s in variants for b in s.boundaries() if b <= steps})
        for b in marks:
            ax.axvline(b, color="0.55", lw=0.8, ls=":", zorder=0)
        ax.set_title(title, fontsize=9)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.1 * top)
        ax.tick_params(labelsize=7)
        ax.yaxis.get_offset_text().set_fontsize(7)
        ax.set_xlim(0, steps)
        if any(label for label, _ in variants):
            ax.legend(fontsize=6.5, frameon=False)
    for ax in axes.flat[len(PANELS) :]:
        ax.set_visible(False)
    fig.supxlabel("update k (lr_at(k) is the lr of the k-th optimizer.step())", fontsize=9)
    fig.supylabel("learning rate", fontsize=9)
    fig.suptitle("fused_sched native schedules (dotted: phase boundaries)", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi)
    plt.close(fig)
    # A 64-colour palette keeps the file small for the repository; the plot has few colours.
    Image.open(buffer).quantize(colors=64).save(path, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNG")
    parser.add_argument("--dpi", type=int, default=80, help="resolution (default: 80)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "schedules.png"
    draw(path, args.dpi)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
