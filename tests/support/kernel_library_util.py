"""Kernel-library cases: the NumPy specification, the C driver, and host / QEMU builds.

A `KernelCase` is one call of a `runtime/c/kernels` function with seeded random data and
the output the NumPy integer reference gives (`compiler.reference.kernels` on NCHW
``x − zp`` tensors + `compiler.int8.requantize`, exactly as the reference interpreter
computes each group). `render_driver` writes a C file holding every case's arrays as
``const`` data and a ``main`` that runs the cases and prints, per case,
``@K <index> <status> <ticks> <fnv1a32>`` then the output bytes as ``@D`` hex lines.
The same driver builds for the host (gcc), aarch64 (qemu-aarch64) and Cortex-M
(the qemu-mps port, semihosting, SysTick ticks = 40 or 31.25 instructions with
``-icount shift=0``). Used by tests/compiler/kernels/test_kernel_library.py and
benchmarks/mcu_kernels.py.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from compiler import int8
from compiler.kernels import ALL_KERNEL_SOURCES, KERNELS_DIR, isa_for_cpu, packing
from compiler.reference import kernels as ref
from tests.support.tools import require_tools

REPO = Path(__file__).resolve().parents[2]
C_INCLUDE = REPO / "runtime" / "c" / "include"


@dataclass
class KernelCase:
    """One kernel call: C function, struct fields, arrays, expected NHWC int8 output."""

    name: str
    call: str  # C statement template; {p} is the case's array prefix
    arrays: dict[str, np.ndarray]
    expected: np.ndarray
    macs: int = 0
    structs: list[str] = field(default_factory=list)  # C declarations before the call
    scratch: int = 0  # bytes of a writable {p}scratch buffer (0: none)


def _requant_struct(p: str, rq: packing.Requant) -> str:
    return (f"const qanas_requant_t {p}rq = {{{p}mult, {p}shift, {rq.zero_point}, "
            f"{rq.qmin}, {rq.qmax}}};")


def _requant_arrays(rq: packing.Requant) -> dict:
    return {"mult": rq.multiplier, "shift": rq.shift}


def random_scales(rng: np.random.Generator, channels: int, ties: bool = False,
                  wide: float = 0.15, reduction: int = 9) -> np.ndarray:
    """Real requantization factors that spread random outputs over the int8 range:
    about 40 / (128 · 128 · √reduction) (× 2^±2), a share ``wide`` of them ≥ 0.25 (the
    64-bit path; those outputs mostly clamp), or powers of two (exact ties, where
    half-even rounding matters) when ``ties``."""
    centre = np.log2(40.0 / (128 * 128 * np.sqrt(max(reduction, 1))))
    if ties:
        return 2.0 ** np.minimum(np.round(centre + rng.uniform(-2, 2, channels)), -3)
    s = 2.0 ** (centre + rng.uniform(-2, 2, channels))
    big = rng.random(channels) < wide
    return np.where(big, rng.uniform(0.25, 1.5, channels), s)


def _clamp(rng: np.random.Generator, zp: int) -> tuple[int, int]:
    """No clamp, ReLU or a ReLU6-like bound, at random."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return -128, 127
    if kind == 1:
        return max(-128, zp), 127
    return max(-128, zp), min(127, zp + 60)


