"""Kernel scratch without generating C: the plan-only mode's step 2.

`compiler.codegen.build_kernels` schedules each fused PrimFunc, lowers it through TVM's
TIR pipeline and prints C; the scratch it needs is read from the
``TVMBackendAllocWorkspace(dev, id, nbytes, ...)`` calls of that C. `kernel_scratch` runs
the same schedule and the same TIR pipeline (`tvm.tirx.build` up to, not including, the
code generator) and reads the same calls in the lowered TIR, so the sizes are those of
the compiled kernels byte for byte (`tests/compiler/test_plan_only.py` compares the arenas). One
step is left out: a fused inverted residual's ring of expanded rows (``ring=False`` of
`schedule_kernel`), a TVMScript round trip that changes no buffer size.

A `ScratchCache` remembers the scratch of kernels already lowered: the schedule and the
TIR pipeline are functions of the PrimFunc's structure (shapes, dtypes, loop nests; not
its name, except whether it is a fused inverted residual, which the schedule recognises
by name), so a structurally equal PrimFunc (``tvm_ffi.structural_equal``) needs the same
scratch. A search that plans many subnets of one space meets the same blocks again and
again; the cache makes their kernels free after the first time.
"""

from __future__ import annotations

import re

from compiler.codegen.schedule import FUSED_KERNEL, schedule_kernel
from compiler.errors import CompilerError
from compiler.memory.buffer import DEFAULT_ALIGNMENT, workspace_bytes
from compiler.stage_times import stage

_ALLOC_TIR = re.compile(r"TVMBackendAllocWorkspace\(([^()]*(?:\([^()]*\)[^()]*)*)\)")
_ALLOC_TIR_SIZE = re.compile(r"^\s*[\w.]+\s*,\s*[\w.]+\s*,\s*T\.uint64\((\d+)\)")


def lowered_workspace_requests(script: str) -> tuple[int, ...]:
    """Sizes of the ``TVMBackendAllocWorkspace`` calls in a lowered TIR script.

    Raises:
        CompilerError: a call whose size is not a constant (dynamic shapes).
    """
    from compiler.codegen.kernels import allocation_sizes

    return allocation_sizes(script, _ALLOC_TIR, _ALLOC_TIR_SIZE)


def lower_kernel_tir(func, symbol: str, tvm_target: dict):
    """The host IRModule `tvm.tirx.build` would hand to the C code generator for `func`."""
    import tvm
    from tvm.tirx.build import split_host_device_mods

    target = tvm.target.Target(tvm_target)
    mod = tvm.IRModule({tvm.ir.GlobalVar(symbol): func.with_attr("global_symbol", symbol)})
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        mod = tvm.tirx.transform.BindTarget(target.with_host(target))(mod)
        pipeline, finalize_host, _ = tvm.tirx.get_default_tir_pipeline(target)
        host, _ = split_host_device_mods(pipeline(mod))
        return finalize_host()(host)


class ScratchCache:
    """Scratch bytes of kernels already lowered, keyed by their structure (see module doc).

    Args:
        max_entries: entries kept; the oldest are dropped beyond it.
    """

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: dict[tuple, list[tuple[object, int]]] = {}
        self._count = 0
        self.hits = self.misses = 0

    def _key(self, func, kernel: str, schedule: bool, tvm_target: dict) -> tuple:
        import tvm_ffi

        # the name picks the schedule: a fused block's row bands, a patch stage's tiles
        # (its patch count is in the name only)
        variant = kernel if kernel.startswith("patch") else bool(FUSED_KERNEL.match(kernel))
        return (tvm_ffi.structural_hash(func), variant, schedule,
                repr(sorted(tvm_target.items())))

    def get(self, func, kernel: str, schedule: bool, tvm_target: dict) -> int | None:
        """The cached scratch of a structurally equal kernel, or None."""
        import tvm_ffi

        for other, nbytes in self._entries.get(self._key(func, kernel, schedule, tvm_target), []):
            if tvm_ffi.structural_equal(func, other):
                self.hits += 1
                return nbytes
        self.misses += 1
        return None

    def put(self, func, kernel: str, schedule: bool, tvm_target: dict, nbytes: int) -> None:
        """Remembers the scratch of `func`."""
        if self._count >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
            self._count = sum(len(v) for v in self._entries.values())
        self._entries.setdefault(self._key(func, kernel, schedule, tvm_target), []).append(
            (func, int(nbytes)))
        self._count += 1


def kernel_scratch(fused, kernels: list[str], tvm_target: dict,
                   schedule: bool = True, cache: ScratchCache | None = None) -> dict[str, int]:
    """Scratch bytes of each kernel, as `build_kernels(...)[k].workspace_bytes` reports.

    Args:
        fused: the fused Relax module.
        kernels: PrimFunc names (each once).
        tvm_target: TVM target dict (kind "c").
        schedule: apply the default kernel schedule first, as `build_kernels` does.
        cache: a `ScratchCache` to read and fill (none: every kernel is lowered).

    Returns:
        kernel → bytes (16-byte rounded per allocation; 0 for none).
    """
    if tvm_target.get("kind") != "c":
        raise CompilerError(f"kernel scratch for TVM target {tvm_target} is not implemented; "
                            "the C flow needs target kind 'c'")
    from compiler.kernels.calls import library_call, library_scratch_bytes

    out = {}
    for i, kernel in enumerate(dict.fromkeys(kernels)):
        func = fused[kernel]
        call = library_call(func)
        if call is not None:  # a kernel library call: its own scratch, no TVM one
            out[kernel] = library_scratch_bytes(call)
            continue
        cached = cache.get(func, kernel, schedule, tvm_target) if cache is not None else None
        if cached is not None:
            out[kernel] = cached
            continue
        with stage("schedule"):  # a fused block's ring changes no buffer size: skipped
            scheduled = schedule_kernel(func, kernel, ring=False) if schedule else func
        host = lower_kernel_tir(scheduled, f"kernel_{i}", tvm_target)
        out[kernel] = workspace_bytes(lowered_workspace_requests(host.script()),
                                      DEFAULT_ALIGNMENT)
        if cache is not None:
            cache.put(func, kernel, schedule, tvm_target, out[kernel])
    return out
