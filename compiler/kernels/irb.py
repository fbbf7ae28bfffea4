"""The fused inverted residual of the kernel library: its constants and its scratch size.

`qanas_inverted_residual_s8` (``runtime/c/kernels/qk_irb.c``, docs/kernels.md) computes one
MobileNetV2 / MBConv / SqueezeNAS block — expand 1×1 → depthwise k×k → project 1×1
(+ residual add) — output row by output row, its expanded rows in a ring buffer inside a
caller's scratch buffer. This module packs the block's constants into the one
``qanas_irb_params_t`` the C reads (`pack_inverted_residual`, rendered as C by
`PackedIRB.c_definition`) and states the scratch size (`scratch_bytes`), the same formula
as the C's ``qanas_inverted_residual_scratch_bytes``: the memory planner sizes the scratch
from this one.

The expand and project stages take int8 weights (`packing.pack_conv`, in the ISA's layout)
or, for a stage whose `Stage.int4` is set, 4-bit weights packed two per byte
(`packing_s4.pack_conv_folded`, the int4 convolutions' rows on every ISA), each stage on
its own; the C then runs that stage on ``qanas_pointwise_conv_s4`` / ``qanas_conv2d_s4``.
The depthwise is int8.

Each stage's bias has that stage's input zero point folded in (`packing.pack_conv` /
`packing.pack_depthwise`): X's for expand, E's for the depthwise (also the value of its
padding), D's for project; the zero points are taken from the `packing.Requant` of the
stage before, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.kernels import packing, packing_s4

#: Largest depthwise kernel the C takes (``QK_IRB_MAX_KERNEL``).
MAX_KERNEL = 16

#: Output pixels the C runs through depthwise → project → residual at a time
#: (``QK_IRB_CHUNK``): the depthwise and project outputs exist for this many pixels.
CHUNK_PIXELS = 8


@dataclass(frozen=True)
class IRBGeometry:
    """Shapes of one block (NHWC, batch 1), as ``qanas_irb_params_t`` holds them.

    Attributes:
        in_h, in_w, in_c: the block input X.
        expanded_c: channels of the expanded tensor E and the depthwise output D
            (``in_c`` for a block without expansion).
        out_h, out_w, out_c: the block output Y (the output size is given, not derived, so
            ONNX's rounding is kept; bottom/right padding follows from it).
        kernel, stride, dilation: the depthwise (square).
        pad_top, pad_left: the depthwise's padding.
        residual: the block ends with a residual add.
    """

    in_h: int
    in_w: int
    in_c: int
    expanded_c: int
    out_h: int
    out_w: int
    out_c: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    pad_top: int = 0
    pad_left: int = 0
    residual: bool = False

    def __post_init__(self):
        sizes = (self.in_h, self.in_w, self.in_c, self.expanded_c, self.out_h, self.out_w,
                 self.out_c, self.kernel, self.stride, self.dilation)
        if min(sizes) < 1 or min(self.pad_top, self.pad_left) < 0:
            raise ValueError(f"inverted residual geometry must have positive sizes and "
                             f"non-negative padding, got {self}")
        if self.kernel > MAX_KERNEL:
            raise ValueError(f"depthwise kernel {self.kernel} exceeds the fused kernel's "
                             f"maximum {MAX_KERNEL}; run the block unfused")
        if self.residual and (self.stride != 1 or (self.out_h, self.out_w, self.out_c)
                              != (self.in_h, self.in_w, self.in_c)):
            raise ValueError("a residual block keeps its shape (stride 1, output shape = "
                             f"input shape), got {self}")

    @property
    def ring_rows(self) -> int:
        """Rows of the ring: the depthwise's dilated extent ``(k − 1) · d + 1``."""
        return (self.kernel - 1) * self.dilation + 1

    @property
    def pad_right(self) -> int:
        """Zero-point columns right of the input that the last window reads."""
        return max(0, (self.out_w - 1) * self.stride + self.ring_rows - self.pad_left
                   - self.in_w)

    @property
    def expanded_bytes(self) -> int:
        """Bytes of the full expanded tensor E (what the fused kernel never holds)."""
        return self.in_h * self.in_w * self.expanded_c


def scratch_bytes(geometry: IRBGeometry) -> int:
    """Bytes of scratch `qanas_inverted_residual_s8` needs (= the C's
    ``qanas_inverted_residual_scratch_bytes``).

    The ring (``ring_rows`` rows of ``(pad_left + in_w + pad_right) · expanded_c`` bytes),
    the depthwise output of ``min(out_w, CHUNK_PIXELS)`` pixels and, with a residual,
    their project output (``· out_c``, so the block can run in place).
    """
    g = geometry
    ring = g.ring_rows * (g.pad_left + g.in_w + g.pad_right) * g.expanded_c
    chunk = min(g.out_w, CHUNK_PIXELS)
    return ring + chunk * g.expanded_c + (chunk * g.out_c if g.residual else 0)


@dataclass(frozen=True)
class Stage:
    """One convolution of the block before packing.

    Attributes:
        weights: int8 in ONNX order: ``(O, I / groups, 1, 1)`` for expand / project,
            ``(C, 1, k, k)`` for the depthwise.
        bias: int32 ``(O,)`` at the accumulator scale ``s_in · s_w[o]``, or None.
        requant: the stage's output requantization (`packing.requant`): multipliers,
            shifts, output zero point, clamp (ReLU / ReLU6 folded in).
        groups: groups of a 1×1 conv (1 for the depthwise).
        int4: the weights are 4-bit values (-8..7), stored packed two per byte (expand and
            project only).
    """

    weights: np.ndarray
    bias: np.ndarray | None
    requant: packing.Requant
    groups: int = 1
    int4: bool = False


@dataclass(frozen=True)
class PackedIRB:
    """The constants of one ``qanas_irb_params_t`` (`pack_inverted_residual`).

    Attributes:
        geometry: the block's shapes.
        input_zero_point: X's zero point.
        expand, depthwise, project: packed weights and folded biases (expand None without
            expansion); uint8 packed int4 rows for the stages in `int4_stages`.
        expand_rq, depthwise_rq, project_rq: requantizations (expand_rq None without).
        expand_groups, project_groups: groups of the 1×1 convs.
        residual_rescale: X's rescale to the add's scale, or None (X read as it is).
        add: the residual add's constants (`packing.add_params`, a = X or its rescale,
            b = P), None without a residual.
        int4_stages: the 1×1 stages (``"expand"``, ``"project"``) with int4 weights.
    """

    geometry: IRBGeometry
    input_zero_point: int
    expand: packing.PackedConv | None
    expand_rq: packing.Requant | None
    expand_groups: int
    depthwise: packing.PackedConv
    depthwise_rq: packing.Requant
    project: packing.PackedConv
    project_rq: packing.Requant
    project_groups: int
    residual_rescale: packing.Requant | None
    add: packing.AddParams | None
    int4_stages: frozenset[str] = frozenset()

    @property
    def scratch_bytes(self) -> int:
        """`scratch_bytes` of the block."""
        return scratch_bytes(self.geometry)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every constant array, by the suffix `c_initializer` names it with (int4 weights:
        ``<stage>_weights_s4``), in the order of the step's arguments."""
        out: dict[str, np.ndarray] = {}
        stages = (("expand", self.expand, self.expand_rq),
                  ("depthwise", self.depthwise, self.depthwise_rq),
                  ("project", self.project, self.project_rq))
        for name, conv, rq in stages:
            if conv is not None:
                weights = f"{name}_weights" + ("_s4" if name in self.int4_stages else "")
                out[weights], out[f"{name}_bias"] = conv.weights, conv.bias
                out[f"{name}_mult"], out[f"{name}_shift"] = rq.multiplier, rq.shift
        if self.residual_rescale is not None:
            out["rescale_mult"] = self.residual_rescale.multiplier
            out["rescale_shift"] = self.residual_rescale.shift
        return out

    def c_initializer(self, prefix: str) -> str:
        """The ``qanas_irb_params_t`` initializer (C99 designated), its arrays named
        ``<prefix><suffix>`` (`arrays`)."""
        g = self.geometry
        arrays = self.arrays()

        def ref(suffix: str) -> str:
            return f"{prefix}{suffix}" if suffix in arrays else "0"

        def rq(name: str, r: packing.Requant | None) -> str:
            if r is None:
                return "{0, 0, 0, -128, 127}"
            return (f"{{{ref(name + '_mult')}, {ref(name + '_shift')}, {r.zero_point}, "
                    f"{r.qmin}, {r.qmax}}}")

        a = self.add
        add = ("{0, 0, 0, 0, 1, 0, 0, -128, 127}" if a is None else
               f"{{{a.a_zero_point}, {a.b_zero_point}, {a.a_multiplier}, {a.b_multiplier}, "
               f"{a.right_shift}, {int(a.subtract)}, {a.output_zero_point}, {a.qmin}, "
               f"{a.qmax}}}")
        fields = [
            f".in_h = {g.in_h}", f".in_w = {g.in_w}", f".in_c = {g.in_c}",
            f".expanded_c = {g.expanded_c}", f".out_h = {g.out_h}", f".out_w = {g.out_w}",
            f".out_c = {g.out_c}", f".kernel = {g.kernel}", f".stride = {g.stride}",
            f".dilation = {g.dilation}", f".pad_top = {g.pad_top}",
            f".pad_left = {g.pad_left}", f".input_zero_point = {self.input_zero_point}",
            f".expand_groups = {self.expand_groups}",
            f".expand_weights = {ref('expand_weights')}",
            f".expand_bias = {ref('expand_bias')}", f".expand_rq = {rq('expand', self.expand_rq)}",
            f".depthwise_weights = {ref('depthwise_weights')}",
            f".depthwise_bias = {ref('depthwise_bias')}",
            f".depthwise_rq = {rq('depthwise', self.depthwise_rq)}",
            f".project_groups = {self.project_groups}",
            f".project_weights = {ref('project_weights')}",
            f".project_bias = {ref('project_bias')}",
            f".project_rq = {rq('project', self.project_rq)}",
            f".residual = {int(g.residual)}",
            f".residual_rescale = {int(self.residual_rescale is not None)}",
            f".residual_rq = {rq('rescale', self.residual_rescale)}", f".add = {add}",
            f".expand_weights_s4 = {ref('expand_weights_s4')}",
            f".project_weights_s4 = {ref('project_weights_s4')}",
        ]
        return "{" + ", ".join(fields) + "}"

    def c_definition(self, name: str) -> str:
        """C source defining ``const qanas_irb_params_t <name>`` and its arrays
        (``static const``, named ``<name>_<suffix>``). A weights file that renders arrays
        itself (placement, alignment) takes `arrays` and `c_initializer` instead."""
        types = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t",
                 np.dtype(np.int32): "int32_t"}
        lines = []
        for suffix, a in self.arrays().items():
            flat = np.ascontiguousarray(a).reshape(-1)
            body = ",".join("(-2147483647 - 1)" if int(v) == -(2**31) else str(int(v))
                            for v in flat)
            lines.append(f"static const {types[flat.dtype]} {name}_{suffix}[{flat.size}] = "
                         f"{{{body}}};")
        lines.append(f"const qanas_irb_params_t {name} = {self.c_initializer(name + '_')};")
        return "\n".join(lines) + "\n"


