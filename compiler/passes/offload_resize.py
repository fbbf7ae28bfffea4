"""Int8 resize kernels → calls of the kernel library's ``qanas_resize_s8``.

`compiler.passes.lower_resize` turns every quantized Resize into one tagged TE kernel
(``{"op": "resize_int8", ...}``: the `ResizeSpec` and the `Int8Resize` integers) whose
arguments are the input and the spec's exact tables. `OffloadKernels`
(`compiler.passes.offload_kernels`) asks `resize_call` about every binding of ``main``;
for such a kernel it returns the library call with the very same tables and the
multiplier and shift the TVM kernel would requantize with (`compiler.int8.
quantize_multiplier` of the tag's real factor), so the result is bit-exact by
construction.

The library reads NHWC. Its output is NHWC when a library call reads it and NCHW
otherwise (a model output or a TVM kernel), so no transpose is emitted after a final
resize (`nchw_output`).

A resize the kernel cannot take stays TVM's kernel: a batch other than 1, a
requantization shift outside the library's range, tables that are not constants.
"""

from __future__ import annotations

import numpy as np

from compiler import int8
from compiler.kernels.calls import LibraryCall
from compiler.passes._common import const_value, dtype_of, shape_of
from compiler.passes.lower_resize import kernel_from_tag
from compiler.passes.resize_kernels import kernel_tag

FUNCTION = "qanas_resize_s8"
"""The library function an int8 resize becomes."""

_METHODS = {"nearest": 0, "linear": 1}  # QANAS_RESIZE_NEAREST, QANAS_RESIZE_BILINEAR


def resize_call(groups, final):
    """The library call computing `final` when it is bound to an int8 resize kernel.

    Args:
        groups: `OffloadKernels`' ``_Groups`` over ``main`` (its module and bindings).
        final: a variable of ``main``.

    Returns:
        ``(LibraryCall, input var, [rows table, cols table], NHWC output shape)``, or None
        when `final` is not an int8 resize or the kernel cannot take it.
    """
    value = groups.value(final)
    tag = kernel_tag(groups.mod, value)
    if tag is None or tag.get("op") != "resize_int8":
        return None
    x, *tables = value.args[1].fields
    tables = [const_value(t) for t in tables]
    if len(tables) != 2 or any(t is None for t in tables) or dtype_of(x) != "int8":
        return None
    spec, kernel = kernel_from_tag(tag)
    n, c, h, w = shape_of(x)
    _, _, ho, wo = shape_of(final)
    if n != 1:
        return None
    multiplier = shift = 0
    if kernel.real is not None:
        m, s = int8.quantize_multiplier(np.asarray(kernel.real, dtype=np.float64))
        multiplier, shift = int(np.asarray(m).reshape(-1)[0]), int(np.asarray(s).reshape(-1)[0])
        if not (0 <= multiplier < 2**31 and 1 <= 31 - shift <= 62):
            return None
    params = {"resize": {"in_h": h, "in_w": w, "channels": c, "out_h": ho, "out_w": wo,
                         "method": _METHODS[kernel.method],
                         "rescale": int(kernel.real is not None), "out_nchw": 0,
                         "input_zero_point": kernel.x_zp, "multiplier": multiplier,
                         "shift": shift, "output_zero_point": kernel.out_zp,
                         "qmin": kernel.qmin, "qmax": kernel.qmax}}
    tables = [np.ascontiguousarray(t, dtype=np.int32) for t in tables]
    return LibraryCall(FUNCTION, params), x, tables, (1, ho, wo, c)


def nchw_output(call: LibraryCall) -> LibraryCall:
    """The same resize writing its output NCHW (for a reader that is not a library call)."""
    return LibraryCall(call.function, {"resize": {**call.params["resize"], "out_nchw": 1}})
