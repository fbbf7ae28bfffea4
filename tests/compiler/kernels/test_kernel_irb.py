"""The fused inverted residual (qanas_inverted_residual_s8) against the NumPy reference.

A grid of blocks (tests/support/kernel_irb_util.py): depthwise kernel 3/5/7/9, stride 1/2,
dilation 1/2, with and without expand conv (grouped too), with and without residual (X
rescaled or not), "same" and asymmetric padding, odd sizes, rows of several 8-pixel
chunks, non-zero zero points, three run in place; and blocks whose expand and/or project
weights are int4 (residual, stride 2, grouped, no expansion, in place). Each ISA path builds one driver holding every case: host (default and forced
portable C), AVX2, NEON (aarch64 under qemu-aarch64), DSP (cortex-m4, cortex-m7), Helium
(cortex-m55) and the portable fallback of a core without DSP (cortex-m3). Every case also
checks that the C scratch size equals `compiler.kernels.irb.scratch_bytes` and that the
kernel writes nothing past it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.kernels import irb, isa_for_cpu, packing
from tests.support.kernel_irb_util import irb_case, packed_case, qdq_block
from tests.support.kernel_library_util import (
    KernelCase,
    build_native,
    build_sanitized,
    check_results,
    host_has_avx2,
    parse_driver_output,
    run_aarch64,
    run_cortex_m,
)

SEED = 20261


def irb_cases(seed: int = SEED, isa: str = "portable") -> list[KernelCase]:
    """The seeded blocks every ISA build runs, 1x1 weights packed for ``isa``."""
    rng = np.random.default_rng(seed)
    grid = [
        ("k3s1_res", dict(h=7, w=9, cin=8, expanded=24, cout=8, residual=True)),
        ("k3s1_res_rescale", dict(h=6, w=5, cin=6, expanded=20, cout=6, residual=True,
                                  rescale=True)),
        ("k3s2", dict(h=9, w=7, cin=5, expanded=18, cout=7, stride=2)),
        ("k3s2_tf_same", dict(h=8, w=10, cin=4, expanded=16, cout=6, stride=2,
                              pads=(0, 0, 1, 1))),
        ("k3s1_d2_res", dict(h=9, w=8, cin=8, expanded=16, cout=8, dilation=2,
                             residual=True)),
        ("k3s2_d2", dict(h=11, w=9, cin=3, expanded=12, cout=5, stride=2, dilation=2)),
        ("k5s1_res", dict(h=7, w=6, cin=4, expanded=24, cout=4, k=5, residual=True,
                          rescale=True)),
        ("k5s2", dict(h=10, w=9, cin=6, expanded=13, cout=9, k=5, stride=2)),
        ("k5s1_d2", dict(h=12, w=11, cin=5, expanded=10, cout=3, k=5, dilation=2)),
        ("k7s1_res", dict(h=9, w=8, cin=8, expanded=16, cout=8, k=7, residual=True)),
        ("k7s2", dict(h=9, w=11, cin=3, expanded=9, cout=6, k=7, stride=2)),
        ("k7s2_d2", dict(h=15, w=14, cin=4, expanded=8, cout=4, k=7, stride=2, dilation=2)),
        ("k9s1_big_kernel", dict(h=5, w=6, cin=3, expanded=8, cout=4, k=9)),
        ("noexp_k3s1_res", dict(h=7, w=7, cin=16, expanded=None, cout=16, residual=True)),
        ("noexp_k3s2", dict(h=9, w=8, cin=13, expanded=None, cout=8, stride=2)),
        ("noexp_k5s1", dict(h=6, w=9, cin=7, expanded=None, cout=5, k=5)),
        ("grouped_expand", dict(h=6, w=7, cin=8, expanded=24, cout=8, expand_groups=2,
                                project_groups=4, residual=True)),
        ("wide_channels", dict(h=5, w=6, cin=24, expanded=144, cout=32, stride=2)),
        ("one_row", dict(h=1, w=5, cin=4, expanded=12, cout=4, residual=True)),
        ("in_place_res", dict(h=8, w=7, cin=12, expanded=36, cout=12, residual=True,
                              in_place=True)),
        ("in_place_k5_d2", dict(h=11, w=9, cin=8, expanded=16, cout=8, k=5, dilation=2,
                                residual=True, rescale=True, in_place=True)),
        ("long_rows_in_place", dict(h=4, w=21, cin=8, expanded=16, cout=8, residual=True,
                                    rescale=True, in_place=True)),
        ("long_rows_s2", dict(h=5, w=35, cin=5, expanded=10, cout=6, k=5, stride=2)),
        # int4 expand and/or project weights (the int4 convolutions inside the block)
        ("int4_k3s1_res", dict(h=7, w=9, cin=8, expanded=24, cout=8, residual=True,
                               int4=("expand", "project"))),
        ("int4_k3s2", dict(h=9, w=11, cin=16, expanded=48, cout=12, stride=2,
                           int4=("expand", "project"))),
        ("int4_project_k5s1_res", dict(h=6, w=10, cin=6, expanded=20, cout=6, k=5,
                                       residual=True, rescale=True, int4=("project",))),
        ("int4_expand_k3s2", dict(h=8, w=7, cin=5, expanded=18, cout=7, stride=2,
                                  int4=("expand",))),
        ("int4_grouped", dict(h=6, w=7, cin=8, expanded=24, cout=8, expand_groups=2,
                              project_groups=4, residual=True, int4=("expand", "project"))),
        ("int4_noexp_s2", dict(h=9, w=8, cin=40, expanded=None, cout=24, stride=2,
                               int4=("project",))),
        ("int4_wide_in_place", dict(h=4, w=21, cin=24, expanded=144, cout=24, residual=True,
                                    in_place=True, int4=("expand", "project"))),
    ]
    return [irb_case(name, rng, isa=isa, **spec) for name, spec in grid]


def _assert_exact(text: str, cases: list[KernelCase], isa: str) -> None:
    got_isa, results = parse_driver_output(text, cases)
    assert got_isa == isa
    statuses = {c.name: r.status for c, r in zip(cases, results, strict=True) if r.status}
    assert statuses == {}, "98: scratch size differs from Python's, 97: kernel error, " \
                           "96: wrote past the scratch"
    assert check_results(cases, results) == []


@pytest.mark.parametrize("flags,isa", [
    (("-O2", "-std=c99"), None),
    (("-O2", "-std=c99", "-DQANAS_KERNELS_PORTABLE"), "portable"),
    (("-O2", "-std=c99", "-mavx2"), "avx2"),
])
def test_host_bit_exact(tmp_path: Path, flags, isa):
    """Host builds (default path, forced portable C, AVX2) equal the reference."""
    if isa == "avx2" and not host_has_avx2():
        pytest.skip("this CPU has no AVX2")
    cases = irb_cases()
    exe = build_native(cases, tmp_path, cflags=flags)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _assert_exact(out, cases, isa or re.search(r"@ISA (\w+)", out).group(1))


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


def test_host_sanitizers(tmp_path: Path):
    """AddressSanitizer and UBSan find no read or write outside any array (the scratch
    canary only sees writes past the scratch), on the host's vector path."""
    cases = irb_cases()
    exe = build_sanitized(cases, tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _assert_exact(out, cases, re.search(r"@ISA (\w+)", out).group(1))


@pytest.mark.toolchain
def test_aarch64_neon_bit_exact(tmp_path: Path):
    """The NEON path (qemu-aarch64) equals the reference."""
    _require("aarch64-linux-gnu-gcc", "qemu-aarch64")
    cases = irb_cases()
    _assert_exact(run_aarch64(cases, tmp_path), cases, isa_for_cpu("native", aarch64=True))


@pytest.mark.toolchain
@pytest.mark.parametrize("target,cpu", [
    ("cortex-m4", None),         # DSP
    ("cortex-m7", None),         # DSP
    ("cortex-m55", None),        # Helium
    ("cortex-m4", "cortex-m3"),  # no DSP: portable C
])
def test_cortex_m_bit_exact(tmp_path: Path, target: str, cpu: str | None):
    """Each Cortex-M path, under qemu-system-arm, equals the reference."""
    _require("arm-none-eabi-gcc", "qemu-system-arm")
    isa = isa_for_cpu(cpu or target)
    cases = irb_cases(isa=isa)
    _assert_exact(run_cortex_m(cases, tmp_path, target, cpu), cases, isa)


def test_matches_reference_interpreter_on_qdq_onnx(tmp_path: Path):
    """Blocks written as QDQ ONNX (as exporters write them, the residual read directly or
    through the project's shared quantizer) and packed from their scales the way the
    reference derives each factor: the kernel's output is the reference interpreter's
    (`compiler.reference.run_int8_reference`), byte for byte."""
    from compiler.reference import run_int8_reference

    rng = np.random.default_rng(SEED + 1)
    specs = [dict(h=6, w=9, cin=8, expanded=24, cout=8, residual="shared"),
             dict(h=7, w=5, cin=6, expanded=18, cout=6, residual="direct"),
             dict(h=9, w=10, cin=4, expanded=16, cout=8, k=5, stride=2),
             dict(h=6, w=6, cin=12, expanded=None, cout=12, residual="shared")]
    cases = []
    for i, spec in enumerate(specs):
        model, packed, x = qdq_block(rng, **spec)
        y = run_int8_reference(model, {"x": x})["y"]
        assert len(np.unique(y)) > 8  # not one clamp
        cases.append(packed_case(f"qdq{i}_{spec.get('residual', 'none')}", packed, x, y))
    exe = build_native(cases, tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _assert_exact(out, cases, re.search(r"@ISA (\w+)", out).group(1))


def test_scratch_formula():
    """The ring of (k - 1) d + 1 padded rows, 8 pixels of depthwise output (and of project
    output with a residual); far below the expanded tensor for a squeezenas-small block."""
    g = irb.IRBGeometry(32, 64, 16, 96, 32, 64, 16, kernel=3, pad_top=1, pad_left=1,
                        residual=True)
    assert g.ring_rows == 3 and g.pad_right == 1
    assert irb.scratch_bytes(g) == 3 * 66 * 96 + 8 * 96 + 8 * 16
    assert irb.scratch_bytes(g) < g.expanded_bytes / 9
    s2 = irb.IRBGeometry(32, 64, 16, 96, 16, 32, 24, kernel=5, stride=2, dilation=2,
                         pad_top=4, pad_left=4)
    assert s2.ring_rows == 9 and s2.pad_right == 31 * 2 + 9 - 4 - 64
    assert irb.scratch_bytes(s2) == 9 * (4 + 64 + 3) * 96 + 8 * 96
    narrow = irb.IRBGeometry(4, 5, 4, 8, 4, 5, 4, kernel=3, pad_top=1, pad_left=1,
                             residual=True)
    assert irb.scratch_bytes(narrow) == 3 * 7 * 8 + 5 * 8 + 5 * 4


def test_geometry_and_packing_errors():
    """Inconsistent blocks are refused with a message naming the problem."""
    with pytest.raises(ValueError, match="keeps its shape"):
        irb.IRBGeometry(8, 8, 4, 8, 4, 4, 4, kernel=3, stride=2, residual=True)
    with pytest.raises(ValueError, match="maximum 16"):
        irb.IRBGeometry(8, 8, 4, 8, 8, 8, 4, kernel=17)
    rng = np.random.default_rng(0)
    case_rq = packing.requant(0.01, 8, 0)
    dw = irb.Stage(rng.integers(-5, 5, (8, 1, 3, 3)).astype(np.int8), None, case_rq)
    pw = irb.Stage(rng.integers(-5, 5, (4, 8, 1, 1)).astype(np.int8), None,
                   packing.requant(0.01, 4, 3))
    g = irb.IRBGeometry(8, 8, 4, 8, 8, 8, 4, kernel=3, pad_top=1, pad_left=1, residual=True)
    expand = irb.Stage(rng.integers(-5, 5, (8, 4, 1, 1)).astype(np.int8), None, case_rq)
    with pytest.raises(ValueError, match="exactly when"):
        irb.pack_inverted_residual(g, 0, expand, dw, pw)
    with pytest.raises(ValueError, match="zero points"):
        irb.pack_inverted_residual(g, 0, expand, dw, pw,
                                   packing.add_params(0.1, 0, 0.1, 5, 0.1, 0))
    add = packing.add_params(0.1, 0, 0.1, 3, 0.1, 0)
    with pytest.raises(ValueError, match="expanded_c == in_c"):
        irb.pack_inverted_residual(g, 0, None, dw, pw, add)
    with pytest.raises(ValueError, match=r"project weights have shape \(4, 8, 1, 1\), "
                                         r"expected \(4, 4, 1, 1\)"):
        irb.pack_inverted_residual(g, 0, expand, dw,
                                   irb.Stage(pw.weights, None, pw.requant, groups=2), add)


def test_c_definition_compiles(tmp_path: Path):
    """`PackedIRB.c_definition` is valid C for a weights file (-Wall -Wextra -Werror)."""
    from compiler.kernels import KERNELS_DIR

    case = irb_cases()[1]  # residual with a rescale: every field set
    assert "rescale_mult" in case.arrays
    rng = np.random.default_rng(3)
    packed = irb.pack_inverted_residual(
        irb.IRBGeometry(4, 4, 4, 8, 4, 4, 4, kernel=3, pad_top=1, pad_left=1, residual=True),
        1, irb.Stage(rng.integers(-5, 5, (8, 4, 1, 1)).astype(np.int8), None,
                     packing.requant(0.01, 8, -3)),
        irb.Stage(rng.integers(-5, 5, (8, 1, 3, 3)).astype(np.int8), None,
                  packing.requant(0.01, 8, 2)),
        irb.Stage(rng.integers(-5, 5, (4, 8, 1, 1)).astype(np.int8), None,
                  packing.requant(0.01, 4, 7)),
        packing.add_params(0.1, 4, 0.1, 7, 0.2, 0), packing.requant(0.5, 1, 4))
    source = tmp_path / "weights.c"
    source.write_text('#include "qanas_kernels.h"\n' + packed.c_definition("irb0"))
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS_DIR}",
                    f"-I{KERNELS_DIR.parent / 'include'}", "-c", str(source), "-o",
                    str(tmp_path / "weights.o")], check=True)
