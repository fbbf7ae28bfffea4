"""Fused inverted residuals run as ``qanas_inverted_residual_s8`` (`compiler.passes.offload_fused_blocks`).

Single QDQ blocks (`tests.support.kernel_irb_util.qdq_block`: residual direct, through a shared
quantizer, or none; with and without expansion; 3×3 stride 1 and 5×5 stride 2) compiled in
``size`` mode: the block is one library call, its constants read back from the graph equal
those packed from the block's scales the way the reference derives them, its scratch is
`irb.scratch_bytes` in the arena (plan-only plans the same arena), and the C output equals
the NumPy reference byte for byte. A block the kernel cannot take (a 17×17 depthwise)
stays the TVM row-band kernel, still exact. A cortex-m55 project (Helium-packed 1×1
weights) is exact in QEMU and in its host reference build.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from compiler.driver import compile_model
from compiler.kernels import irb
from compiler.kernels.calls import library_call
from compiler.pipeline import CompileOptions, lower_model
from compiler.plan_only import plan_model_memory
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.kernel_irb_util import qdq_block
from tests.support.tools import require_tools

FUNCTION = "qanas_inverted_residual_s8"

BLOCKS = {
    "res_direct": dict(h=6, w=7, cin=4, expanded=12, cout=4, residual="direct"),
    "res_shared": dict(h=6, w=9, cin=4, expanded=8, cout=4, residual="shared"),
    "noexp_res": dict(h=5, w=6, cin=6, expanded=None, cout=6, residual="direct"),
    "k5s2": dict(h=9, w=11, cin=3, expanded=10, cout=5, k=5, stride=2),
    "noexp_k3s2": dict(h=8, w=8, cin=5, expanded=None, cout=7, stride=2),
}


def _block(name: str, isa: str):
    model, packed, x = qdq_block(np.random.default_rng(sorted(BLOCKS).index(name)),
                                 isa=isa, **BLOCKS[name])
    return model, packed, {"x": x}


def _assert_exact(outputs, reference):
    for name, ref in reference.items():
        got = np.asarray(outputs[name]).reshape(ref.shape)
        assert np.array_equal(got, ref), f"{name}: {(got != ref).sum()} of {ref.size} differ"


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_is_one_library_call_packed_as_from_its_scales(name):
    """The step's constants (read back from the graph) are the arrays packed from the
    block's scales, its tag the geometry, its scratch `irb.scratch_bytes`."""
    model, packed, _ = _block(name, "avx2")
    lowered = lower_model(model, CompileOptions(kernel_isa="avx2"), measure_unfused=False)
    steps = [c for c in lowered.plan.calls if c.library == FUNCTION]
    assert len(steps) == 1
    call = library_call(lowered.fused[steps[0].kernel])
    assert call.params["scratch_bytes"] == irb.scratch_bytes(packed.geometry)
    got = [np.asarray(lowered.plan.constants[a]).reshape(-1) for a in steps[0].args[1:-1]]
    assert len(got) == len(packed.arrays())
    for g, (suffix, w) in zip(got, packed.arrays().items(), strict=True):
        w = np.asarray(w).reshape(-1)
        assert g.dtype == w.dtype, suffix
        if suffix.endswith("_mult"):  # the graph's own multipliers (the lowering's float
            # derivation) may differ from packing.requant's in the last bits; the C runs
            # the graph's, and is checked bit-exact against the reference below
            assert np.allclose(g, w, rtol=2.0**-24, atol=0), suffix
        else:
            assert np.array_equal(g, w), suffix
    tag = json.loads(call.to_json())["params"]["irb"]
    g = packed.geometry
    assert (tag["in_h"], tag["in_w"], tag["in_c"], tag["expanded_c"], tag["out_h"],
            tag["out_w"], tag["out_c"], tag["kernel"], tag["stride"], tag["pad_top"],
            tag["pad_left"], tag["residual"]) == (
        g.in_h, g.in_w, g.in_c, g.expanded_c, g.out_h, g.out_w, g.out_c, g.kernel, g.stride,
        g.pad_top, g.pad_left, int(g.residual))
    assert tag["input_zero_point"] == packed.input_zero_point or not (
        g.residual or packed.expand is None)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_bit_exact_on_the_host_and_arena_equals_plan_only(name, tmp_path):
    require_tools("gcc", "make")
    model, packed, feeds = _block(name, "avx2")
    result = compile_model(model, "host", tmp_path / "p")
    steps = [c for c in result.plan.calls if c.library == FUNCTION]
    assert len(steps) == 1
    scratch = result.plan.buffers[steps[0].workspace].size
    assert scratch == -(-irb.scratch_bytes(packed.geometry) // 16) * 16
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs,
                  run_int8_reference(model, feeds))
    assert plan_model_memory(model, "host", CompileOptions()).arena_bytes == result.arena_bytes


def test_block_the_kernel_cannot_take_stays_tvm(tmp_path, monkeypatch):
    """A 17x17 depthwise (the fused kernel takes up to 16) stays the TVM row-band kernel."""
    require_tools("gcc", "make")
    with monkeypatch.context() as m:
        m.setattr(irb, "MAX_KERNEL", 17)  # qdq_block packs its own copy; the compiler must not
        model, _, x = qdq_block(np.random.default_rng(5), h=4, w=5, cin=3, expanded=6, cout=3,
                                k=17, residual="direct")
    feeds = {"x": x}
    result = compile_model(model, "host", tmp_path / "p")
    assert not any(c.library == FUNCTION for c in result.plan.calls)
    assert any(c.kernel.startswith("irb") for c in result.plan.calls)
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs,
                  run_int8_reference(model, feeds))


@pytest.mark.toolchain
def test_helium_block_on_qemu_and_its_host_reference(tmp_path):
    require_tools("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.qemu import QemuRunner
    from targets import get_target

    model, _, feeds = _block("res_shared", "mve")
    reference = run_int8_reference(model, feeds)
    result = compile_model(model, "cortex-m55", tmp_path / "p")
    assert any(c.library == FUNCTION for c in result.plan.calls)
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)
    _assert_exact(QemuRunner(get_target("cortex-m55")).run(result.out_dir, feeds).outputs,
                  reference)
