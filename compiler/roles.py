"""Role names for the buffers of an execution plan: what a firmware engineer reads in a debugger.

The Relax module the plan is read from keeps neither the ONNX node names nor the torch
module paths, so the role of a buffer is read from what the plan does hold: the fused
kernel's name (the operators it runs) and the shapes of its constants. Each kernel call is
a *layer* named by its main operator and a per-operator counter in program order
(``conv0``, ``dwconv1``, ``block0`` for a fused inverted residual, ``resize0``...); its
output is ``<layer>_out``, its scratch ``<layer>_scratch``, and a constant is named after
the first layer that reads it and its part (``block0_expand_weights``, ``block0_dw_weights``,
``conv2_bias``, ``gather0_param0``).

Names are built from this module's own vocabulary and integers only, never from model
text, so they are ASCII C identifiers; `assign` makes them distinct from each other and
from the names already taken (the model's input and output identifiers) with ``_2``,
``_3``... suffixes, so the naming is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

_OPERATORS = (
    ("conv2d_transpose", "deconv"), ("depthwise_conv2d", "dwconv"), ("conv2d", "conv"),
    ("pointwise_conv", "conv"), ("global_avg_pool", "avgpool"), ("mul", "mul"), ("conv1d", "conv"),
    ("matmul", "dense"), ("dense", "dense"), ("max_pool2d", "maxpool"),
    ("avg_pool2d", "avgpool"), ("adaptive_avg_pool2d", "avgpool"), ("resize2d", "resize"),
    ("resize", "resize"), ("argmax", "argmax"), ("concatenate", "concat"), ("take", "gather"),
    ("mean", "mean"), ("sum", "sum"), ("sigmoid", "sigmoid"), ("softmax", "softmax"),
    ("multiply", "mul"), ("add", "add"), ("subtract", "sub"), ("maximum", "max"),
    ("minimum", "min"), ("clip", "clip"), ("reshape", "reshape"), ("transpose", "transpose"),
    ("cast", "requant"),
)
"""(operator as it appears in a fused kernel name, role), by priority: the first found names
the layer (a conv followed by its requantization epilogue is a ``conv``). Kernel library
calls (``qanas_depthwise_conv2d_s8``, ``qanas_global_avg_pool_s8``, ``qanas_mul_s8``) are
named by the same table."""

_FUSED_BLOCK = re.compile(r"irb\d+_.*")
"""Kernels of a fused inverted residual (`compiler.passes`): one layer, a ``block``."""


def kernel_role(kernel: str) -> str:
    """The role of a fused kernel, from the operators its name lists.

    Example:
        >>> kernel_role("fused_conv2d3_cast6_multiply3_right_shift3_tir_clip2_cast7")
        'conv'
        >>> kernel_role("irb0_k3s1d2e16_res"), kernel_role("my_op")
        ('block', 'layer')
    """
    if _FUSED_BLOCK.fullmatch(kernel):
        return "block"
    for op, role in _OPERATORS:
        if re.search(rf"(?:^|_){op}\d*(?:_|$)", kernel):
            return role
    return "layer"


def _is_depthwise(shape: Sequence[int]) -> bool:
    return len(shape) == 4 and shape[1] == 1 and shape[0] > 1 and shape[2] * shape[3] > 1


def layer_names(kernels: Sequence[str], constant_shapes: Sequence[Sequence[Sequence[int]]]
                ) -> list[str]:
    """One layer name per kernel call, in order: its role and a per-role counter.

    Args:
        kernels: the fused kernel of each call, in program order.
        constant_shapes: per call, the shapes of the constants it reads; a ``conv`` whose
            weights are depthwise (OIHW with one input channel) is a ``dwconv``.

    Example:
        >>> layer_names(["fused_conv2d_add", "fused_conv2d1_add", "take"],
        ...             [[(8, 3, 3, 3)], [(8, 1, 3, 3)], []])
        ['conv0', 'dwconv0', 'gather0']
    """
    counts: dict[str, int] = {}
    out = []
    for kernel, shapes in zip(kernels, constant_shapes, strict=True):
        role = kernel_role(kernel)
        if role == "conv" and any(_is_depthwise(s) for s in shapes):
            role = "dwconv"
        out.append(f"{role}{counts.get(role, 0)}")
        counts[role] = counts.get(role, 0) + 1
    return out


def constant_parts(shapes: Sequence[Sequence[int]], dtypes: Sequence[str],
                   block: bool) -> list[str]:
    """The part each constant of one call plays, in argument order.

    Weights (rank 2 or 4) are ``weights``, or in a fused block ``expand_weights``,
    ``dw_weights`` and ``project_weights`` (1x1 before the depthwise, the depthwise, 1x1
    after it); a depthwise conv's are ``weights``. An int32 vector right after weights is
    their ``bias`` (``expand_bias``...). Everything else (multipliers, shifts, tables)
    is ``param<k>``.

    Example:
        >>> constant_parts([(16, 8, 1, 1), (16,), (16, 1, 3, 3), (8, 16, 1, 1), ()],
        ...                ["int8", "int32", "int8", "int8", "int32"], block=True)
        ['expand_weights', 'expand_bias', 'dw_weights', 'project_weights', 'param0']
    """
    parts = []
    stage: str | None = None
    seen_dw = False
    params = 0
    for shape, dtype in zip(shapes, dtypes, strict=True):
        if len(shape) in (2, 4) and shape[0] > 1 and dtype in ("int8", "float32"):
            if block and _is_depthwise(shape):
                stage, seen_dw = "dw", True
            elif block:
                stage = "project" if seen_dw else "expand"
            else:
                stage = ""
            parts.append(f"{stage}_weights" if stage else "weights")
        elif stage is not None and dtype == "int32" and sum(d > 1 for d in shape) == 1:
            parts.append(f"{stage}_bias" if stage else "bias")
            stage = None
        else:
            parts.append(f"param{params}")
            params += 1
    return parts


def assign(wanted: Mapping[str, str], taken: Iterable[str] = ()) -> dict[str, str]:
    """Distinct names: each key of `wanted` gets its wanted name, or with ``_2``, ``_3``...
    when an earlier key or `taken` already holds it (in `wanted`'s order).

    Example:
        >>> assign({"a": "conv0_out", "b": "conv0_out"}, taken=["x"])
        {'a': 'conv0_out', 'b': 'conv0_out_2'}
    """
    used = set(taken)
    out = {}
    for key, base in wanted.items():
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out[key] = name
    return out


def _constants_of(call, buffers: Mapping) -> list[str]:
    return list(dict.fromkeys(a for a in call.inputs if buffers[a].kind == "constant"))


def plan_layers(calls: Sequence, buffers: Mapping) -> list[str]:
    """`layer_names` of a plan's `KernelCall`s (`buffers`: name → `BufferInfo`)."""
    return layer_names([c.kernel for c in calls],
                       [[buffers[a].shape for a in _constants_of(c, buffers)] for c in calls])


def role_names(calls: Sequence, buffers: Mapping, kinds: Sequence[str],
               taken: Iterable[str] = ()) -> dict[str, str]:
    """Buffer name → role name for the buffers of `kinds` (``constant``, ``intermediate``,
    ``workspace``), distinct from each other and from `taken`.

    Args:
        calls: the plan's `KernelCall`s in order (``kernel``, ``inputs``, ``outputs``,
            ``workspace``).
        buffers: buffer name → `BufferInfo` (``shape``, ``dtype``, ``kind``).
        kinds: which kinds of buffers to name; others are left out of the result.
        taken: names the result must avoid (the model's input and output identifiers).
    """
    layers = plan_layers(calls, buffers)
    wanted: dict[str, str] = {}
    for call, layer in zip(calls, layers, strict=True):
        consts = _constants_of(call, buffers)
        parts = constant_parts([buffers[a].shape for a in consts],
                               [buffers[a].dtype for a in consts], layer.startswith("block"))
        for name, part in zip(consts, parts, strict=True):
            if "constant" in kinds and name not in wanted:
                wanted[name] = f"{layer}_{part}"
        outs = [o for o in call.outputs if buffers[o].kind == "intermediate"]
        for j, name in enumerate(outs):
            if "intermediate" in kinds:
                wanted[name] = f"{layer}_out" if len(call.outputs) == 1 else f"{layer}_out{j}"
        if call.workspace and "workspace" in kinds:
            wanted[call.workspace] = f"{layer}_scratch"
    return assign(wanted, taken)
