"""CanonicalizeUint8: every uint8 quantized tensor becomes int8 with zero point − 128.

``q_u8 = q_s8 + 128`` represents the same real values when the zero point moves by
−128 as well, so after this pass all integer kernels see one storage type (int8),
as in TFLite. Brevitas exports unsigned activations (QuantReLU) and onnxruntime's
quantizer defaults to uint8 activations; both are handled here, including
``Q → Clip(int) → DQ`` chains and uint8 constants.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.passes._common import const_value, dtype_of, function_pass, is_op, prim_number


def _shift_zp(zp: relax.Expr) -> relax.Expr:
    value = const_value(zp)
    return relax.const((value.astype(np.int16) - 128).astype(np.int8), "int8")


class _Uint8ToInt8(PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:  # noqa: D102 - visitor hook
        new = super().visit_call_(call)
        if is_op(call, "relax.quantize") and str(call.attrs.out_dtype) == "uint8":
            return relax.op.quantize(new.args[0], new.args[1], _shift_zp(new.args[2]),
                                     axis=int(call.attrs.axis), out_dtype="int8")
        if is_op(call, "relax.dequantize") and dtype_of(call.args[0]) == "uint8":
            data = new.args[0]
            if isinstance(data, tvm.ir.GenericConst):
                data = relax.const((const_value(data).astype(np.int16) - 128).astype(np.int8),
                                   "int8")
            return relax.op.dequantize(data, new.args[1], _shift_zp(new.args[2]),
                                       axis=int(call.attrs.axis), out_dtype=str(call.attrs.out_dtype))
        if is_op(call, "relax.clip") and dtype_of(call) == "uint8":
            lo = int(prim_number(call.args[1])) - 128
            hi = int(prim_number(call.args[2])) - 128
            return relax.op.clip(new.args[0], relax.prim_value(max(lo, -128)),
                                 relax.prim_value(min(hi, 127)))
        return new


def CanonicalizeUint8():  # noqa: N802 - TVM pass naming
    """The pass; run it before the lowering passes."""

    return function_pass("CanonicalizeUint8",
                         lambda mod, func: mutator(_Uint8ToInt8)(mod).visit_expr(func))
