"""Integer-lowering Relax passes: QDQ float graphs → int8-only compute.

Each pass lives in its own module and rewrites one family of
``quantize(op(dequantize(...)))`` patterns; `integer_lowering` composes them and
`lower_to_integer` applies them to an imported model, strips the boundary
quantize/dequantize and checks that no float arithmetic is left. The arithmetic
(multiplier/shift, rounding) is `compiler.int8`, documented in
``docs/int8-arithmetic.md``.
"""

from __future__ import annotations

import tvm
from tvm import relax

from compiler.errors import CompilerError
from compiler.frontend.model import ImportedModel
from compiler.passes._common import variable_bindings
from compiler.passes.append_argmax import AppendArgmax, append_argmax
from compiler.passes.boundary import find_float_op, strip_boundary
from compiler.passes.canonicalize_uint8 import CanonicalizeUint8
from compiler.passes.fold_clamp import FoldIntegerClamp
from compiler.passes.fuse_inverted_residual import FuseInvertedResiduals, fused_blocks
from compiler.passes.hoist_dequantize import HoistDequantize
from compiler.passes.lower_concat import LowerQuantizedConcat
from compiler.passes.lower_conv import LowerQuantizedConv2d
from compiler.passes.lower_elementwise import LowerQuantizedElementwise
from compiler.passes.lower_layout import LowerQuantizedDataMovement
from compiler.passes.lower_lut import LowerQuantizedUnaryToLUT
from compiler.passes.lower_matmul import LowerQuantizedMatmul
from compiler.passes.lower_pool import LowerQuantizedAvgPool
from compiler.passes.lower_resize import LowerQuantizedResize
from compiler.passes.lower_softmax import LowerQuantizedSoftmax

_TRIGGERS = {
    "HoistDequantize": frozenset({"relax.reshape", "relax.permute_dims", "relax.strided_slice",
                                  "relax.concat"}),
    "LowerQuantizedMatmul": frozenset({"relax.matmul"}),
    "LowerQuantizedSoftmax": frozenset({"relax.nn.softmax"}),
    "LowerQuantizedConcat": frozenset({"relax.concat"}),
    "LowerQuantizedAvgPool": frozenset({"relax.nn.avg_pool2d", "relax.mean"}),
}
"""Per pass that rewrites only some float operators: those operators. No pass creates one
of them unless the module called it already (the hoist and the matmul and concat
lowerings re-emit the operator they rewrite), so a pass none of whose operators the
imported module calls would change nothing, and `integer_lowering` may leave it out."""


def called_ops(mod: tvm.IRModule) -> frozenset[str]:
    """Names of the Relax operators the bindings of `mod`'s Relax functions call."""
    ops = set()
    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            for value in variable_bindings(func).values():
                if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
                    ops.add(value.op.name)
    return frozenset(ops)


def integer_lowering(fuse_inverted_residuals: bool = False,
                     ops: frozenset[str] | None = None) -> tvm.transform.Pass:
    """All integer-lowering passes in order, as one ``tvm.transform.Sequential``.

    With `fuse_inverted_residuals`, `FuseInvertedResiduals` runs last: each inverted
    residual becomes one kernel computed in row bands (smaller arena, some expanded rows
    computed again); `fused_blocks` lists them. `ops`: the operators the module to lower
    calls (`called_ops`); the passes that rewrite only others (`_TRIGGERS`) are left
    out, since they would change nothing (None: every pass runs).

    Example:
        >>> mod = integer_lowering()(imported.mod)  # doctest: +SKIP
    """
    passes = [
        CanonicalizeUint8(),
        HoistDequantize(),
        LowerQuantizedConv2d(),
        LowerQuantizedMatmul(),
        LowerQuantizedSoftmax(),
        LowerQuantizedElementwise(),
        LowerQuantizedConcat(),
        LowerQuantizedAvgPool(),
        LowerQuantizedResize(),
        LowerQuantizedDataMovement(),
        LowerQuantizedUnaryToLUT(),
        FoldIntegerClamp(),
        relax.transform.CanonicalizeBindings(),
        *([FuseInvertedResiduals()] if fuse_inverted_residuals else []),
    ]
    if ops is not None:
        passes = [p for p in passes
                  if p.info.name not in _TRIGGERS or not _TRIGGERS[p.info.name].isdisjoint(ops)]
    return tvm.transform.Sequential(passes, name="IntegerLowering")


def lower_to_integer(imported: ImportedModel,
                     fuse_inverted_residuals: bool = False) -> ImportedModel:
    """Lowers a quantized model to int8-only Relax with int8 inputs and outputs.

    Float models are returned unchanged. `fuse_inverted_residuals`: see `integer_lowering`.

    Raises:
        CompilerError: a float op survived lowering (its op and binding are named): the
            model is not fully quantized, or uses a pattern the passes do not lower.
    """
    if not imported.quantized:
        return imported
    lowering = integer_lowering(fuse_inverted_residuals, called_ops(imported.mod))
    lowered = strip_boundary(imported.with_module(lowering(imported.mod)))
    leftover = find_float_op(lowered.mod["main"])
    if leftover is not None:
        raise CompilerError(
            f"float computation remains after integer lowering in {imported.source}: "
            f"{leftover}. Every op between the graph's input QuantizeLinear and output "
            "DequantizeLinear must be quantized (QDQ around it) and one of the int8 "
            "patterns in compiler.passes (conv, gemm/matmul, add/sub/mul, concat, pooling, "
            "resize, softmax, reshape/transpose/slice, element-wise activations)")
    return lowered


__all__ = [
    "AppendArgmax",
    "CanonicalizeUint8",
    "FoldIntegerClamp",
    "FuseInvertedResiduals",
    "HoistDequantize",
    "LowerQuantizedAvgPool",
    "LowerQuantizedConcat",
    "LowerQuantizedConv2d",
    "LowerQuantizedDataMovement",
    "LowerQuantizedElementwise",
    "LowerQuantizedMatmul",
    "LowerQuantizedResize",
    "LowerQuantizedSoftmax",
    "LowerQuantizedUnaryToLUT",
    "append_argmax",
    "called_ops",
    "fused_blocks",
    "integer_lowering",
    "lower_to_integer",
]
