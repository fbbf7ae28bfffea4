"""LowerQuantizedResize: int8 nearest and bilinear resize as one int8-in, int8-out kernel.

The frontend emits every ONNX Resize as an exact float kernel tagged with its
`ResizeSpec` (`compiler.frontend.onnx_ops`); a Relax ``image.resize2d`` (from
``torch.export``) is read as the spec with scales ``n_out / n_in``. Inside a
``quantize(resize(dequantize(x_q)))`` group this pass replaces both by one TE kernel
(`compiler.passes.resize_kernels.int8_resize`) whose source coordinates are the spec's
exact tables, computed at compile time:

* nearest: ``y_q = x_q[rows[i], cols[j]]``, rescaled when the quantization changes;
* bilinear: per output element the 2×2-tap integer sum
  ``acc = Σ x_q[r_a, c_b] · W_a · V_b − zp_x · D`` (int32; ``D = D_h · D_w`` the weights'
  common denominators, 4 per axis for a 2× half-pixel upsample) and
  ``y_q = requantize(acc, s_x / (s_y · D), zp_y)``.

No tensor other than the int8 output is written: the accumulator lives in a register.
The kernel is tagged (`resize_kernels.kernel_tag`) with what it computes, so
`compiler.passes.append_argmax` can fuse a final argmax into it.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import mutator

from compiler.passes._common import QParams, QuantRewriter, is_op, shape_of
from compiler.passes.resize_kernels import Int8Resize, emit_kernel, int8_resize, kernel_tag
from compiler.passes.resize_spec import ResizeSpec

_RELAX_METHODS = {"nearest_neighbor": "nearest", "linear": "linear"}


def resize_of(mod: tvm.IRModule, node: relax.Expr) -> tuple[ResizeSpec, relax.Expr] | None:
    """``(spec, data)`` when ``node`` is a float resize we can lower, else None.

    Accepts the frontend's tagged ``call_tir`` and an NCHW ``relax.image.resize2d`` whose
    mode and rounding the spec implements (TVM's ``round`` is not an ONNX nearest mode; an
    empty rounding is TVM's default, ``floor`` unless align_corners).
    """
    tag = kernel_tag(mod, node)
    if tag is not None and tag.get("op") == "resize" and "spec" in tag:
        return ResizeSpec.from_json(tag["spec"]), node.args[1].fields[0]
    if not is_op(node, "relax.image.resize2d") or str(node.attrs.layout) != "NCHW":
        return None
    method = _RELAX_METHODS.get(str(node.attrs.method))
    mode = str(node.attrs.coordinate_transformation_mode)
    rounding = str(node.attrs.rounding_method)
    if method == "nearest" and not rounding:  # TVM's default: round (align_corners) or floor
        rounding = "round" if mode == "align_corners" else "floor"
    try:
        spec = ResizeSpec.from_sizes(method, mode, rounding, shape_of(node.args[0])[2:],
                                     shape_of(node)[2:])
    except ValueError:
        return None
    return spec, node.args[0]


def int8_kernel(spec: ResizeSpec, xp: QParams, out: QParams) -> tuple[Int8Resize, list] | None:
    """The `Int8Resize` and its table constants for ``spec`` from ``xp`` to ``out``."""
    lo, hi = out.qrange()
    if spec.method == "nearest":
        same = xp.s == out.s and xp.zp == out.zp
        real = None if same else float(np.float64(xp.s) / np.float64(out.s))
        tables = [spec.nearest_indices(0), spec.nearest_indices(1)]
        return Int8Resize("nearest", xp.zp, real, out.zp, lo, hi), tables
    (rows, dh), (cols, dw) = spec.linear_table(0), spec.linear_table(1)
    if 255 * dh * dw >= 2**31:
        return None
    real = float(np.float64(xp.s) / (np.float64(out.s) * dh * dw))
    return Int8Resize("linear", xp.zp, real, out.zp, lo, hi, dh * dw), [rows, cols]


def kernel_tag_of(spec: ResizeSpec, k: Int8Resize) -> dict:
    """The tag an int8 resize kernel carries: enough to rebuild `Int8Resize` exactly."""
    return {"op": "resize_int8", "spec": spec.to_json(), "method": k.method, "x_zp": k.x_zp,
            "real": None if k.real is None else float(k.real).hex(), "out_zp": k.out_zp,
            "qmin": k.qmin, "qmax": k.qmax, "denom": k.denom}


def kernel_from_tag(tag: dict) -> tuple[ResizeSpec, Int8Resize]:
    """Inverse of `kernel_tag_of`."""
    real = None if tag["real"] is None else float.fromhex(tag["real"])
    return ResizeSpec.from_json(tag["spec"]), Int8Resize(
        tag["method"], tag["x_zp"], real, tag["out_zp"], tag["qmin"], tag["qmax"], tag["denom"])


class ResizeRewriter(QuantRewriter):
    """Rewrites quantized resize (NCHW, per-tensor int8) into one tagged int8 kernel."""

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        found = resize_of(self.builder_.get(), self.producer(call.args[0]))
        if found is None:
            return None
        spec, data = found
        src = self.dequantized(data)
        if src is None or not src[1].per_tensor or src[1].dtype != "int8":
            return None
        x_q, xp = src
        made = int8_kernel(spec, xp, out)
        if made is None:
            return None
        kernel, tables = made
        return emit_kernel(self.builder_, partial(int8_resize, kernel=kernel, out_hw=spec.out_hw),
                           x_q, *(relax.const(t, "int32") for t in tables),
                           name=f"resize_{spec.method}_int8", tag=kernel_tag_of(spec, kernel))


def kernel_pass(name: str, rewriter_cls: type[QuantRewriter]) -> tvm.transform.Pass:
    """A module pass running ``rewriter_cls`` on every Relax function, keeping its kernels.

    The PrimFuncs the rewriter emitted are added to the output module; tagged kernels
    (`resize_kernels.KERNEL_ATTR`) no Relax function calls any more are dropped. The
    input module is left untouched.
    """

    def transform(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        rewriter = mutator(rewriter_cls)(mod)
        for gv, func in mod.functions.items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gv, rewriter.lower_function(func))
        built = rewriter.builder_.get()
        called = set()
        for func in built.functions.values():
            if isinstance(func, relax.Function):
                called.update(g.name_hint for g in relax.analysis.all_global_vars(func))
        out = tvm.IRModule()
        for gv, func in built.functions.items():
            dead = (not isinstance(func, relax.Function) and gv.name_hint not in called
                    and func.attrs is not None and "qanas.kernel" in func.attrs)
            if not dead:
                out[gv] = func
        return out

    return tvm.transform.module_pass(transform, opt_level=0, name=name)


def LowerQuantizedResize():  # noqa: N802 - TVM pass naming
    """The pass: quantized Resize becomes one int8 kernel (no int32 tensor)."""
    return kernel_pass("LowerQuantizedResize", ResizeRewriter)
