"""FuseInvertedResiduals and the row-band schedule: one kernel per inverted residual.

Tiny Brevitas inverted residuals (QCDQ ONNX) cover what the search spaces use: stride 1
and 2, kernels 3 and 5, dilation 2, grouped 1x1 convs, expansion 1, no expand conv, a
residual add read directly or through a quantizer shared by both operands. Each is
checked for the block the pass finds, then compiled for the host with and without the
fusion: the outputs are bit-exact with each other and with the NumPy integer reference,
the fused kernel keeps no buffer of the expanded tensor's size and its expanded rows are
a ring buffer, and `extra_macs` counts what bands without the ring would compute twice.
The min, seed and max subnets of every space (demo size, ``slow``) are checked the same
way on the host and in QEMU on cortex-m4 and cortex-m55.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compiler import techniques
from compiler.driver import compile_model
from compiler.frontend import load_model
from compiler.passes import fused_blocks, lower_to_integer
from compiler.passes.fuse_inverted_residual import (
    extra_macs,
    find_inverted_residuals,
    fuse_inverted_residuals,
)
from compiler.reference import run_int8_reference
from qanas.space import list_spaces
from runtime.runners import get_runner
from runtime.runners.firmware_base import HostReferenceRunner
from runtime.runners.qemu import QemuRunner
from tests.support.firmware_util import assert_bit_exact, export_subnet
from tests.support.qdq_models import _export_qcdq
from tests.support.space_cases import compiled_space_param
from tests.support.tools import require_tools


class _InvertedResidual(nn.Module):
    """QuantIdentity → [1x1 expand, ReLU6] → kxk depthwise, ReLU → 1x1 project (+ residual)."""

    def __init__(self, ch: int, expand: int, kernel: int, stride: int, dilation: int,
                 groups: int, expand_conv: bool, residual: str):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int8WeightPerChannelFloat, Int32Bias

        def conv(cin, cout, k, **kw):
            return qnn.QuantConv2d(cin, cout, k, weight_quant=Int8WeightPerChannelFloat,
                                   bias_quant=Int32Bias, return_quant_tensor=True, **kw)

        hidden = ch * expand
        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.expand = nn.Sequential(conv(ch, hidden, 1, groups=groups),
                                    qnn.QuantReLU(max_val=6.0, return_quant_tensor=True)
                                    ) if expand_conv else None
        pad = dilation * (kernel - 1) // 2
        self.dw = conv(hidden, hidden, kernel, stride=stride, padding=pad, dilation=dilation,
                       groups=hidden)
        self.relu = qnn.QuantReLU(return_quant_tensor=True)
        self.project = conv(hidden, ch, 1, groups=groups)
        self.residual = residual
        self.proj_q = qnn.QuantIdentity(return_quant_tensor=residual == "shared")
        self.sum_q = qnn.QuantIdentity(return_quant_tensor=False)

    def forward(self, x):
        x = self.inp(x)
        y = self.expand(x) if self.expand is not None else x
        y = self.proj_q(self.project(self.relu(self.dw(y))))
        if self.residual == "shared":  # one quantizer for both operands: x is rescaled
            return self.sum_q(y + self.proj_q(x))
        if self.residual == "direct":  # Add(DQ(y), DQ(x)), as the supernets export it
            return self.sum_q(y + getattr(x, "value", x))
        return y


#: name → (constructor arguments, the block label the pass must report)
CASES = {
    "k3s1_e4_direct": (dict(ch=8, expand=4, kernel=3, stride=1, dilation=1, groups=1,
                            expand_conv=True, residual="direct"), "k3s1e32_res"),
    "k3s2_e3_g2": (dict(ch=8, expand=3, kernel=3, stride=2, dilation=1, groups=2,
                        expand_conv=True, residual="none"), "k3s2e24"),
    "k5s1_e6_shared": (dict(ch=4, expand=6, kernel=5, stride=1, dilation=1, groups=1,
                            expand_conv=True, residual="shared"), "k5s1e24_res"),
    "k3s1d2_e1_g2": (dict(ch=8, expand=1, kernel=3, stride=1, dilation=2, groups=2,
                          expand_conv=True, residual="direct"), "k3s1d2e8_res"),
    "k3s1_no_expand": (dict(ch=8, expand=1, kernel=3, stride=1, dilation=1, groups=1,
                            expand_conv=False, residual="direct"), "k3s1e8_noexp_res"),
}
SIZE = (12, 10)


def export_case(name: str, directory: Path) -> Path:
    """The QCDQ ONNX of `CASES[name]` at ``1 x ch x 12 x 10``."""
    torch.manual_seed(0)
    kwargs, _ = CASES[name]
    net = _InvertedResidual(**kwargs)
    return _export_qcdq(net, (1, kwargs["ch"], *SIZE), directory / f"{name}.onnx", seed=0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("irb")
    return {name: export_case(name, directory) for name in CASES}


@pytest.mark.parametrize("name", CASES)
def test_finds_the_block(exported, name):
    lowered = lower_to_integer(load_model(exported[name]))
    blocks = find_inverted_residuals(lowered.mod["main"], lowered.mod)
    assert [b.label for b in blocks] == [CASES[name][1]]
    fused = lower_to_integer(load_model(exported[name]), fuse_inverted_residuals=True)
    names = fused_blocks(fused.mod)
    assert names == [f"irb0_{CASES[name][1]}"]
    assert names[0] in [gv.name_hint for gv in fused.mod.get_global_vars()]


def test_unfused_lowering_lists_no_block(exported):
    assert fused_blocks(lower_to_integer(load_model(exported["k3s1_e4_direct"])).mod) == []


def _run(model, directory: Path, inputs=None):
    # no memory technique runs: the model is compiled as lowered (fused or not) here;
    # library=False keeps every kernel TVM's, whose row-band schedule these tests check
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(techniques, "TECHNIQUES", {})
        result = compile_model(model, "host", directory, library=False)
    assert result.quantized and not result.float_kernels
    if inputs is None:
        rng = np.random.default_rng(0)
        inputs = {s["name"]: rng.integers(-128, 128, size=s["shape"]).astype(np.int8)
                  for s in result.io["inputs"]}
    return result, inputs, get_runner("host").run(directory, inputs).outputs


@pytest.mark.parametrize("name", CASES)
def test_fused_kernel_is_bit_exact_and_small(exported, name, tmp_path, caplog):
    require_tools("gcc", "make")
    caplog.set_level(logging.WARNING, logger="compiler.codegen.row_bands")
    onnx_path = exported[name]
    plain_model = lower_to_integer(load_model(onnx_path))
    (block,) = find_inverted_residuals(plain_model.mod["main"], plain_model.mod)
    plain, inputs, expected = _run(plain_model, tmp_path / "plain")
    fused_model = lower_to_integer(load_model(onnx_path), fuse_inverted_residuals=True)
    fused, _, outputs = _run(fused_model, tmp_path / "fused", inputs)
    reference = run_int8_reference(onnx_path, inputs)
    for key, ref in expected.items():
        np.testing.assert_array_equal(outputs[key], ref)
        np.testing.assert_array_equal(outputs[key], next(iter(reference.values())))

    kernel = next(k for k in fused.kernels if k.startswith("irb0_"))
    assert [c.kernel for c in fused.plan.calls] == [kernel]
    _, _, height, width = block.in_shape
    expanded_bytes = block.expanded * height * width
    source = fused.kernels[kernel].source
    arrays = [int(n) for n in re.findall(r"\w+\[(\d+)\];", source)]
    assert all(n < expanded_bytes for n in arrays), (arrays, expanded_bytes)
    assert fused.kernels[kernel].workspace_bytes < expanded_bytes
    assert fused.arena_bytes < plain.arena_bytes
    if block.has_expand:  # the expanded rows are a ring of (k - 1) * d + 1 rows
        ring = (block.kernel - 1) * block.dilation + 1
        assert re.search(rf"% {ring}\)", source), "expanded rows not in a ring buffer"
        assert "not rolled" not in caplog.text


#: Blocks over a one-column input, as fmas-mbv2's min subnet has at 64x64 (its last blocks
#: read 2x1 and 1x1 maps): name → (constructor arguments, input H x W).
ONE_COLUMN = {
    # two bands share two expanded rows: the ring (3 rows of 3 padded columns) once shared
    # its memory with the depthwise output row, which overwrote the shared rows
    "k3s1_2x1_ring": (dict(ch=8, expand=4, kernel=3, stride=1, dilation=1, groups=1,
                           expand_conv=True, residual="direct"), (2, 1)),
    # one band over one pixel, stride 2 (fmas-mbv2 min's last block)
    "k3s2_1x1": (dict(ch=8, expand=4, kernel=3, stride=2, dilation=1, groups=1,
                      expand_conv=True, residual="none"), (1, 1)),
}


@pytest.mark.parametrize("name", ONE_COLUMN)
def test_one_column_block_builds_and_is_bit_exact(name, tmp_path):
    """The fused kernel of a one-column block builds under -Werror (gcc's
    -Wmaybe-uninitialized on the one-element expand accumulator failed it) and computes the
    unfused numbers and the NumPy reference's (the ring's rows outlive their band)."""
    require_tools("gcc", "make")
    kwargs, size = ONE_COLUMN[name]
    torch.manual_seed(0)
    onnx_path = _export_qcdq(_InvertedResidual(**kwargs), (1, kwargs["ch"], *size),
                             tmp_path / f"{name}.onnx", seed=0)
    _, inputs, expected = _run(lower_to_integer(load_model(onnx_path)), tmp_path / "plain")
    fused_model = lower_to_integer(load_model(onnx_path), fuse_inverted_residuals=True)
    assert len(fused_blocks(fused_model.mod)) == 1
    _, _, outputs = _run(fused_model, tmp_path / "fused", inputs)
    reference = next(iter(run_int8_reference(onnx_path, inputs).values()))
    for key, ref in expected.items():
        np.testing.assert_array_equal(outputs[key], ref)
        np.testing.assert_array_equal(outputs[key], reference)


def test_ring_outlives_its_band(exported):
    """The ring's allocation stays outside the band loop when TVM places allocations.

    Allocated inside it, the ring is a new buffer every band in TIR's semantics, and
    ``StorageRewrite`` may give its memory to a buffer written later in the band (it gave
    it to the depthwise output row of `ONE_COLUMN`'s 2x1 block, corrupting the shared rows).
    """
    import tvm
    from tvm import relax, s_tir

    from compiler.codegen.row_bands import roll_expanded_rows, row_bands
    from compiler.pipeline import normalize_dataflow

    fused = lower_to_integer(load_model(exported["k3s1_e4_direct"]),
                             fuse_inverted_residuals=True)
    mod = relax.get_pipeline("zero")(normalize_dataflow(fused.mod))
    (name,) = fused_blocks(fused.mod)
    sch = s_tir.Schedule(tvm.IRModule({"main": mod[name]}))
    rows = row_bands(sch, name)
    assert rows.overlap > 0
    rolled = roll_expanded_rows(sch.mod["main"], rows)
    plan = s_tir.transform.PlanAndUpdateBufferAllocationLocation()
    root = plan(tvm.IRModule({"main": rolled}))["main"].body.block
    assert rows.buffer in [b.name for b in root.alloc_buffers]


def test_extra_macs_count_the_rows_bands_share(exported):
    lowered = lower_to_integer(load_model(exported["k3s1_e4_direct"]))
    (block,) = find_inverted_residuals(lowered.mod["main"], lowered.mod)
    _, c_in, height, width = block.in_shape
    per_row = width * block.expanded * c_in
    # without the ring, one-row bands of a stride-1 3x3 expand each input row three
    # times, except the first and last rows (twice: their other neighbour is padding)
    assert extra_macs(block, band_rows=1, rolled=False) == (3 * height - 2 - height) * per_row
    # one band of the whole height computes every row once; so does the ring
    assert extra_macs(block, band_rows=height, rolled=False) == 0
    assert extra_macs(block) == 0
    names = sorted(gv.name_hint for gv in lowered.mod.get_global_vars())
    model, where, extra = fuse_inverted_residuals(lowered)
    assert where == tuple(fused_blocks(model.mod)) and extra == extra_macs(block)
    # the fused function goes into a new module: the lowered one is left as it was
    assert sorted(gv.name_hint for gv in lowered.mod.get_global_vars()) == names
    assert not fused_blocks(lowered.mod) and set(where) <= {
        gv.name_hint for gv in model.mod.get_global_vars()}


def test_no_expand_block_recomputes_nothing(exported):
    lowered = lower_to_integer(load_model(exported["k3s1_no_expand"]))
    (block,) = find_inverted_residuals(lowered.mod["main"], lowered.mod)
    assert not block.has_expand and extra_macs(block) == 0


def _fused_cases():
    """Every space's seed (min for the two large SqueezeNAS spaces) and squeezenas-small's max.

    Every space's min subnet also runs fused (the default ``--optimise size``) on every
    emulated target in `tests/runtime/test_firmware_spaces.py`, and
    `tests/compiler/test_compile_spaces.py` checks fused subnets against onnxruntime, so this tier
    keeps the widest blocks."""
    heavy = {"squeezenas-large", "squeezenas-xlarge"}
    return [compiled_space_param(space, "min" if space in heavy else "seed")
            for space in list_spaces()] + [
        ("squeezenas-small", "max")]


@pytest.mark.slow
@pytest.mark.toolchain
@pytest.mark.parametrize(("space_name", "which"), _fused_cases())
def test_every_space_fused_bit_exact_on_host_and_qemu(space_name, which, tmp_path):
    """A subnet at demo size, fused: bit-exact with the unfused build, the NumPy reference,
    and in QEMU on cortex-m4 and cortex-m55 with the host build."""
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    onnx_path = export_subnet(space_name, which, tmp_path / "subnet.onnx")
    plain = lower_to_integer(load_model(onnx_path))
    fused = lower_to_integer(load_model(onnx_path), fuse_inverted_residuals=True)
    _, inputs, expected = _run(plain, tmp_path / "plain")
    result = compile_model(fused, "cortex-m4", tmp_path / "fused", optimise="speed")
    host = HostReferenceRunner().run(result.out_dir, inputs).outputs
    assert_bit_exact(host, expected)
    np.testing.assert_array_equal(next(iter(host.values())),
                                  next(iter(run_int8_reference(onnx_path, inputs).values())))
    for target in ("cortex-m4", "cortex-m55"):
        assert_bit_exact(QemuRunner(target).run(result.out_dir, inputs).outputs, host)


def test_ring_changes_no_buffer_size(exported):
    """Plan-only may skip the ring (``ring=False``): the kernel's scratch is the same."""
    import tvm
    from tvm import relax

    from compiler.codegen.kernels import workspace_requests
    from compiler.codegen.schedule import schedule_kernel
    from compiler.pipeline import normalize_dataflow

    fused_model = lower_to_integer(load_model(exported["k3s2_e3_g2"]),
                                   fuse_inverted_residuals=True)
    mod = relax.get_pipeline("zero")(normalize_dataflow(fused_model.mod))
    (name,) = fused_blocks(fused_model.mod)
    sources = {}
    for ring in (True, False):
        func = schedule_kernel(mod[name], name, ring=ring).with_attr("global_symbol", "k")
        with tvm.transform.PassContext(config={"tirx.disable_assert": True}):
            built = tvm.tirx.build(tvm.IRModule({"k": func}), target=tvm.target.Target("c"))
        sources[ring] = built.inspect_source()
    assert workspace_requests(sources[True]) == workspace_requests(sources[False])
    assert "% 3)" in sources[True] and "% 3)" not in sources[False]
