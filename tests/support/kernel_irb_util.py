"""Fused inverted-residual cases: the NumPy reference composition and the C call.

`irb_case` draws one block (seeded weights, biases, scales, zero points; int4 weights,
-8..7, for the 1×1 stages it names), packs it with
`compiler.kernels.irb.pack_inverted_residual` and computes the expected output as the
reference computes the unfused chain: each stage `compiler.reference.kernels.conv2d` on
``x − zp`` + bias, requantized by `compiler.int8.requantize`; the residual add with one
shared shift (`compiler.reference.groups.lower_elementwise`), its X operand first
rescaled (`compiler.reference.groups.rescale`) when the add's quantizer differs, as the
Relax chain of `compiler.passes.fuse_inverted_residual` does. The case runs in the
kernel-library driver (tests/support/kernel_library_util.py) on every ISA. Used by
tests/compiler/kernels/test_kernel_irb.py and benchmarks/mcu_irb.py.
"""

from __future__ import annotations

import numpy as np

from compiler import int8
from compiler.kernels import irb, packing
from compiler.kernels.irb import Stage
from compiler.reference import kernels as ref
from tests.support.kernel_library_util import KernelCase

#: Canary bytes after the scratch buffer of a checked case (must stay untouched).
CANARY = 16


def _requantize(acc: np.ndarray, rq: packing.Requant) -> np.ndarray:
    return int8.requantize(acc, rq.multiplier.reshape(1, -1, 1, 1).astype(np.int64),
                           rq.shift.reshape(1, -1, 1, 1).astype(np.int64), rq.zero_point,
                           rq.qmin, rq.qmax)


def _conv_stage(x: np.ndarray, zp: int, stage: irb.Stage, stride: int = 1,
                pads=(0, 0, 0, 0), dilation: int = 1, groups: int | None = None) -> np.ndarray:
    """requant(conv(x − zp) + bias): one unfused stage of the reference."""
    acc = ref.conv2d(x.astype(np.int64) - zp, stage.weights, (stride, stride), pads,
                     (dilation, dilation), stage.groups if groups is None else groups)
    bias = np.zeros(acc.shape[1], np.int64) if stage.bias is None else stage.bias
    return _requantize(acc + np.asarray(bias, np.int64).reshape(1, -1, 1, 1), stage.requant)


def irb_reference(x: np.ndarray, input_zero_point: int, expand: irb.Stage | None,
                  depthwise: irb.Stage, project: irb.Stage, stride: int, dilation: int,
                  pads: tuple[int, int, int, int], add: packing.AddParams | None = None,
                  rescale: packing.Requant | None = None) -> np.ndarray:
    """The block's int8 NCHW output from NCHW int8 ``x`` (pads in ONNX order)."""
    e, ze = x, input_zero_point
    if expand is not None:
        e, ze = _conv_stage(x, input_zero_point, expand), expand.requant.zero_point
    d = _conv_stage(e, ze, depthwise, stride, pads, dilation, groups=e.shape[1])
    p = _conv_stage(d, depthwise.requant.zero_point, project)
    if add is None:
        return p
    r = x
    if rescale is not None:
        r = int8.requantize(x.astype(np.int64) - input_zero_point, int(rescale.multiplier[0]),
                            int(rescale.shift[0]), rescale.zero_point, rescale.qmin,
                            rescale.qmax)
    ta = (r.astype(np.int64) - add.a_zero_point) * add.a_multiplier
    tb = (p.astype(np.int64) - add.b_zero_point) * add.b_multiplier
    y = int8.rounding_right_shift(ta - tb if add.subtract else ta + tb, add.right_shift)
    return np.clip(y + add.output_zero_point, add.qmin, add.qmax).astype(np.int8)


def _stage(rng: np.random.Generator, x: np.ndarray, zp_x: int, shape: tuple[int, ...],
           groups: int = 1, clamp: bool = True, wide: float = 0.04, int4: bool = False,
           **conv) -> tuple[irb.Stage, np.ndarray]:
    """A random stage on ``x`` and its reference output: int8 (``int4``: -8..7, packed
    two per byte) weights, int32 bias, a random
    output zero point, (``clamp``) a ReLU6-like clamp at random, and per-channel scales
    that spread each channel's accumulators over about ±60 (a share ``wide`` of them
    ≥ 0.25, the 64-bit requantization path, and some exact powers of two)."""
    w = rng.integers(-127, 128, shape).astype(np.int8)
    if int4:  # -8..7 from the same draws: an int4 block takes every other draw of its twin
        w >>= 4
    bias = rng.integers(-(1 << 12), 1 << 12, shape[0]).astype(np.int32)
    zp = int(rng.integers(-90, 60))
    qmin, qmax = (zp, min(127, zp + 110)) if clamp and rng.random() < 0.6 else (-128, 127)
    probe = irb.Stage(w, bias, packing.requant(1.0, shape[0], 0, -(2**31), 2**31 - 1), groups)
    acc = _conv_stage(x, zp_x, probe, **conv).astype(np.float64)
    spread = acc.std(axis=(0, 2, 3)) + np.abs(acc.mean(axis=(0, 2, 3))) + 1.0
    scales = 60.0 / spread * rng.uniform(0.6, 1.5, shape[0])
    scales = np.where(rng.random(shape[0]) < 0.2, 2.0 ** np.round(np.log2(scales)), scales)
    scales = np.where(rng.random(shape[0]) < wide, rng.uniform(0.25, 1.0, shape[0]), scales)
    stage = irb.Stage(w, bias, packing.requant(scales, shape[0], zp, qmin, qmax), groups,
                      int4)
    return stage, _conv_stage(x, zp_x, stage, **conv)


