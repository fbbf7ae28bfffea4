"""Schedule rule `split_borders`: padded convs read the interior without a column test.

A zero-point-padded conv (`compiler.passes._common.padded_conv2d`, one PrimFunc) is
legalized, fused and scheduled as the compiler does it; with `split_borders` its inner
output loop is split into border / interior / border. The interior loop of the generated
C has no test on its own variable, and the kernel's accumulators equal the NumPy
reference (``conv_ref(x - zp) + zp · Σ w``) for every stride, dilation, grouping and
asymmetric padding, with the rule and without it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler.codegen.schedule import SCHEDULE_RULES, schedule_kernel
from compiler.passes._common import padded_conv2d

ZP = -128
CASES = [  # (in_ch, out_ch, kernel, strides, padding (t, l, b, r), dilation, groups, (H, W))
    (4, 4, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4, (9, 16)),  # depthwise
    (4, 4, 3, (2, 2), (1, 1, 1, 1), (1, 1), 4, (9, 17)),  # stride-2 depthwise, odd width
    (6, 6, 3, (1, 1), (2, 2, 2, 2), (2, 2), 6, (8, 16)),  # dilated depthwise
    (4, 6, 3, (2, 1), (0, 1, 2, 1), (1, 2), 2, (9, 16)),  # grouped, asymmetric
    (3, 4, 5, (2, 2), (2, 1, 1, 2), (1, 1), 1, (10, 17)),
]
NARROW = (4, 4, 5, (1, 1), (2, 2, 2, 2), (1, 1), 4, (4, 8))  # interior 4 of 8: not split


def _kernel(case):
    """The fused PrimFunc of one padded conv (x, w → int32 acc), unscheduled."""
    cin, cout, k, strides, pads, dil, groups, (h, w) = case
    rng = np.random.default_rng(2)
    weight = rng.integers(-127, 128, (cout, cin // groups, k, k)).astype(np.int8)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, cin, h, w), "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            acc = bb.emit_output(bb.emit_te(padded_conv2d, x, relax.const(weight, "int8"),
                                            strides, pads, dil, groups, ZP,
                                            primfunc_name_hint="conv2d"))
        bb.emit_func_output(acc)
    fused = relax.get_pipeline("zero")(bb.get())
    gv = next(g for g in fused.get_global_vars() if g.name_hint != "main")
    return fused[gv], weight


def _build(func, target: str):
    func = func.with_attr("global_symbol", "k")
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        return tvm.tirx.build(tvm.IRModule({tvm.ir.GlobalVar("k"): func}), target=target)


def _reference(case, x, weight):
    from compiler.reference import kernels

    _, cout, _, strides, pads, dil, groups, _ = case
    ref = kernels.conv2d(x.astype(np.int64) - ZP, weight, strides, pads, dil, groups)
    return ref + ZP * weight.astype(np.int64).reshape(cout, -1).sum(axis=1).reshape(1, -1, 1, 1)


def _loop_bodies(source: str):
    """``(variable, extent, body)`` of every ``for`` loop of the C source."""
    for m in re.finditer(r"for \(int32_t (\w+) = 0; \1 < (\d+); \+\+\1\) \{", source):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(source[i], 0)
            i += 1
        yield m.group(1), int(m.group(2)), source[m.end():i]


def _update_loops(case):
    """The innermost loops that read the input (``x[``) in the scheduled C, and the row width."""
    _, _, k, strides, pads, dil, _, (_, w) = case
    width = (w + pads[1] + pads[3] - (k - 1) * dil[1] - 1) // strides[1] + 1
    func, _ = _kernel(case)
    source = _build(schedule_kernel(func, "k"), "c").inspect_source()
    loops = [(v, n, body) for v, n, body in _loop_bodies(source)
             if "for (" not in body and "x[" in body]
    return loops, width


def test_split_borders_is_a_default_rule():
    assert SCHEDULE_RULES[-1] == "split_borders"


@pytest.mark.parametrize("case", CASES, ids=lambda c: "s{}p{}d{}g{}hw{}".format(*c[3:]))
def test_interior_loop_reads_without_a_column_test(case):
    loops, width = _update_loops(case)
    var, extent, body = max(loops, key=lambda loop: loop[1])
    assert extent < width, "the inner loop was not split into border and interior"
    tests = [line for line in body.splitlines() if line.strip().startswith("if (")]
    assert not any(re.search(rf"\b{var}\b", t) for t in tests), body


def test_a_row_mostly_border_is_not_split():
    loops, width = _update_loops(NARROW)
    assert [extent for _, extent, _ in loops] == [width]


@pytest.mark.parametrize("case", [*CASES, NARROW],
                         ids=lambda c: "s{}p{}d{}g{}hw{}".format(*c[3:]))
@pytest.mark.parametrize("rules", [SCHEDULE_RULES, SCHEDULE_RULES[:-1]],
                         ids=["split", "unsplit"])
def test_split_kernel_equals_the_numpy_reference(case, rules):
    func, weight = _kernel(case)
    lib = _build(schedule_kernel(func, "k", rules=rules), "llvm")
    cin, h, w = case[0], *case[7]
    x = np.random.default_rng(5).integers(-128, 128, (1, cin, h, w)).astype(np.int8)
    ref = _reference(case, x, weight)
    out = tvm.runtime.tensor(np.zeros(ref.shape, np.int32))
    lib["k"](tvm.runtime.tensor(x), tvm.runtime.tensor(weight), out)
    np.testing.assert_array_equal(out.numpy(), ref)
