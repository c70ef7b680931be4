"""fused_sched: AdamW with the learning-rate schedule evaluated on the device.

The schedule is data (a phase table) read by the update itself from a device step counter, so
a whole training step, schedule included, can be captured in a CUDA graph.
"""

from fused_sched.lr_finder import LRFindResult, lr_find, suggest_lr
from fused_sched.optimizer import FusedScheduledAdamW
from fused_sched.schedules import (
    Constant,
    CosineRestarts,
    ExponentialRamp,
    InverseSqrt,
    OneCycle,
    PhaseSchedule,
    Polynomial,
    Schedule,
    Sequence,
    Warmup,
    WarmupCosine,
    WarmupStableDecay,
)
from fused_sched.table import evaluate

__all__ = [
    "Constant",
    "CosineRestarts",
    "ExponentialRamp",
    "FusedScheduledAdamW",
    "LRFindResult",
    "InverseSqrt",
    "OneCycle",
    "PhaseSchedule",
    "Polynomial",
    "Schedule",
    "Sequence",
    "Warmup",
    "WarmupCosine",
    "WarmupStableDecay",
    "evaluate",
    "lr_find",
    "suggest_lr",
]
