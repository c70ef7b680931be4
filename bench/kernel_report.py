"""Compile every Triton kernel specialization offline and report what the GPU would run.

For each specialization of ``adamw_kernel`` (every supported dtype combination, 16-byte aligned
or not), ``advance_kernel`` and ``schedule_lr_kernel``, and for sm_80 and sm_90, this compiles
the kernel with ``triton.compile`` for a ``GPUTarget`` (no GPU needed) as the launcher would
launch it, and reads:

- registers, local memory and stack per thread from the cubin, with the ``cuobjdump
  --dump-resource-usage`` that Triton ships;
- the widest global load and store, in bits, that the kernel's streams issue in the PTX
  (``ld.global.v4.b32`` is 128). For the update kernel only the accesses that the PTX's
  ``.loc`` line info attributes to ``_adamw_block`` count (the parameter, gradient and moment
  streams), not the loads of the schedule and address tables; for the other kernels, all;
- the narrowest offset, in bits, added to a block of BLOCK_SIZE pointers (``tt.addptr`` in the
  compiled TTIR): 64 for the update kernel means a block start past 2**31 stays exact.

Usage: ``python bench/kernel_report.py [--json]``. Compilations run in parallel processes and
hit Triton's cache on a second run.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ARCHS = (80, 90)
_PTR_HINT = [["tt.divisibility", 16]]  # torch allocations are 16-byte aligned


@dataclass(frozen=True)
class Spec:
    """One specialization: the kernel's signature and constexprs as the launcher passes them."""

    kernel: str
    specialization: str
    signature: dict
    constexprs: dict
    num_warps: int
    stream_function: str | None  # the function whose accesses are the streams; None: all


def specs() -> list[Spec]:
    """Every specialization that fused_sched launches."""
    import triton.language as tl

    from fused_sched import triton_backend as backend
    from fused_sched.table import MIN_ROWS

    names = {tl.float32: "fp32", tl.float64: "fp64", tl.bfloat16: "bf16", tl.float16: "fp16"}
    tables = ["param", "grad", "exp_avg", "exp_avg_sq", "step"]
    update = {f"{name}_addrs_ptr": "*i64" for name in tables}
    update |= {"numels_ptr": "*i64", "groups_ptr": "*i64", "block_tensors_ptr": "*i64"}
    update |= {"block_starts_ptr": "*i64", "tables_ptr": "*fp64", "hparams_ptr": "*fp64"}
    update |= {"counter_ptr": "*i64"}
    out = []
    for param_dtype, moment_dtype in backend.SUPPORTED_DTYPES:
        dtypes = backend.kernel_dtypes(param_dtype, moment_dtype)
        for aligned in (True, False):
            constexprs = {**dtypes, "ROWS": MIN_ROWS, "BLOCK_SIZE": backend.BLOCK_SIZE}
            constexprs["ALIGNED"] = aligned
            label = (
                f"param={names[dtypes['PARAM_DTYPE']]} moment={names[dtypes['MOMENT_DTYPE']]} "
                + ("aligned" if aligned else "unaligned")
            )
            out.append(
                Spec("adamw_kernel", label, update, constexprs, backend.NUM_WARPS, "_adamw_block")
            )
    advance = {"step_addrs_ptr": "*i64", "tables_ptr": "*fp64", "counter_ptr": "*i64"}
    advance |= {"lrs_ptr": "*fp64", "n_steps": "i32", "n_groups": "i32"}
    constexprs = {"ROWS": MIN_ROWS, "BLOCK_SIZE": backend.ADVANCE_BLOCK_SIZE}
    out.append(
        Spec("advance_kernel", "-", advance, constexprs, backend.NUM_WARPS, "advance_kernel")
    )
    schedule = {"table_ptr": "*fp64", "steps_ptr": "*i64", "out_ptr": "*fp64"}
    constexprs = {"ROWS": MIN_ROWS}
    out.append(Spec("schedule_lr_kernel", "-", schedule, constexprs, 4, "schedule_lr_kernel"))
    return out


def _function(name: str):
    from fused_sched.kernels import adamw, schedule

    return getattr(adamw, name, None) or getattr(schedule, name)


def _resource_usage(cubin: bytes, kernel: str) -> dict:
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    line = re.search(rf"Function {kernel}:\s*\n\s*(.*)", text)
    if line is None:
        raise RuntimeError(f"cuobjdump printed no resource usage for {kernel}:\n{text}")
    usage = dict(re.findall(r"(\w+):(\d+)", line.group(1)))
    return {"registers": int(usage["REG"]), "local_bytes": int(usage["LOCAL"]),
            "stack_bytes": int(usage["STACK"])}  # fmt: skip


