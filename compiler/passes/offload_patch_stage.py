"""Patch stages → calls of the kernel library's ``qanas_patch_stage_s8``.

In ``--optimise size`` `compiler.passes.patch_stage` groups the high-resolution head of a
network (model input → split tensor) into one Relax function, ``patch<i>_n<n>_...``. Left
to TVM it becomes one scalar kernel scheduled tile by tile (`compiler.codegen.patches`).
`OffloadKernels` asks `patch_stage_call` about every binding of ``main``; when the head is
a chain of convolutions the library takes (each layer reads only the one before it: stems,
strided 1×1s, unfused expand / depthwise / project layers; int8 or int4 weights), it
becomes one library step that runs the same tiles with the library's kernels
(``runtime/c/src/kernel_steps.c``): per tile, each layer's output region is derived
backwards from the tile through the receptive fields (clipped to the tensor: padding only
at the image border), the model input's region (NCHW, read in place) is gathered
channels-last into scratch, the layers run in turn on the regions, each reading its input
at one end of the scratch and writing its output at the other (the scratch is the largest
input + output pair of any layer and tile, not twice the largest region), and the tile is
copied into the split tensor (NHWC, which the library calls after the head read directly).
Neighbouring tiles recompute their shared halo, as TVM's schedule does, so the extra MACs
are the technique's own.

A head with anything else (an add, a pool, a table) stays TVM's patch kernel: never a wrong
result, only a slower one (and int4 weights stored a byte each).
"""

from __future__ import annotations

import re

import tvm
from tvm import relax

from compiler.kernels.calls import LibraryCall
from compiler.passes._common import dtype_of, shape_of
from compiler.passes.patch_stage import PATCH_PREFIX, tiles

FUNCTION = "qanas_patch_stage_s8"
"""The library function a patch stage becomes."""

MAX_LAYERS = 8
"""Most layers a library patch stage runs (``QANAS_PATCH_MAX_LAYERS``)."""

LAYER_KINDS = {"qanas_conv2d_s8": 0, "qanas_pointwise_conv_s8": 1,
               "qanas_depthwise_conv2d_s8": 2, "qanas_conv2d_s4": 3,
               "qanas_pointwise_conv_s4": 4}
"""Library convolution → the layer kind of ``qanas_patch_step_t`` (``QANAS_PATCH_CONV``,
``_POINTWISE``, ``_DEPTHWISE``, ``_CONV_S4``, ``_POINTWISE_S4``: a conv with INT4 weights
in the source runs on the int4 convolutions here too, its weights packed two per byte)."""

_NAME = re.compile(rf"^{PATCH_PREFIX}\d+_n(\d+)_")

ALIGN = 16


def patch_stage_call(groups, final):
    """The library call computing `final` when it is bound to a patch stage the library takes.

    Args:
        groups: `OffloadKernels`' ``_Groups`` over ``main``.
        final: a variable of ``main``.

    Returns:
        ``(LibraryCall, model input var, constants, NHWC output shape)``, or None.
    """
    value = groups.value(final)
    if (not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.GlobalVar)
            or _NAME.match(value.op.name_hint) is None):
        return None
    func = groups.mod[value.op]
    consts = value.args[1:]
    if (not isinstance(func, relax.Function) or len(consts) != len(func.params) - 1
            or not all(isinstance(c, tvm.ir.GenericConst) for c in consts)):
        return None
    bound = func.bind_params(dict(zip(func.params[1:], consts, strict=True)))
    x = bound.params[0]
    if dtype_of(x) != "int8" or len(shape_of(x)) != 4 or shape_of(x)[0] != 1:
        return None
    inner = type(groups)(bound, groups.mod, groups.isa, groups.int4_weights)
    layers = _conv_chain(inner, x, bound.body.body)
    if layers is None:
        return None
    patches = int(_NAME.match(value.op.name_hint).group(1))
    params = [m.call.params for m in layers]
    scratch = scratch_bytes(shape_of(x)[1], params, patches)
    call = LibraryCall(FUNCTION, {
        "patches": patches, "layer_count": len(layers),
        "kinds": [LAYER_KINDS[m.call.function] for m in layers], "layers": params,
        "scratch_bytes": scratch})
    constants = [c for m in layers for c in m.constants]
    last = params[-1]["conv"]
    return call, value.args[0], constants, (1, last["out_h"], last["out_w"], last["out_c"])


def _conv_chain(inner, x, out):
    """The library convolution matches from `x` to `out`, in order, each reading only the
    one before; None when the head is anything else."""
    layers = []
    var = out
    while not var.same_as(x):
        if len(layers) == MAX_LAYERS or not isinstance(var, relax.Var):
            return None
        found = inner.match(var)
        if (found is None or found.call.function not in LAYER_KINDS or len(found.inputs) != 1
                or not inner.private(found.members, var)):
            return None
        layers.append(found)
        var = found.inputs[0]
    return layers[::-1] or None


def _input_range(conv: dict, axis: int, lo: int, hi: int) -> tuple[int, int]:
    """Input rows (axis 0) or columns (1) the output range ``[lo, hi)`` of `conv` reads,
    clipped to the input (the rest is padding)."""
    h = "h" if axis == 0 else "w"
    stride, dilation = conv[f"stride_{h}"], conv[f"dilation_{h}"]
    pad = conv["pad_top"] if axis == 0 else conv["pad_left"]
    span = (conv[f"kernel_{h}"] - 1) * dilation + 1
    start = lo * stride - pad
    return max(0, start), min(conv[f"in_{h}"], (hi - 1) * stride - pad + span)


def region_ranges(layers: list[dict], axis: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Per layer, from the model input on: the range of its *input* one tile ``[lo, hi)``
    of the last output needs along `axis`, then the tile itself (``len(layers) + 1``
    ranges). The C adapter derives the same ranges."""
    ranges = [(lo, hi)]
    for params in reversed(layers):
        ranges.append(_input_range(params["conv"], axis, *ranges[-1]))
    return ranges[::-1]


def scratch_bytes(in_c: int, layers: list[dict], patches: int) -> int:
    """Scratch of the step: the largest input + output region pair of any layer and tile,
    each 16-byte aligned; a layer reads at one end of the scratch and writes at the other
    (``PatchTileRun`` in ``runtime/c/src/kernel_steps.c``)."""
    convs = [p["conv"] for p in layers]
    channels = [in_c] + [c["out_c"] for c in convs]
    last = convs[-1]
    rows = [region_ranges(layers, 0, *t) for t in tiles(last["out_h"], patches)]
    cols = [region_ranges(layers, 1, *t) for t in tiles(last["out_w"], patches)]

    def aligned(nbytes: int) -> int:
        return -(-nbytes // ALIGN) * ALIGN

    return max(aligned(channels[i] * (r[i][1] - r[i][0]) * (q[i][1] - q[i][0]))
               + aligned(channels[i + 1] * (r[i + 1][1] - r[i + 1][0])
                         * (q[i + 1][1] - q[i + 1][0]))
               for r in rows for q in cols for i in range(len(convs)))
