"""The default kernel schedule: structure on a tiny PrimFunc, scratch and numerics end to end.

The structural tests are TVM's Before/Expected form: a reduction followed by a two-step
integer epilogue becomes one loop nest whose accumulator spans one output row (or one
element when a row is too large).
The end-to-end tests compile small int8 models with and without the schedule and check
that the scheduled kernels need less (here: no) scratch and give identical outputs.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tvm
from tvm import s_tir
from tvm.script import tirx as T

from compiler.codegen import SCHEDULE_RULES, schedule_kernel
from compiler.codegen.schedule import ACCUMULATOR_BYTES, fuse_epilogues, inline_elementwise
from compiler.driver import compile_model
from runtime.runners import get_runner
from tests.support.onnx_models import conv_model, quantize_qdq
from tests.support.tools import require_tools


@T.prim_func(private=True, s_tir=True)
def matmul_requant(A: T.Buffer((4, 8), "int8"), W: T.Buffer((3, 8), "int8"),
                   C: T.Buffer((4, 3), "int8")):
    acc = T.sblock_alloc_buffer((4, 3), "int32")
    wide = T.sblock_alloc_buffer((4, 3), "int64")
    for i, j, k in T.grid(4, 3, 8):
        with T.sblock("matmul"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                acc[vi, vj] = 0
            acc[vi, vj] = acc[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", W[vj, vk])
    for i, j in T.grid(4, 3):
        with T.sblock("widen"):
            vi, vj = T.axis.remap("SS", [i, j])
            wide[vi, vj] = T.Cast("int64", acc[vi, vj]) * T.int64(3)
    for i, j in T.grid(4, 3):
        with T.sblock("narrow"):
            vi, vj = T.axis.remap("SS", [i, j])
            C[vi, vj] = T.Cast("int8", T.max(T.min(wide[vi, vj] >> T.int64(4), T.int64(127)),
                                              T.int64(-128)))


@T.prim_func(private=True, s_tir=True)
def matmul_requant_rows(A: T.Buffer((4, 8), "int8"), W: T.Buffer((3, 8), "int8"),
                        C: T.Buffer((4, 3), "int8")):
    acc = T.sblock_alloc_buffer((4, 3), "int32")
    for i in range(4):
        for j_init in range(3):
            with T.sblock("matmul_init"):
                vi, vj = T.axis.remap("SS", [i, j_init])
                T.reads()
                T.writes(acc[vi, vj])
                acc[vi, vj] = 0
        for k, j in T.grid(8, 3):
            with T.sblock("matmul_update"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                T.reads(acc[vi, vj], A[vi, vk], W[vj, vk])
                T.writes(acc[vi, vj])
                acc[vi, vj] = acc[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", W[vj, vk])
        for ax0 in range(3):
            with T.sblock("narrow"):
                vi, vj = T.axis.remap("SS", [i, ax0])
                T.reads(acc[vi, vj])
                T.writes(C[vi, vj])
                C[vi, vj] = T.Cast("int8", T.max(T.min(
                    T.Cast("int64", acc[vi, vj]) * T.int64(3) >> T.int64(4), T.int64(127)),
                    T.int64(-128)))


@T.prim_func(private=True, s_tir=True)
def matmul_requant_elements(A: T.Buffer((4, 8), "int8"), W: T.Buffer((3, 8), "int8"),
                             C: T.Buffer((4, 3), "int8")):
    acc = T.sblock_alloc_buffer((4, 3), "int32")
    for i, j in T.grid(4, 3):
        with T.sblock("matmul_init"):
            vi, vj = T.axis.remap("SS", [i, j])
            T.reads()
            T.writes(acc[vi, vj])
            acc[vi, vj] = 0
        for k in range(8):
            with T.sblock("matmul_update"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                T.reads(acc[vi, vj], A[vi, vk], W[vj, vk])
                T.writes(acc[vi, vj])
                acc[vi, vj] = acc[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", W[vj, vk])
        with T.sblock("narrow"):
            vi, vj = T.axis.remap("SS", [i, j])
            T.reads(acc[vi, vj])
            T.writes(C[vi, vj])
            C[vi, vj] = T.Cast("int8", T.max(T.min(
                T.Cast("int64", acc[vi, vj]) * T.int64(3) >> T.int64(4), T.int64(127)),
                T.int64(-128)))


@T.prim_func(private=True, s_tir=True)
def shared_accumulator(A: T.Buffer((4, 8), "int32"), B: T.Buffer((4,), "int32"),
                       C: T.Buffer((4,), "int32")):
    acc = T.sblock_alloc_buffer((4,), "int32")
    for i, k in T.grid(4, 8):
        with T.sblock("sum"):
            vi, vk = T.axis.remap("SR", [i, k])
            with T.init():
                acc[vi] = 0
            acc[vi] = acc[vi] + A[vi, vk]
    for i in range(4):
        with T.sblock("out_b"):
            vi = T.axis.remap("S", [i])
            B[vi] = acc[vi] + 1
    for i in range(4):
        with T.sblock("out_c"):
            vi = T.axis.remap("S", [i])
            C[vi] = acc[vi] * 2


@T.prim_func(private=True, s_tir=True)
def pointwise_conv(X: T.Buffer((4, 2, 3), "int8"), W: T.Buffer((5, 4), "int8"),
                   Y: T.Buffer((5, 2, 3), "int8")):
    acc = T.sblock_alloc_buffer((5, 2, 3), "int32")
    for f, y, x, c in T.grid(5, 2, 3, 4):
        with T.sblock("conv"):
            vf, vy, vx, vc = T.axis.remap("SSSR", [f, y, x, c])
            with T.init():
                acc[vf, vy, vx] = 0
            acc[vf, vy, vx] = acc[vf, vy, vx] + T.Cast("int32", X[vc, vy, vx]) * T.Cast(
                "int32", W[vf, vc])
    for f, y, x in T.grid(5, 2, 3):
        with T.sblock("narrow"):
            vf, vy, vx = T.axis.remap("SSS", [f, y, x])
            Y[vf, vy, vx] = T.Cast("int8", acc[vf, vy, vx] >> 8)


def test_reduction_epilogue_is_inlined_and_fused_per_row():
    after = schedule_kernel(matmul_requant, "matmul_requant")
    tvm.ir.assert_structural_equal(after, matmul_requant_rows)


def test_reduction_epilogue_is_fused_per_element_when_rows_are_too_large():
    sch = s_tir.Schedule(tvm.IRModule({"main": matmul_requant}))
    assert inline_elementwise(sch) == 1
    assert fuse_epilogues(sch, max_bytes=3 * 4 - 1) == 1
    tvm.ir.assert_structural_equal(sch.mod["main"], matmul_requant_elements)


@pytest.mark.parametrize(("max_bytes", "loops", "accumulator"), [
    (ACCUMULATOR_BYTES, ["f", "c", "y", "x"], "int32_t acc_ptr[6];"),  # one output plane
    (3 * 4, ["f", "y", "c", "x"], "int32_t acc_ptr[3];"),  # one output row
    (0, ["f", "y", "x", "c"], "int32_t acc_ptr[1];"),  # one output element
])
def test_accumulator_spans_as_many_output_loops_as_fit(max_bytes, loops, accumulator):
    sch = s_tir.Schedule(tvm.IRModule({"main": pointwise_conv}))
    assert fuse_epilogues(sch, max_bytes=max_bytes) == 1
    update = sch.get_sblock("conv_update")
    assert [str(sch.get(lp).loop_var) for lp in sch.get_loops(update)] == loops
    mod = tvm.IRModule({"main": sch.mod["main"].with_attr("global_symbol", "k")})
    with tvm.transform.PassContext(config={"tirx.disable_assert": True}):
        source = tvm.tirx.build(mod, target=tvm.target.Target({"kind": "c"})).inspect_source()
    assert accumulator in source and "TVMBackendAllocWorkspace" not in source


def test_rule_that_does_not_apply_is_skipped_and_logged(caplog):
    # The accumulator feeds two outputs: no single epilogue to move under its loop. The
    # rule skips it (logged), the init is still hoisted, and nothing raises.
    with caplog.at_level(logging.DEBUG, logger="compiler.codegen.schedule"):
        after = schedule_kernel(shared_accumulator, "shared_accumulator")
    assert "fuse_epilogues skipped block sum: 2 consumers" in caplog.text
    script = after.script()
    for name in ("sum_init", "sum_update", "out_b", "out_c"):
        assert f'T.sblock("{name}")' in script
    assert script.count("T.sblock_alloc_buffer((4,)") == 1  # the full accumulator stays


def test_single_block_kernel_is_left_unchanged():
    @T.prim_func(private=True, s_tir=True)
    def pad(x: T.Buffer((2, 4), "int8"), y: T.Buffer((2, 6), "int8")):
        for i, j in T.grid(2, 6):
            with T.sblock("pad"):
                vi, vj = T.axis.remap("SS", [i, j])
                y[vi, vj] = T.if_then_else(1 <= vj and vj < 5, x[vi, vj - 1], T.int8(-3))

    tvm.ir.assert_structural_equal(schedule_kernel(pad, "pad"), pad)


def test_kernel_without_blocks_is_returned_as_is(caplog):
    @T.prim_func
    def zeros(a: T.Buffer((4,), "int32")):
        for i in range(4):
            a[i] = 0

    with caplog.at_level(logging.DEBUG, logger="compiler.codegen.schedule"):
        assert schedule_kernel(zeros, "zeros").same_as(zeros)
    assert "zeros: not a schedulable block PrimFunc" in caplog.text


def test_rules_are_selectable_by_name():
    tvm.ir.assert_structural_equal(schedule_kernel(matmul_requant, rules=()), matmul_requant)
    with pytest.raises(ValueError, match="inline_elementwise"):
        schedule_kernel(matmul_requant, rules=("vectorize",))
    assert SCHEDULE_RULES == ("inline_elementwise", "fuse_epilogues", "split_borders")


INT8_MODELS = {
    # name: conv_model arguments (c_in, c_out, hw, k, stride, dilation, groups, pads)
    "conv3x3_requant": (4, 8, 10, 3, 1, 1, 1, [1, 1, 1, 1]),
    "depthwise3x3_s2": (6, 6, 11, 3, 2, 1, 6, [1, 1, 1, 1]),
}


@pytest.fixture(scope="module", params=sorted(INT8_MODELS))
def scheduled_vs_plain(request, tmp_path_factory):
    """One int8 model compiled with and without the schedule, run on the same input."""
    require_tools("gcc", "make")
    rng = np.random.default_rng(20)
    work = tmp_path_factory.mktemp(request.param)
    qdq = quantize_qdq(conv_model(rng, *INT8_MODELS[request.param]), work, rng)
    runs = {}
    for schedule in (True, False):
        out = work / f"schedule_{schedule}"
        # the TVM kernels' schedule is under test: no kernel-library offload
        result = compile_model(qdq, "host", out, schedule=schedule, library=False)
        spec = result.io["inputs"][0]
        x = np.random.default_rng(21).integers(-128, 128, size=spec["shape"]).astype(np.int8)
        runs[schedule] = (result, get_runner("host").run(out, {spec["name"]: x}).outputs)
    return runs


def test_schedule_removes_kernel_scratch(scheduled_vs_plain):
    scheduled, plain = scheduled_vs_plain[True][0], scheduled_vs_plain[False][0]
    plain_scratch = sum(k.workspace_bytes for k in plain.kernels.values())
    assert plain_scratch > 0  # the unscheduled requantization chain needs temporaries
    assert all(k.workspace_requests == () for k in scheduled.kernels.values())
    assert all("TVMBackendAllocWorkspace" not in k.source for k in scheduled.kernels.values())
    assert scheduled.arena_bytes < plain.arena_bytes


def test_schedule_keeps_outputs_bit_exact(scheduled_vs_plain):
    scheduled, plain = scheduled_vs_plain[True][1], scheduled_vs_plain[False][1]
    assert scheduled.keys() == plain.keys()
    for name in scheduled:
        np.testing.assert_array_equal(scheduled[name], plain[name])
