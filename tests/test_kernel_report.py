"""GPU readiness without a GPU: bench/kernel_report.py compiles every kernel specialization for
sm_80 and sm_90 offline; the aligned update kernels must stream 128-bit vectors with no local
memory or stack, and every update kernel must address its blocks with 64-bit offsets."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fused_sched.triton_backend import SUPPORTED_DTYPES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "kernel_report.py"
ARCHS = {"sm_80", "sm_90"}


def load_report_module():
    if "kernel_report" not in sys.modules:  # bench/ is not a package
        spec = importlib.util.spec_from_file_location("kernel_report", SCRIPT)
        sys.modules["kernel_report"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["kernel_report"])
    return sys.modules["kernel_report"]


@pytest.fixture(scope="module")
def rows():
    # Compiling needs the real Triton frontend, not the interpreter that conftest.py selects.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    out = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


def update_rows(rows, aligned):
    suffix = " aligned" if aligned else " unaligned"
    return [
        r for r in rows if r["kernel"] == "adamw_kernel" and r["specialization"].endswith(suffix)
    ]


def test_every_specialization_compiles_for_both_architectures(rows):
    keys = {"kernel", "specialization", "arch", "registers", "local_bytes", "stack_bytes",
            "load_bits", "store_bits"}  # fmt: skip
    assert all(keys <= set(r) for r in rows)
    archs = {}
    for r in rows:
        archs.setdefault((r["kernel"], r["specialization"]), set()).add(r["arch"])
    assert all(found == ARCHS for found in archs.values()), archs
    kernels = [kernel for kernel, _ in archs]
    assert kernels.count("adamw_kernel") == 2 * len(SUPPORTED_DTYPES)  # x aligned / unaligned
    assert kernels.count("advance_kernel") == 1 and kernels.count("schedule_lr_kernel") == 1
    assert all(r["registers"] > 0 for r in rows)


def test_aligned_update_kernels_stream_128_bit_vectors_without_local_memory(rows):
    aligned = update_rows(rows, aligned=True)
    assert len(aligned) == 2 * len(SUPPORTED_DTYPES)
    for r in aligned:
        assert (r["load_bits"], r["store_bits"], r["local_bytes"]) == (128, 128, 0), r


def test_update_kernels_use_no_stack(rows):
    for r in update_rows(rows, aligned=True) + update_rows(rows, aligned=False):
        assert (r["stack_bytes"], r["local_bytes"]) == (0, 0), r


def test_update_kernels_offset_their_blocks_in_64_bits(rows):
    # A 32-bit block offset would wrap for elements past 2**31 (BR-27).
    for r in update_rows(rows, aligned=True) + update_rows(rows, aligned=False):
        assert r["offset_bits"] == 64, r


# --- the report's parsers, on hand-written PTX and TTIR -------------------------------------

PTX = """
\t.file\t1 "/src/kernel.py"
\t.file\t2 "/src/other.py"
\t.loc\t2 10 3
\tld.global.nc.v2.b64 { %rd1, %rd2 }, [ %rd3 + 0 ];
\t.loc\t1 20 9, function_name $L__info_string0, inlined_at 1 40 5
\t@%p1 ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd4 + 0 ];
\tld.global.b32 { %r5 }, [ %rd5 + 0 ];
\t.loc\t1 22 9
\tst.global.v2.b32 [ %rd6 + 0 ], { %r6, %r7 };
\t.loc\t1 30 1
\tst.global.v4.b32 [ %rd7 + 0 ], { %r8, %r9, %r10, %r11 };
"""


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (None, {"load_bits": 128, "store_bits": 128}),
        (("kernel.py", range(20, 25)), {"load_bits": 128, "store_bits": 64}),
        (("other.py", range(1, 100)), {"load_bits": 128, "store_bits": 0}),
        (("kernel.py", range(21, 23)), {"load_bits": 0, "store_bits": 64}),
    ],
)
def test_access_bits_counts_only_the_named_lines(lines, expected):
    """By file name and line: a cached PTX may name the checkout it was first compiled in."""
    assert load_report_module().access_bits(PTX, lines) == expected


@pytest.mark.parametrize(
    ("ttir", "expected"),
    [
        ("%5 = tt.addptr %3, %4 : tensor<1024x!tt.ptr<f32>>, tensor<1024xi64> loc(#loc9)", 64),
        ("%5 = tt.addptr %3, %4 : tensor<1024x!tt.ptr<bf16>>, tensor<1024xi32> loc(#loc9)", 32),
        ("%5 = tt.addptr %3, %4 : tensor<8x!tt.ptr<f64>>, tensor<8xi32> loc(#loc9)", None),
    ],
)
def test_offset_bits_reads_block_sized_addptr(ttir, expected):
    assert load_report_module().offset_bits(ttir, 1024) == expected
