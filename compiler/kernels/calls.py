"""Library calls in the compiled graph: what a call of the kernel library needs, in one place.

`compiler.passes.offload_kernels` replaces matched int8 groups with ``R.call_tir`` of a
PrimFunc whose body is a ``call_extern`` of the library function, tagged with the
attribute `LIBRARY_ATTR` (JSON: the function and its scalar parameters). Everything
after the lowering reads that tag through `library_call`:

* the plan (`compiler.plan`) records the library function a step runs;
* code generation builds no C for it: `model.c` calls the step adapter of
  ``runtime/c/src/kernel_steps.c`` (`LibraryCall.adapter`) with a ``const`` struct of the
  parameters (`LibraryCall.c_initializer`);
* kernel scratch (`compiler.workspace`, `compiler.codegen`): the library allocates
  nothing (its buffers are on the stack), so a library call needs none
  (`LIBRARY_SCRATCH_BYTES`).

The arguments of each call, in order (all ``DLTensor``s; constants are in ``weights.c``):

| function | arguments |
| --- | --- |
| ``qanas_conv2d_s8``, ``qanas_pointwise_conv_s8``, ``qanas_depthwise_conv2d_s8`` | input, weights, bias, multiplier, shift, output |
| ``qanas_avg_pool2d_s8`` | input, multiplier table, shift table, output |
| ``qanas_global_avg_pool_s8`` | input, output |
| ``qanas_add_s8``, ``qanas_mul_s8`` | a, b, output |
| ``qanas_resize_s8`` | input, rows table, cols table (`compiler.passes.resize_spec`), output |
| ``qanas_softmax_s8`` | input, output (rows of the last axis, any layout) |
| ``qanas_matmul_s8`` | a ``[batch][M][K]``, b ``[batch][K][N]`` (``[batch][N][K]`` with ``transpose_b``), multiplier, shift (per output column), output |
| ``qanas_inverted_residual_s8`` | input, [expand weights, bias, multiplier, shift], depthwise ..., project ..., [rescale multiplier, shift], output (a 1×1 stage's weights packed int4 when its ``expand_s4`` / ``project_s4``) |
| ``qanas_conv2d_s4``, ``qanas_pointwise_conv_s4`` | input, int4 weights packed two per byte (`compiler.kernels.packing_s4`), bias, multiplier, shift, output |
| ``qanas_patch_stage_s8`` | model input (NCHW), then per layer weights (packed int4 for the ``_S4`` kinds), bias, multiplier, shift, output (NHWC) |

The int4-weight calls' adapters are in ``runtime/c/src/kernel_steps_s4.c``
(``qanas/kernel_steps_s4.h``, `STEP_TYPES_S4`).

The fused inverted residual (its ring of expanded rows, `compiler.kernels.irb.scratch_bytes`)
and the patch stage (two tile buffers, `compiler.passes.offload_patch_stage.scratch_bytes`)
are the calls with arena scratch, carried in their parameters as ``scratch_bytes`` and
read by `library_scratch_bytes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

LIBRARY_ATTR = "qanas.library"
"""PrimFunc attribute of a library call: JSON ``{"function": ..., "params": {...}}``."""

LIBRARY_SCRATCH_BYTES = 0
"""Arena scratch of any library call: the kernels use a bounded stack buffer, no arena."""

STEP_TYPES = {
    "qanas_conv2d_s8": "qanas_conv_step_t",
    "qanas_pointwise_conv_s8": "qanas_conv_step_t",
    "qanas_depthwise_conv2d_s8": "qanas_conv_step_t",
    "qanas_avg_pool2d_s8": "qanas_pool_step_t",
    "qanas_global_avg_pool_s8": "qanas_global_pool_step_t",
    "qanas_add_s8": "qanas_add_step_t",
    "qanas_mul_s8": "qanas_mul_step_t",
    "qanas_inverted_residual_s8": "qanas_irb_step_t",
    "qanas_patch_stage_s8": "qanas_patch_step_t",
    "qanas_resize_s8": "qanas_resize_step_t",
    "qanas_softmax_s8": "qanas_softmax_step_t",
    "qanas_matmul_s8": "qanas_matmul_step_t",
}
"""Library function → the C struct of its step parameters (``qanas/kernel_steps.h``)."""

STEP_TYPES_S4 = {
    "qanas_conv2d_s4": "qanas_conv_step_t",
    "qanas_pointwise_conv_s4": "qanas_conv_step_t",
}
"""The int4-weight convolutions → their step struct (adapters in ``qanas/kernel_steps_s4.h``)."""

ALL_STEP_TYPES = {**STEP_TYPES, **STEP_TYPES_S4}
"""Every library function a graph may call."""


@dataclass(frozen=True)
class LibraryCall:
    """One library call of the graph (the tag of its PrimFunc).

    Attributes:
        function: the library function (a key of `ALL_STEP_TYPES`).
        params: its step parameters, nested as the C struct is (ints only).
    """

    function: str
    params: dict

    @property
    def adapter(self) -> str:
        """The step adapter ``model.c`` calls (``qanas_step_<function without qanas_>``)."""
        return "qanas_step_" + self.function.removeprefix("qanas_")

    @property
    def step_type(self) -> str:
        """The C struct type of the parameters."""
        return ALL_STEP_TYPES[self.function]

    @property
    def int4_weights(self) -> bool:
        """The call reads int4 weights (its adapter is in ``qanas/kernel_steps_s4.h``)."""
        return self.function in STEP_TYPES_S4

    def to_json(self) -> str:
        """The tag text (`LIBRARY_ATTR`)."""
        return json.dumps({"function": self.function, "params": self.params}, sort_keys=True)

    def c_initializer(self) -> str:
        """The parameters as a C designated initializer, one field a line, nested structs
        indented (``{\n  .conv = {\n    .in_h = 8,\n ...``); its closing brace unindented,
        for a definition at file scope."""
        return _initializer(self.params, 0)


_INDENT = "  "


def _initializer(value, depth: int) -> str:
    """`value` as a C initializer whose closing brace sits at `depth` indents: a dict's
    fields one a line, an array of numbers on one line (elements not given are zero)."""
    inner = _INDENT * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{0}"
        fields = "".join(f"{inner}.{k} = {_initializer(v, depth + 1)},\n"
                         for k, v in value.items())
        return "{\n" + fields + _INDENT * depth + "}"
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return "{" + ", ".join(_initializer(v, depth) for v in value) + "}"
        elements = "".join(f"{inner}{_initializer(v, depth + 1)},\n" for v in value)
        return "{\n" + elements + _INDENT * depth + "}"
    v = int(value)
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def library_scratch_bytes(call: LibraryCall) -> int:
    """Arena scratch of a library call, rounded up to the workspace alignment (16 bytes):
    ``scratch_bytes`` of its parameters, else `LIBRARY_SCRATCH_BYTES`."""
    size = int(call.params.get("scratch_bytes", LIBRARY_SCRATCH_BYTES))
    return -(-size // 16) * 16


def library_call(func) -> LibraryCall | None:
    """The `LibraryCall` a PrimFunc stands for, or None for a TVM kernel."""
    attrs = getattr(func, "attrs", None)
    if attrs is None or LIBRARY_ATTR not in attrs:
        return None
    tag = json.loads(str(attrs[LIBRARY_ATTR]))
    if tag.get("function") not in ALL_STEP_TYPES:
        raise ValueError(f"PrimFunc tagged {LIBRARY_ATTR} with unknown function "
                         f"{tag.get('function')!r}; known: {sorted(ALL_STEP_TYPES)}")
    return LibraryCall(tag["function"], tag["params"])


def library_calls(mod, kernels) -> dict[str, LibraryCall]:
    """Kernel name → `LibraryCall` for the `kernels` of `mod` that are library calls."""
    out = {}
    for kernel in dict.fromkeys(kernels):
        call = library_call(mod[kernel])
        if call is not None:
            out[kernel] = call
    return out
