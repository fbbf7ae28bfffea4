"""Graph-boundary handling after lowering: strip input Q / output DQ, and the float checker.

After the integer rewrite a fully quantized model still starts with
``R.quantize(x_float)`` and ends with ``R.dequantize(y_int8)``. `strip_boundary`
removes both so the compiled model takes and returns int8 tensors; the scale and
zero point move to `TensorInfo` (TFLite's int8 ``inference_input_type``).
`find_float_op` is the checker that no float arithmetic is left.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.frontend.model import ImportedModel, TensorInfo
from compiler.passes._common import const_value, dtype_of, is_op, shape_of


def _bindings(func: relax.Function) -> dict:
    return {b.var: b.value for block in func.body.blocks for b in block.bindings}


def _resolve(var, binds):
    while isinstance(var, relax.Var) and isinstance(binds.get(var), relax.Var):
        var = binds[var]
    return var


def _params(call: relax.Call) -> tuple[float, int]:
    return float(const_value(call.args[1]).reshape(-1)[0]), int(
        const_value(call.args[2]).reshape(-1)[0])


class _Strip(PyExprMutator):
    def __init__(self, mod, remap_to_param: dict, remap_to_arg: set):
        super().__init__(mod)
        self.remap_to_param = remap_to_param
        self.remap_to_arg = remap_to_arg

    def visit_var_binding_(self, binding) -> None:  # noqa: D102 - visitor hook
        if binding.var in self.remap_to_param:
            self.set_var_remap(binding.var, self.remap_to_param[binding.var])
        elif binding.var in self.remap_to_arg:
            value = self.visit_expr(binding.value.args[0])
            if not isinstance(binding.var, relax.DataflowVar):  # keep the output var global
                value = self.builder_.emit_output(value, name_hint=binding.var.name)
            self.set_var_remap(binding.var, value)
        else:
            super().visit_var_binding_(binding)


def strip_boundary(imported: ImportedModel) -> ImportedModel:
    """Makes ``main`` take int8 inputs and return int8 outputs where the graph (de)quantizes.

    An input is stripped when every use of it is the same ``R.quantize``; an output
    when it is an ``R.dequantize``. Other inputs and outputs keep their float type.
    """
    func = imported.mod["main"]
    binds = _bindings(func)
    uses: dict = {p: [] for p in func.params}
    for var, value in binds.items():
        if isinstance(value, relax.Call):
            for arg in value.args:
                if arg in uses:
                    uses[arg].append((var, value))
    remap_to_param, new_params, inputs = {}, [], []
    for param, info in zip(func.params, imported.inputs, strict=True):
        users = uses[param]
        if users and all(is_op(v, "relax.quantize") and _params(v) == _params(users[0][1])
                         for _, v in users):
            dtype = str(users[0][1].attrs.out_dtype)
            new = relax.Var(param.name, relax.TensorType(shape_of(param), dtype))
            for var, _ in users:
                remap_to_param[var] = new
            scale, zp = _params(users[0][1])
            new_params.append(new)
            inputs.append(TensorInfo(info.name, info.shape, dtype, scale, zp))
        else:
            new_params.append(param)
            inputs.append(info)
    ret = _resolve(func.body.body, binds)
    fields = list(binds[ret].fields) if isinstance(binds.get(ret), relax.Tuple) else [ret]
    remap_to_arg, outputs = set(), []
    for field, info in zip(fields, imported.outputs, strict=True):
        var = _resolve(field, binds)
        value = binds.get(var)
        if is_op(value, "relax.dequantize") and const_value(value.args[1]).size == 1:
            remap_to_arg.add(var)
            scale, zp = _params(value)
            outputs.append(TensorInfo(info.name, info.shape, dtype_of(value.args[0]), scale, zp))
        else:
            outputs.append(info)
    body = mutator(_Strip)(imported.mod, remap_to_param, remap_to_arg).visit_expr(func.body)
    new_func = relax.Function(new_params, body, attrs=func.attrs)
    mod = imported.mod.clone()  # keeps the kernels a lowering pass emitted (call_tir)
    mod["main"] = new_func
    mod = relax.transform.Normalize()(mod)
    return imported.with_module(mod, inputs=tuple(inputs), outputs=tuple(outputs))


def _is_float(expr: relax.Expr) -> bool:
    ty = getattr(expr, "ty", None)
    return isinstance(ty, relax.TensorType) and str(ty.dtype).startswith(("float", "bfloat"))


def find_float_op(func: relax.Function) -> str | None:
    """Describes the first call that reads or produces a float tensor, or None if there is none.

    Float compute ops are named in preference to the quantize/dequantize around them.
    """
    found = []
    for var, value in _bindings(func).items():
        if not isinstance(value, relax.Call):
            continue
        if _is_float(value) or any(_is_float(a) for a in value.args):
            op = value.op.name if isinstance(value.op, tvm.ir.Op) else str(value.op)
            found.append((op in ("relax.quantize", "relax.dequantize"),
                          f"{op} (binding {var.name}: {value.ty})"))
    return min(found, key=lambda f: f[0])[1] if found else None


__all__ = ["find_float_op", "strip_boundary"]
