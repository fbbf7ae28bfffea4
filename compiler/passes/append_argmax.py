"""AppendArgmax: the model returns a uint8 class map instead of its logits.

For segmentation a user often needs the label of each pixel, not C scores: the class
map takes 1 byte per pixel instead of C. `append_argmax` replaces every output of
``main`` (4-D NCHW logits) by

    labels[n, 0, i, j] = argmax_c logits[n, c, i, j]      (uint8, N × 1 × H × W)

which is ONNX ``ArgMax(axis=1, keepdims=1)`` with ties going to the first (lowest)
class index, as ONNX's default ``select_last_index=0`` says.

When the logits come out of a resize kernel (the usual final bilinear upsample of a
segmentation head: `LowerQuantizedResize`'s int8 kernel or the frontend's float one),
the resize and the argmax become **one** kernel (`resize_kernels.int8_resize_argmax`):
each pixel's C resized values are computed, compared and dropped in registers, so the
full-resolution logits never exist; only the low-resolution logits and the class map
are buffers. Any other producer gets a separate argmax kernel after it.

The int8 class comparisons are made on the requantized int8 values, so the labels are
exactly ``argmax`` of the int8 logits the model would otherwise return (the NumPy
reference's ``run_int8_reference(..., output="argmax")``).
"""

from __future__ import annotations

from functools import partial

import tvm
from tvm import relax

from compiler.errors import CompilerError
from compiler.frontend.model import ImportedModel, TensorInfo
from compiler.passes.lower_resize import kernel_from_tag
from compiler.passes.resize_kernels import (
    float_resize_argmax,
    int8_resize_argmax,
    kernel_tag,
    tensor_argmax,
)
from compiler.passes.resize_spec import ResizeSpec

OUTPUTS = ("logits", "argmax")
"""What a compiled model may return: its own outputs, or their per-pixel class index."""

MAX_CLASSES = 256
"""A uint8 class map holds class indices 0..255."""


def _bindings(func: relax.Function) -> dict:
    return {b.var: b.value for block in func.body.blocks for b in block.bindings}


def _resolve(var, binds):
    while isinstance(var, relax.Var) and isinstance(binds.get(var), relax.Var):
        var = binds[var]
    return var


def _check_logits(expr: relax.Expr) -> None:
    shape = [int(d) for d in expr.ty.shape]
    if len(shape) != 4:
        raise CompilerError(
            f"output='argmax' needs 4-D NCHW logits (N, classes, H, W); this model's output "
            f"has shape {tuple(shape)}. Compile with output='logits' instead")
    if shape[1] > MAX_CLASSES:
        raise CompilerError(
            f"output='argmax' writes a uint8 class map (at most {MAX_CLASSES} classes); this "
            f"model has {shape[1]}. Compile with output='logits' and take the argmax yourself")


def _argmax_call(bb: relax.BlockBuilder, mod: tvm.IRModule, value: relax.Expr,
                 var: relax.Expr) -> tuple[relax.Call, bool]:
    """The ``call_tir`` of the argmax of ``var`` (bound to ``value``); True when fused."""
    tag = kernel_tag(mod, value)
    if tag is not None and tag.get("op") == "resize_int8":
        spec, kernel = kernel_from_tag(tag)
        x, rows, cols = value.args[1].fields
        fte = partial(int8_resize_argmax, kernel=kernel, out_hw=spec.out_hw)
        return bb.call_te(fte, x, rows, cols, primfunc_name_hint="resize_argmax"), True
    if tag is not None and tag.get("op") == "resize" and str(var.ty.dtype) == "float32":
        spec = ResizeSpec.from_json(tag["spec"])
        fte = partial(float_resize_argmax, method=spec.method, out_hw=spec.out_hw)
        return bb.call_te(fte, *value.args[1].fields, primfunc_name_hint="resize_argmax"), True
    return bb.call_te(tensor_argmax, var, primfunc_name_hint="argmax"), False


def argmax_module(mod: tvm.IRModule) -> tuple[tvm.IRModule, list[bool]]:
    """``mod`` whose ``main`` returns the uint8 argmax of each output; which were fused.

    Raises:
        CompilerError: an output is not 4-D, or has more than `MAX_CLASSES` channels.
    """
    mod = relax.transform.ToNonDataflow()(mod)
    func = mod["main"]
    binds = _bindings(func)
    ret = _resolve(func.body.body, binds)
    is_tuple = isinstance(binds.get(ret), relax.Tuple)
    fields = [_resolve(f, binds) for f in binds[ret].fields] if is_tuple else [ret]
    bb = relax.BlockBuilder(mod)
    new_bindings, results, fused = [], [], []
    for field in fields:
        _check_logits(field)
        call, was_fused = _argmax_call(bb, bb.get(), binds.get(field), field)
        call = bb.normalize(call)
        out = relax.Var(f"{field.name}_argmax", call.ty)
        new_bindings.append(relax.VarBinding(out, call))
        results.append(out)
        fused.append(was_fused)
    body = results[0]
    if is_tuple:
        body = relax.Var("outputs", relax.TupleType([r.ty for r in results]))
        new_bindings.append(relax.VarBinding(body, relax.Tuple(results)))
    seq = relax.SeqExpr([*func.body.blocks, relax.BindingBlock(new_bindings)], body)
    new_func = relax.Function(func.params, seq, body.ty, attrs=func.attrs)
    out = bb.get()
    out["main"] = new_func
    out = tvm.transform.Sequential([
        relax.transform.Normalize(),
        relax.transform.DeadCodeElimination(["main"]),
        relax.transform.ConvertToDataflow(min_size=1),
    ])(out)
    return out, fused


def AppendArgmax():  # noqa: N802 - TVM pass naming
    """The pass form of `argmax_module` (Relax module in, module returning class maps out)."""

    def transform(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return argmax_module(mod)[0]

    return tvm.transform.module_pass(transform, opt_level=0, name="AppendArgmax")


def append_argmax(imported: ImportedModel) -> ImportedModel:
    """The model returning a uint8 class map (N, 1, H, W) per output instead of its logits.

    Contract (for `compiler.driver.compile_model(..., output="argmax")`): call it on the
    model *after* `compiler.passes.lower_to_integer` (a quantized model then has int8
    logits, whose final resize it fuses) or on a float model as imported; every output
    must be 4-D NCHW with at most 256 channels. The returned `ImportedModel`'s outputs
    keep their names, with shape ``(N, 1, H, W)``, dtype ``uint8`` and no scale or zero
    point. Labels are ``argmax`` over axis 1, ties to the lowest index (ONNX ``ArgMax``,
    ``keepdims=1``), bit-exact with ``run_int8_reference(..., output="argmax")``.

    Raises:
        CompilerError: an output is not 4-D logits or has more than 256 classes.

    Example:
        >>> labels = append_argmax(lower_to_integer(load_model("seg.onnx")))  # doctest: +SKIP
        >>> labels.outputs[0].dtype  # doctest: +SKIP
        'uint8'
    """
    mod, _ = argmax_module(imported.mod)
    outputs = tuple(TensorInfo(info.name, (info.shape[0], 1, *info.shape[2:]), "uint8")
                    for info in imported.outputs)
    return imported.with_module(mod, outputs=outputs)