def _check_shape(what: str, weights: np.ndarray, expected: tuple[int, ...]) -> None:
    if tuple(np.shape(weights)) != expected:
        raise ValueError(f"{what} weights have shape {tuple(np.shape(weights))}, expected "
                         f"{expected} for the block's geometry")


def pack_inverted_residual(geometry: IRBGeometry, input_zero_point: int,
                           expand: Stage | None, depthwise: Stage, project: Stage,
                           add: packing.AddParams | None = None,
                           residual_rescale: packing.Requant | None = None,
                           isa: str = "portable") -> PackedIRB:
    """Packs one block's constants for `qanas_inverted_residual_s8`.

    Args:
        geometry: the block's shapes.
        input_zero_point: X's zero point.
        expand: the expand 1×1 conv, None for a block without expansion.
        depthwise: the depthwise conv (``groups`` ignored).
        project: the project 1×1 conv.
        add: the residual add (`packing.add_params` with a = X, or X rescaled, and
            b = P), required exactly when ``geometry.residual``.
        residual_rescale: X's rescale to the add's a-operand quantization (one
            multiplier, `packing.requant`), None when the add reads X itself.
        isa: the target's path (`compiler.kernels.isa_for_cpu`): the 1×1 weights are
            laid out for it (`packing.pack_conv`).

    Returns:
        The packed constants (`PackedIRB.c_definition` renders them).

    Raises:
        ValueError: weights that do not match the geometry, or zero points of the add
            that differ from the tensors it reads.
    """
    g = geometry
    if expand is not None:
        _check_shape("expand", expand.weights, (g.expanded_c, g.in_c // expand.groups, 1, 1))
    elif g.expanded_c != g.in_c:
        raise ValueError(f"a block without expand conv has expanded_c == in_c, got "
                         f"{g.expanded_c} != {g.in_c}")
    _check_shape("depthwise", depthwise.weights, (g.expanded_c, 1, g.kernel, g.kernel))
    _check_shape("project", project.weights, (g.out_c, g.expanded_c // project.groups, 1, 1))
    if (add is None) == g.residual:
        raise ValueError(f"the add's constants are needed exactly when the geometry has a "
                         f"residual (geometry.residual={g.residual}, add given: "
                         f"{add is not None})")
    zp_e = expand.requant.zero_point if expand is not None else int(input_zero_point)
    if add is not None:
        zp_a = (residual_rescale.zero_point if residual_rescale is not None
                else int(input_zero_point))
        if (add.a_zero_point, add.b_zero_point) != (zp_a, project.requant.zero_point):
            raise ValueError(f"the residual add reads zero points ({add.a_zero_point}, "
                             f"{add.b_zero_point}) but its operands have ({zp_a}, "
                             f"{project.requant.zero_point}); a = X (or its rescale), b = P")
    if residual_rescale is not None and len(residual_rescale.multiplier) != 1:
        raise ValueError("the residual rescale is per tensor: one multiplier and shift")
    if depthwise.int4:
        raise ValueError("the fused kernel's depthwise is int8; give its int4 values as int8 "
                         "weights (Stage.int4 False)")
    return PackedIRB(
        geometry=g, input_zero_point=int(input_zero_point),
        expand=None if expand is None else _pack_pointwise(expand, input_zero_point, isa),
        expand_rq=None if expand is None else expand.requant,
        expand_groups=1 if expand is None else expand.groups,
        depthwise=packing.pack_depthwise(depthwise.weights, depthwise.bias, zp_e),
        depthwise_rq=depthwise.requant,
        project=_pack_pointwise(project, depthwise.requant.zero_point, isa),
        project_rq=project.requant, project_groups=project.groups,
        residual_rescale=residual_rescale, add=add,
        int4_stages=frozenset(name for name, stage in (("expand", expand), ("project", project))
                              if stage is not None and stage.int4))


def _pack_pointwise(stage: Stage, input_zero_point: int, isa: str) -> packing.PackedConv:
    """An expand / project stage packed: int4 rows (every ISA) or int8 in `isa`'s layout."""
    if stage.int4:
        return packing_s4.pack_conv_folded(stage.weights, stage.bias, input_zero_point)
    return packing.pack_conv(stage.weights, stage.bias, input_zero_point, stage.groups, isa)
