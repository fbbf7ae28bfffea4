"""CanonicalizeUint8: Before/Expected for uint8 quantize / clip / dequantize and constants.

``q_u8 = q_s8 + 128``: every uint8 tensor becomes int8 with its zero point (and any
integer clip bounds, and constant data) moved down by 128.
"""

from __future__ import annotations

import tvm
from tvm import relax

from compiler.passes import CanonicalizeUint8
from tests.support.relax_helpers import const as _c

SHAPE = (1, 4)
S = 0.02  # activation scale
W_S = 0.01  # constant's scale


def _clip(x, lo, hi):
    return relax.op.clip(x, relax.prim_value(lo), relax.prim_value(hi))


def _function(dtype, act_zp, clip, const, const_zp) -> tvm.IRModule:
    """``dq(clip(q(x))) + dq(const)`` with activation and constant stored as ``dtype``."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit(relax.op.quantize(x, _c(S, "float32"), _c(act_zp, dtype), axis=0,
                                          out_dtype=dtype))
            q = bb.emit(_clip(q, *clip))
            a = bb.emit(relax.op.dequantize(q, _c(S, "float32"), _c(act_zp, dtype), axis=0))
            w = bb.emit(relax.op.dequantize(_c(const, dtype), _c(W_S, "float32"),
                                            _c(const_zp, dtype), axis=0))
            out = bb.emit_output(relax.op.add(a, w))
        bb.emit_func_output(out)
    return bb.get()


def test_uint8_tensors_clips_and_constants_become_int8_shifted_by_128():
    before = _function("uint8", act_zp=128, clip=(0, 200), const=[0, 100, 128, 255],
                       const_zp=100)
    expected = _function("int8", act_zp=0, clip=(-128, 72), const=[-128, -28, 0, 127],
                         const_zp=-28)
    tvm.ir.assert_structural_equal(CanonicalizeUint8()(before), expected)


def test_full_range_uint8_clip_becomes_full_range_int8():
    before = _function("uint8", act_zp=0, clip=(0, 255), const=[1, 2, 3, 4], const_zp=0)
    expected = _function("int8", act_zp=-128, clip=(-128, 127), const=[-127, -126, -125, -124],
                         const_zp=-128)
    tvm.ir.assert_structural_equal(CanonicalizeUint8()(before), expected)


def test_int8_graph_is_left_alone():
    def build():
        return _function("int8", act_zp=3, clip=(-8, 7), const=[-1, 0, 1, 2], const_zp=0)

    tvm.ir.assert_structural_equal(CanonicalizeUint8()(build()), build())