_ACCESS = re.compile(r"\b(ld|st)\.global(?:\.\w+)*?(?:\.v(\d))?\.[bsuf](\d+)\b")
_LOC = re.compile(r"^\s*\.loc\s+(\d+)\s+(\d+)")
_FILE = re.compile(r'^\s*\.file\s+(\d+)\s+"([^"]+)"')


def access_bits(ptx: str, lines: tuple[str, range] | None) -> dict:
    """Widest global load and store in bits, counting only instructions whose ``.loc`` lies in
    ``lines`` (a source file and its line range), or all when ``lines`` is None.

    Files are matched by name only: Triton's cache may return PTX compiled from the same
    source in another checkout, whose ``.file`` paths name that checkout."""
    files = {m.group(1): Path(m.group(2)).name for m in map(_FILE.match, ptx.splitlines()) if m}
    widest = {"ld": 0, "st": 0}
    where = None
    for text in ptx.splitlines():
        loc = _LOC.match(text)
        if loc:
            where = (files.get(loc.group(1), ""), int(loc.group(2)))
            continue
        access = _ACCESS.search(text)
        if access is None:
            continue
        if lines is not None and not (where and where[0] == lines[0] and where[1] in lines[1]):
            continue
        bits = int(access.group(2) or 1) * int(access.group(3))
        widest[access.group(1)] = max(widest[access.group(1)], bits)
    return {"load_bits": widest["ld"], "store_bits": widest["st"]}


def offset_bits(ttir: str, block_size: int) -> int | None:
    """The narrowest integer offset of a ``tt.addptr`` on a block of ``block_size`` pointers."""
    pattern = rf"tt\.addptr .*: tensor<{block_size}x!tt\.ptr<\w+>>, tensor<{block_size}xi(\d+)>"
    widths = [int(w) for w in re.findall(pattern, ttir)]
    return min(widths) if widths else None


def compile_spec(index: int, arch: int) -> dict:
    """Compile specialization ``index`` of :func:`specs` for sm_``arch`` and measure it."""
    import triton
    from triton.backends.compiler import GPUTarget

    spec = specs()[index]
    fn = _function(spec.kernel)
    names = list(spec.signature) + list(spec.constexprs)
    signature = {**spec.signature, **dict.fromkeys(spec.constexprs, "constexpr")}
    order = inspect.signature(fn.fn).parameters
    if list(order) != sorted(names, key=list(order).index):
        raise RuntimeError(f"{spec.kernel}: report signature {names} != kernel {list(order)}")
    attrs = {(list(order).index(n),): _PTR_HINT for n, t in spec.signature.items() if t[0] == "*"}
    source = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=spec.constexprs,
                                       attrs=attrs)  # fmt: skip
    compiled = triton.compile(
        source, target=GPUTarget("cuda", arch, 32), options={"num_warps": spec.num_warps}
    )
    lines = None
    if spec.stream_function is not None:
        stream = _function(spec.stream_function).fn
        body, first = inspect.getsourcelines(stream)
        lines = (Path(inspect.getsourcefile(stream)).name, range(first, first + len(body)))
    block_size = spec.constexprs.get("BLOCK_SIZE")
    return {
        "kernel": spec.kernel,
        "specialization": spec.specialization,
        "arch": f"sm_{arch}",
        **_resource_usage(compiled.asm["cubin"], spec.kernel),
        **access_bits(compiled.asm["ptx"], lines),
        "offset_bits": offset_bits(compiled.asm["ttir"], block_size) if block_size else None,
    }


def report(workers: int | None = None) -> list[dict]:
    """One row per (specialization, arch), in a fixed order."""
    jobs = [(i, arch) for i in range(len(specs())) for arch in ARCHS]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(compile_spec, *zip(*jobs, strict=True)))


def table(rows: list[dict]) -> str:
    columns = ["kernel", "specialization", "arch", "registers", "local_bytes", "stack_bytes",
               "load_bits", "store_bits", "offset_bits"]  # fmt: skip
    cells = [columns] + [["-" if r[c] is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows")
    parser.add_argument("--workers", type=int, default=None, help="compile processes")
    args = parser.parse_args(argv)
    rows = report(args.workers)
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