def irb_case(name: str, rng: np.random.Generator, *, h: int, w: int, cin: int,
             expanded: int | None, cout: int, k: int = 3, stride: int = 1,
             dilation: int = 1, pads: tuple[int, int, int, int] | None = None,
             residual: bool = False, rescale: bool = False, expand_groups: int = 1,
             project_groups: int = 1, in_place: bool = False, checked: bool = True,
             wide: float = 0.04, isa: str = "portable",
             int4: tuple[str, ...] = ()) -> KernelCase:
    """One `qanas_inverted_residual_s8` case; ``expanded`` None: no expand conv; ``int4``:
    the 1×1 stages (``"expand"``, ``"project"``) with int4 weights.

    ``pads`` default to "same" ((k − 1) · d / 2 each side). A ``checked`` case also
    returns status 98 when the C scratch size differs from `compiler.kernels.irb`'s, and
    96 when the kernel wrote past it; ``in_place`` runs with output = input; ``wide``:
    the share of requantization scales ≥ 0.25 (0 for timing: trained convs have none).
    """
    span = (k - 1) * dilation
    pads = pads or (span // 2, span // 2, span - span // 2, span - span // 2)
    x = rng.integers(-128, 128, (1, cin, h, w)).astype(np.int8)
    zx = int(rng.integers(-100, 100))
    ce = cin if expanded is None else expanded
    expand, e, ze = None, x, zx
    if expanded is not None:
        expand, e = _stage(rng, x, zx, (ce, cin // expand_groups, 1, 1), expand_groups,
                           wide=wide, int4="expand" in int4)
        ze = expand.requant.zero_point
    depthwise, d = _stage(rng, e, ze, (ce, 1, k, k), wide=wide, stride=stride, pads=pads,
                          dilation=dilation, groups=ce)
    project, _ = _stage(rng, d, depthwise.requant.zero_point,
                        (cout, ce // project_groups, 1, 1), project_groups, clamp=False,
                        wide=wide, int4="project" in int4)
    add = rescale_rq = None
    if residual:
        zr = zx
        if rescale:
            zr = int(rng.integers(-30, 30))
            rescale_rq = packing.requant(float(rng.choice([0.11, rng.uniform(0.3, 1.6)])),
                                         1, zr)
        zy = int(rng.integers(-20, 20))
        sa, sb = (float(v) for v in rng.uniform(0.02, 0.08, 2))
        sy = (sa + sb) * float(rng.uniform(0.7, 1.4))
        add = packing.add_params(sa, zr, sb, project.requant.zero_point, sy, zy)
    y = irb_reference(x, zx, expand, depthwise, project, stride, dilation, pads, add,
                      rescale_rq)
    _, _, ho, wo = y.shape
    geometry = irb.IRBGeometry(h, w, cin, ce, ho, wo, cout, k, stride, dilation, pads[0],
                               pads[1], residual)
    packed = irb.pack_inverted_residual(geometry, zx, expand, depthwise, project, add,
                                        rescale_rq, isa)
    macs = (0 if expand is None else h * w * ce * cin // expand_groups) + \
        ho * wo * ce * k * k + ho * wo * cout * ce // project_groups
    return packed_case(name, packed, x, y, macs, in_place=in_place, checked=checked)


def packed_case(name: str, packed: irb.PackedIRB, x: np.ndarray, expected: np.ndarray,
                macs: int = 0, in_place: bool = False, checked: bool = True) -> KernelCase:
    """The `KernelCase` running `packed` on NCHW int8 ``x`` (``expected``: NCHW int8);
    ``in_place`` and ``checked`` as in `irb_case`."""
    scratch = packed.scratch_bytes
    p = "{p}"
    source = f"{p}output" if in_place else f"{p}input"
    run = f"qanas_inverted_residual_s8(&{p}irb, {source}, {p}scratch, {p}output)"
    if in_place:
        run = f"(memcpy({p}output, {p}input, {x.size}), {run})"
    if checked:
        run = (f"(memset({p}scratch, 0x5a, {scratch + CANARY}), "
               f"qanas_inverted_residual_scratch_bytes(&{p}irb) != {scratch} ? 98 : "
               f"{run} != 0 ? 97 : "
               f"({p}scratch[{scratch}] != 0x5a || {p}scratch[{scratch + CANARY - 1}] != 0x5a)"
               f" ? 96 : 0)")
    arrays = {"input": x.transpose(0, 2, 3, 1), **packed.arrays()}
    return KernelCase(name, run, arrays, expected.transpose(0, 2, 3, 1), macs=macs,
                      structs=[f"const qanas_irb_params_t {p}irb = "
                               f"{packed.c_initializer(p)};"],
                      scratch=scratch + (CANARY if checked else 0))


def qdq_block(rng: np.random.Generator, *, h: int, w: int, cin: int, expanded: int | None,
              cout: int, k: int = 3, stride: int = 1, residual: str = "none",
              isa: str = "portable"):
    """A QDQ ONNX inverted residual as exporters write it, and the same block packed for
    `qanas_inverted_residual_s8` from its scales the way the reference derives them.

    QuantizeLinear(x) → [1×1 expand, Clip(0, 6)] → k×k depthwise, ReLU → 1×1 project,
    each conv with per-channel int8 weights and an int32 bias at the accumulator scale,
    each closed by a QuantizeLinear; ``residual``: ``"direct"`` adds DQ(x) to the project
    output, ``"shared"`` first re-quantizes x with the project's quantizer (Brevitas' shared
    quantizer: the Relax chain rescales X), ``"none"`` has no add.

    Returns:
        ``(model, packed, x)``: the ONNX model, the `irb.PackedIRB`, the int8 NCHW input.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    inits, nodes = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def quant(src: str, dst: str, scale: float, zp: int) -> tuple[str, float, int]:
        nodes.append(helper.make_node("QuantizeLinear", [src, const(dst + "_s", f32(scale)),
                                      const(dst + "_z", np.int8(zp))], [dst + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [dst + "_q", dst + "_s", dst + "_z"],
                                      [dst]))
        return dst, float(f32(scale)), zp

    def conv(src, name, s_in, shape, out_scale, out_zp, act, groups=1, **attrs):
        wq = rng.integers(-127, 128, shape).astype(np.int8)
        sw = rng.uniform(0.002, 0.02, shape[0]).astype(f32)
        bias = rng.integers(-3000, 3000, shape[0]).astype(np.int32)
        nodes.append(helper.make_node(
            "DequantizeLinear", [const(name + "_w", wq), const(name + "_ws", sw),
                                 const(name + "_wz", np.zeros(shape[0], np.int8))],
            [name + "_wf"], axis=0))
        nodes.append(helper.make_node(
            "DequantizeLinear", [const(name + "_b", bias),
                                 const(name + "_bs", (f32(s_in) * sw).astype(f32)),
                                 const(name + "_bz", np.zeros(shape[0], np.int32))],
            [name + "_bf"], axis=0))
        nodes.append(helper.make_node("Conv", [src, name + "_wf", name + "_bf"], [name + "_c"],
                                      group=groups, kernel_shape=list(shape[2:]), **attrs))
        lo, hi = -128, 127
        out = name + "_c"
        if act == "relu6":
            nodes.append(helper.make_node("Clip", [out, const(name + "_lo", f32(0)),
                                                   const(name + "_hi", f32(6))], [name + "_a"]))
            lo = max(lo, out_zp)
            hi = min(hi, int(int8.quantize(6.0, out_scale, out_zp)))
            out = name + "_a"
        elif act == "relu":
            nodes.append(helper.make_node("Relu", [out], [name + "_a"]))
            lo, out = max(lo, out_zp), name + "_a"
        real = np.float64(s_in) * sw.astype(np.float64) / np.float64(f32(out_scale))
        stage = Stage(wq, bias, packing.requant(real, shape[0], out_zp, lo, hi), groups)
        return quant(out, name, out_scale, out_zp), stage

    sx, zx = 0.05, int(rng.integers(-20, 20))
    x = rng.integers(-128, 128, (1, cin, h, w)).astype(np.int8)
    xf = quant("x", "xin", sx, zx)
    ce = cin if expanded is None else expanded
    cur, expand = xf, None
    if expanded is not None:
        cur, expand = conv(xf[0], "expand", sx, (ce, cin, 1, 1), 0.04, -128, "relu6")
    pad = (k - 1) // 2
    cur, depthwise = conv(cur[0], "dw", cur[1], (ce, 1, k, k), 0.04, -128, "relu", ce,
                          pads=[pad] * 4, strides=[stride] * 2)
    proj, project = conv(cur[0], "proj", cur[1], (cout, ce, 1, 1), 0.08, int(rng.integers(-9, 9)),
                         None)
    add = rescale = None
    if residual != "none":
        a = xf
        if residual == "shared":
            a = quant(xf[0], "xres", proj[1], proj[2])
            rescale = packing.requant(xf[1] / a[1], 1, a[2])
        nodes.append(helper.make_node("Add", [proj[0], a[0]], ["sum"]))
        _, sy, zy = quant("sum", "y", 0.1, 3)
        add = packing.add_params(a[1], a[2], proj[1], proj[2], sy, zy)
    nodes[-1].output[0] = "y"  # the graph output: the last DequantizeLinear (proj's or y's)
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    graph = helper.make_graph(
        nodes, "irb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, ho, wo])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    geometry = irb.IRBGeometry(h, w, cin, ce, ho, wo, cout, k, stride, 1, pad, pad,
                               residual != "none")
    packed = irb.pack_inverted_residual(geometry, zx, expand, depthwise, project, add, rescale,
                                        isa)
    return model, packed, x