def conv_case(name: str, rng: np.random.Generator, *, h: int, w: int, cin: int, cout: int,
              k: int = 3, stride: int = 1, dilation: int = 1, pads=(1, 1, 1, 1),
              groups: int = 1, depthwise: bool = False, multiplier: int = 1,
              ties: bool = False, kh: int | None = None, wide: float = 0.15,
              isa: str = "portable") -> KernelCase:
    """A conv2d / depthwise case; ``pads`` in ONNX order (top, left, bottom, right);
    ``isa`` picks the weight layout (`compiler.kernels.packing.pack_conv`)."""
    kh = k if kh is None else kh
    x = rng.integers(-128, 128, (1, cin, h, w)).astype(np.int8)
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    if depthwise:
        cout, groups = cin * multiplier, cin
    wt = rng.integers(-127, 128, (cout, cin // groups, kh, k)).astype(np.int8)
    bias = rng.integers(-(1 << 16), 1 << 16, cout).astype(np.int32)
    qmin, qmax = _clamp(rng, zy)
    rq = packing.requant(random_scales(rng, cout, ties, wide, (cin // groups) * kh * k),
                         cout, zy, qmin, qmax)
    acc = ref.conv2d(x.astype(np.int64) - zx, wt, (stride, stride), pads,
                     (dilation, dilation), groups) + bias.reshape(1, -1, 1, 1)
    y = int8.requantize(acc, rq.multiplier.reshape(1, -1, 1, 1).astype(np.int64),
                        rq.shift.reshape(1, -1, 1, 1).astype(np.int64), zy, qmin, qmax)
    _, _, ho, wo = y.shape
    packed = (packing.pack_depthwise(wt, bias, zx) if depthwise
              else packing.pack_conv(wt, bias, zx, groups, isa))
    p = "{p}"
    params = (f"const qanas_conv_params_t {p}cp = {{{h}, {w}, {cin}, {ho}, {wo}, {cout}, "
              f"{kh}, {k}, {stride}, {stride}, {dilation}, {dilation}, {pads[0]}, {pads[1]}, "
              f"{groups}, {multiplier}, {zx}}};")
    fn = "qanas_depthwise_conv2d_s8" if depthwise else "qanas_conv2d_s8"
    return KernelCase(
        name, f"{fn}(&{p}cp, {p}input, {p}weights, {p}bias, &{p}rq, {p}output)",
        {"input": x.transpose(0, 2, 3, 1), "weights": packed.weights, "bias": packed.bias,
         **_requant_arrays(rq)},
        y.transpose(0, 2, 3, 1), macs=int(acc.size * (cin // groups) * kh * k),
        structs=[params, _requant_struct(p, rq)])


def pointwise_case(name: str, rng: np.random.Generator, *, pixels: int, cin: int,
                   cout: int, ties: bool = False, wide: float = 0.15,
                   isa: str = "portable") -> KernelCase:
    """A `qanas_pointwise_conv_s8` case over ``pixels`` NHWC pixels (a 1 × pixels image)."""
    case = conv_case(name, rng, h=1, w=pixels, cin=cin, cout=cout, k=1, pads=(0, 0, 0, 0),
                     ties=ties, wide=wide, isa=isa)
    p = "{p}"
    case.call = (f"qanas_pointwise_conv_s8({pixels}, {cin}, {cout}, {p}input, {p}weights, "
                 f"{p}bias, &{p}rq, {p}output)")
    case.structs = case.structs[1:]
    return case


def avg_pool_case(name: str, rng: np.random.Generator, *, h: int, w: int, c: int, k: int,
                  stride: int, pads=(0, 0, 0, 0), count_include_pad: bool = False) -> KernelCase:
    """A `qanas_avg_pool2d_s8` case (ONNX AveragePool semantics of the reference)."""
    x = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8)
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    sx, sy = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.01, 0.1))
    qmin, qmax = _clamp(rng, zy)
    rq = packing.pool_requant(sx, sy, (k, k), zy, qmin, qmax)
    acc = ref.window_sums(x.astype(np.int64) - zx, (k, k), (stride, stride), pads)
    _, _, ho, wo = acc.shape
    counts = (np.full((ho, wo), k * k) if count_include_pad else
              np.outer(ref.valid_counts(h, k, stride, pads[0], ho),
                       ref.valid_counts(w, k, stride, pads[1], wo)))
    y = int8.requantize(acc, rq.multiplier[counts].astype(np.int64),
                        rq.shift[counts].astype(np.int64), zy, qmin, qmax)
    p = "{p}"
    params = (f"const qanas_pool_params_t {p}pp = {{{h}, {w}, {c}, {ho}, {wo}, {k}, {k}, "
              f"{stride}, {stride}, {pads[0]}, {pads[1]}, {int(count_include_pad)}, {zx}}};")
    return KernelCase(name, f"qanas_avg_pool2d_s8(&{p}pp, {p}input, &{p}rq, {p}output)",
                      {"input": x.transpose(0, 2, 3, 1), **_requant_arrays(rq)},
                      y.transpose(0, 2, 3, 1), structs=[params, _requant_struct(p, rq)])


def global_pool_case(name: str, rng: np.random.Generator, *, h: int, w: int,
                     c: int) -> KernelCase:
    """A `qanas_global_avg_pool_s8` case."""
    x = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8)
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    rq = packing.requant(float(rng.uniform(0.01, 2.0)) / (h * w), 1, zy)
    acc = (x.astype(np.int64) - zx).sum(axis=(2, 3), keepdims=True)
    y = int8.requantize(acc, int(rq.multiplier[0]), int(rq.shift[0]), zy)
    p = "{p}"
    return KernelCase(
        name, f"qanas_global_avg_pool_s8({h}, {w}, {c}, {zx}, {p}input, &{p}rq, {p}output)",
        {"input": x.transpose(0, 2, 3, 1), **_requant_arrays(rq)}, y.transpose(0, 2, 3, 1),
        structs=[_requant_struct(p, rq)])


def elementwise_case(name: str, rng: np.random.Generator, *, op: str, count: int,
                     b_channels: int = 0) -> KernelCase:
    """An add / sub / mul case, ``b`` broadcast per channel when ``b_channels``."""
    a = rng.integers(-128, 128, count).astype(np.int8)
    b = rng.integers(-128, 128, b_channels or count).astype(np.int8)
    bb = np.tile(b, count // b_channels) if b_channels else b
    za, zb, zy = (int(v) for v in rng.integers(-100, 100, 3))
    sa, sb, sy = (float(v) for v in rng.uniform(0.01, 0.1, 3))
    qmin, qmax = _clamp(rng, zy)
    p = "{p}"
    if op == "mul":
        sy = sa * sb * float(rng.uniform(60, 200))  # products of ±255 land in range
        m, s = int8.quantize_multiplier(np.float64(sa) * sb / sy)
        y = int8.requantize((a.astype(np.int64) - za) * (bb.astype(np.int64) - zb), int(m),
                            int(s), zy, qmin, qmax)
        params = (f"const qanas_mul_params_t {p}mp = {{{za}, {zb}, {int(m)}, {int(s)}, "
                  f"{zy}, {qmin}, {qmax}}};")
        call = f"qanas_mul_s8({count}, {p}a, {p}b, {b_channels}, &{p}mp, {p}output)"
    else:
        ap = packing.add_params(sa, za, sb, zb, sy, zy, op == "sub", qmin, qmax)
        ta = (a.astype(np.int64) - za) * ap.a_multiplier
        tb = (bb.astype(np.int64) - zb) * ap.b_multiplier
        y = int8.rounding_right_shift(ta - tb if op == "sub" else ta + tb, ap.right_shift)
        y = np.clip(y + zy, qmin, qmax).astype(np.int8)
        params = (f"const qanas_add_params_t {p}ap = {{{za}, {zb}, {ap.a_multiplier}, "
                  f"{ap.b_multiplier}, {ap.right_shift}, {int(ap.subtract)}, {zy}, {qmin}, "
                  f"{qmax}}};")
        call = f"qanas_add_s8({count}, {p}a, {p}b, {b_channels}, &{p}ap, {p}output)"
    return KernelCase(name, call, {"a": a, "b": b}, y, structs=[params])


_C_TYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t",
            np.dtype(np.int32): "int32_t"}


def _c_array(name: str, a: np.ndarray) -> str:
    a = np.ascontiguousarray(a).reshape(-1)
    ctype = _C_TYPES[a.dtype]
    body = ",".join(str(int(v)) for v in a)
    return (f"static const {ctype} {name}[{max(a.size, 1)}] __attribute__((aligned(16))) = "
            f"{{{body}}};")


def render_driver(cases: list[KernelCase], firmware: bool, dump: bool = True) -> str:
    """The C driver running `cases` (see the module docstring for its output)."""
    lines = ["/* Kernel-library test driver, generated by tests/support/kernel_library_util.py. */",
             "#include <stdint.h>", "#include <stdio.h>", "#include <string.h>",
             '#include "qanas_kernels.h"', '#include "qanas_kernels_s4.h"']
    if firmware:
        lines += ['#include "port.h"',
                  "static void out_text(const char *s) { qanas_port_write(s, strlen(s)); }",
                  "static uint64_t ticks(void) { return qanas_port_ticks(); }"]
    else:
        lines += ["static void out_text(const char *s) { fputs(s, stdout); }",
                  "static uint64_t ticks(void) { return 0; }"]
    lines += ["static const char kHex[] = \"0123456789abcdef\";",
              "static void out_uint(uint64_t v) { char b[24]; int i = 23; b[i] = 0;",
              "  do { b[--i] = (char)('0' + (int)(v % 10u)); v /= 10u; } while (v != 0u);",
              "  out_text(b + i); }",
              "static void report(int index, int status, uint64_t t, const int8_t *o, int n,",
              "                   int dump) {",
              "  uint32_t h = 2166136261u; char line[80];",
              "  for (int i = 0; i < n; ++i) { h = (h ^ (uint8_t)o[i]) * 16777619u; }",
              "  out_text(\"@K \"); out_uint((uint64_t)index); out_text(\" \");",
              "  out_uint((uint64_t)status); out_text(\" \"); out_uint(t); out_text(\" \");",
              "  out_uint(h); out_text(\"\\n\");",
              "  for (int i = 0; dump && i < n; i += 32) { int k = 0;",
              "    for (int j = i; j < n && j < i + 32; ++j) {",
              "      line[k++] = kHex[((uint8_t)o[j]) >> 4]; line[k++] = kHex[o[j] & 15]; }",
              "    line[k++] = '\\n'; line[k] = 0; out_text(\"@D \"); out_text(line); } }"]
    body = []
    for i, case in enumerate(cases):
        p = f"c{i}_"
        for name, arr in case.arrays.items():
            lines.append(_c_array(p + name, arr))
        lines.append(f"static int8_t {p}output[{case.expected.size}] __attribute__((aligned(16)));")
        if case.scratch:
            lines.append(f"static int8_t {p}scratch[{case.scratch}];")
        decls = " ".join(s.replace("{p}", p) for s in case.structs)
        body.append(f"  {{ {decls}")
        call = case.call.replace("{p}", p)
        body.append(f"    const uint64_t t0 = ticks(); const int s = (int){call};")
        body.append(f"    const uint64_t t1 = ticks(); report({i}, s, t1 - t0, {p}output, "
                    f"{case.expected.size}, {int(dump)}); }}")
    if firmware:
        lines += ["int main(void) {", "  qanas_port_init();"]
    else:
        lines += ["int main(void) {"]
    lines += ["  out_text(\"@ISA \"); out_text(qanas_kernels_isa()); out_text(\"\\n\");",
              *body, "  out_text(\"@END\\n\");", "  return 0;", "}", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class CaseResult:
    """What the driver printed for one case."""

    status: int
    ticks: int
    fnv: int
    output: np.ndarray | None


def parse_driver_output(text: str, cases: list[KernelCase]) -> tuple[str, list[CaseResult]]:
    """The ISA name and one `CaseResult` per case from the driver's stdout."""
    isa, results, current, hexes = None, [], None, []

    def close():
        if current is not None:
            raw = bytes.fromhex("".join(hexes)) if hexes else None
            out = None if raw is None else np.frombuffer(raw, np.int8)
            results.append(CaseResult(*current, out))

    for line in text.splitlines():
        if line.startswith("@ISA "):
            isa = line.split()[1]
        elif line.startswith("@K "):
            close()
            _, _, status, t, h = line.split()
            current, hexes = (int(status), int(t), int(h)), []
        elif line.startswith("@D "):
            hexes.append(line.split()[1])
    close()
    if isa is None or len(results) != len(cases) or "@END" not in text:
        raise RuntimeError(f"the kernel driver did not finish ({len(results)} of "
                           f"{len(cases)} cases):\n{text[-3000:]}")
    return isa, results


def fnv1a32(a: np.ndarray) -> int:
    """The driver's FNV-1a hash of an int8 array's bytes."""
    h = 2166136261
    for byte in np.ascontiguousarray(a).astype(np.int8).view(np.uint8).reshape(-1).tolist():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-4000:]}")
    return proc.stdout


WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def build_native(cases: list[KernelCase], work: Path, cc: str = "gcc",
                 cflags: tuple[str, ...] = ("-O2", "-std=c99"),
                 ldflags: tuple[str, ...] = ()) -> Path:
    """Builds the driver with a native or Linux cross compiler; returns the executable."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "driver.c").write_text(render_driver(cases, firmware=False))
    exe = work / "driver"
    _run([cc, *cflags, *WARNINGS, f"-I{KERNELS_DIR}", f"-I{C_INCLUDE}", str(work / "driver.c"),
          *[str(KERNELS_DIR / s) for s in ALL_KERNEL_SOURCES], *ldflags, "-o", str(exe)])
    return exe


def build_sanitized(cases: list[KernelCase], work: Path) -> Path:
    """The host driver under AddressSanitizer and UBSan (-O1, the host's AVX2 path where
    the CPU has it): any read or write outside an array aborts it."""
    flags = ["-O1", "-g", "-std=c99", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all", *(["-mavx2"] if host_has_avx2() else [])]
    return build_native(cases, work, cflags=tuple(flags),
                        ldflags=("-fsanitize=address,undefined",))


def build_firmware(cases: list[KernelCase], work: Path, target_name: str,
                   extra_cflags: tuple[str, ...] = (), cpu: str | None = None,
                   dump: bool = True) -> Path:
    """Builds the driver as a bare-metal ELF for a QEMU Cortex-M target (qemu-mps port).

    ``cpu`` replaces the target's ``-mcpu`` (with soft float), e.g. ``cortex-m3`` to build
    the portable fallback that still runs on the M4 machine.
    """
    from runtime.firmware import COMMON_PORT, PORTS_DIR, render_linker_script
    from targets import get_target

    target = get_target(target_name)
    work.mkdir(parents=True, exist_ok=True)
    (work / "driver.c").write_text(render_driver(cases, firmware=True, dump=dump))
    (work / "link.ld").write_text(render_linker_script(target))
    cflags, ldflags = list(target.toolchain.cflags), list(target.toolchain.ldflags)
    if cpu is not None:
        def swap(flags):
            out = [f for f in flags if not f.startswith(("-mcpu=", "-mfpu=", "-mfloat-abi="))]
            return [f"-mcpu={cpu}", "-mfloat-abi=soft", *out]
        cflags, ldflags = swap(cflags), swap(ldflags)
    defines = [f"-DQANAS_PORT_CLOCK_HZ={target.clock_hz}u"]
    if target.cpu == "cortex-m7":
        defines.append("-DQANAS_PORT_CORTEX_M7")
    sources = [COMMON_PORT / n for n in ("startup.S", "vectors.c", "stack.c", "semihosting.c")]
    sources += [PORTS_DIR / target.port / "port.c", work / "driver.c"]
    sources += [KERNELS_DIR / s for s in ALL_KERNEL_SOURCES]
    elf = work / "driver.elf"
    _run([target.toolchain.cc, *cflags, *extra_cflags, *WARNINGS, *defines, f"-I{COMMON_PORT}",
          f"-I{KERNELS_DIR}", f"-I{C_INCLUDE}", *ldflags, "-T", str(work / "link.ld"),
          *[str(s) for s in sources], "-lc", "-lgcc", "-o", str(elf)])
    return elf


def run_firmware(elf: Path, target_name: str, timeout: float = 600) -> str:
    """Runs a driver ELF in QEMU with ``-icount shift=0``; returns its console output."""
    from runtime.runners.qemu import qemu_command
    from targets import get_target

    return _run(qemu_command(get_target(target_name), elf), timeout=timeout)


def host_has_avx2() -> bool:
    """This machine's CPU has AVX2 (the host build's -mavx2 path can run)."""
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        return False


def run_aarch64(cases: list[KernelCase], work: Path) -> str:
    """The driver built for aarch64 (the NEON path) and run under qemu-aarch64: its stdout."""
    exe = build_native(cases, work, cc="aarch64-linux-gnu-gcc", ldflags=("-static",))
    return _run(["qemu-aarch64", str(exe)])


def run_cortex_m(cases: list[KernelCase], work: Path, target_name: str,
                 cpu: str | None = None, dump: bool = True,
                 extra_cflags: tuple[str, ...] = ()) -> str:
    """The driver built for a QEMU Cortex-M target (`build_firmware`) and run: its output."""
    elf = build_firmware(cases, work, target_name, extra_cflags=extra_cflags, cpu=cpu,
                         dump=dump)
    return run_firmware(elf, target_name)


def ticks_to_instructions(ticks: int, target_name: str) -> float:
    """SysTick ticks → instructions (one instruction per ns with ``-icount shift=0``)."""
    from targets import get_target

    return ticks * 1e9 / get_target(target_name).clock_hz


def check_results(cases: list[KernelCase], results: list[CaseResult]) -> list[str]:
    """Names of the cases whose status or output differs from the NumPy reference."""
    bad = []
    for case, r in zip(cases, results, strict=True):
        want = case.expected.reshape(-1)
        if r.status != 0 or r.fnv != fnv1a32(want) or (
                r.output is not None and not np.array_equal(r.output, want)):
            bad.append(case.name)
    return bad


ISA_PATHS = [
    "host", "portable", "avx2",
    "sanitizers",  # AddressSanitizer + UBSan: no access outside an array, no overflow
    pytest.param("aarch64", marks=pytest.mark.toolchain),
    pytest.param("cortex-m4", marks=pytest.mark.toolchain),   # DSP
    pytest.param("cortex-m55", marks=pytest.mark.toolchain),  # Helium
    pytest.param("cortex-m3", marks=pytest.mark.toolchain),   # no DSP: portable C
]
"""The paths `driver_output` builds, as pytest parameters (the cross-built ones marked
``toolchain``)."""


def driver_output(path: str, cases: list[KernelCase], work: Path,
                  cortex_m_cflags: tuple[str, ...] = ()) -> tuple[str, str]:
    """(stdout, expected ISA) of the driver built for instruction-set path ``path`` and run:
    ``host`` (the host's default flags), ``portable``, ``avx2``, ``sanitizers``,
    ``aarch64`` (NEON under qemu-aarch64), ``cortex-m4`` (DSP), ``cortex-m55`` (Helium) or
    ``cortex-m3`` (portable C on the M4 machine). ``cortex_m_cflags`` are added to a
    Cortex-M build. Skips when the tools or AVX2 are missing."""
    if path.startswith("cortex-m"):
        require_tools("arm-none-eabi-gcc", "qemu-system-arm")
        target, cpu = ("cortex-m4", "cortex-m3") if path == "cortex-m3" else (path, None)
        out = run_cortex_m(cases, work, target, cpu, extra_cflags=cortex_m_cflags)
        return out, isa_for_cpu(path)
    if path == "aarch64":
        require_tools("aarch64-linux-gnu-gcc", "qemu-aarch64")
        return run_aarch64(cases, work), isa_for_cpu("native", aarch64=True)
    if path == "avx2" and not host_has_avx2():
        pytest.skip("this CPU has no AVX2")
    flags = {"portable": ("-DQANAS_KERNELS_PORTABLE",), "avx2": ("-mavx2",)}.get(path, ())
    exe = (build_sanitized(cases, work) if path == "sanitizers"
           else build_native(cases, work, cflags=("-O2", "-std=c99", *flags)))
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return out, path if path in flags else re.search(r"@ISA (\w+)", out).group(1)
