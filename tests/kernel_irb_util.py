"""Fused inverted-residual cases: the NumPy reference composition and the C call.

`irb_case` draws one block (seeded weights, biases, scales, zero points), packs it with
`compiler.kernels.irb.pack_inverted_residual` and computes the expected output as the
reference computes the unfused chain: each stage `compiler.reference.kernels.conv2d` on
``x − zp`` + bias, requantized by `compiler.int8.requantize`; the residual add with one
shared shift (`compiler.reference.groups.lower_elementwise`), its X operand first
rescaled (`compiler.reference.groups.rescale`) when the add's quantizer differs, as the
Relax chain of `compiler.passes.fuse_inverted_residual` does. The case runs in the
kernel-library driver (tests/kernel_library_util.py) on every ISA. Used by
tests/test_kernel_irb.py and benchmarks/mcu_irb.py.
"""

from __future__ import annotations

import numpy as np

from compiler import int8
from compiler.kernels import irb, packing
from compiler.reference import kernels as ref
from tests.kernel_library_util import KernelCase

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
           groups: int = 1, clamp: bool = True, wide: float = 0.04,
           **conv) -> tuple[irb.Stage, np.ndarray]:
    """A random stage on ``x`` and its reference output: int8 weights, int32 bias, a random
    output zero point, (``clamp``) a ReLU6-like clamp at random, and per-channel scales
    that spread each channel's accumulators over about ±60 (a share ``wide`` of them
    ≥ 0.25, the 64-bit requantization path, and some exact powers of two)."""
    w = rng.integers(-127, 128, shape).astype(np.int8)
    bias = rng.integers(-(1 << 12), 1 << 12, shape[0]).astype(np.int32)
    zp = int(rng.integers(-90, 60))
    qmin, qmax = (zp, min(127, zp + 110)) if clamp and rng.random() < 0.6 else (-128, 127)
    probe = irb.Stage(w, bias, packing.requant(1.0, shape[0], 0, -(2**31), 2**31 - 1), groups)
    acc = _conv_stage(x, zp_x, probe, **conv).astype(np.float64)
    spread = acc.std(axis=(0, 2, 3)) + np.abs(acc.mean(axis=(0, 2, 3))) + 1.0
    scales = 60.0 / spread * rng.uniform(0.6, 1.5, shape[0])
    scales = np.where(rng.random(shape[0]) < 0.2, 2.0 ** np.round(np.log2(scales)), scales)
    scales = np.where(rng.random(shape[0]) < wide, rng.uniform(0.25, 1.0, shape[0]), scales)
    stage = irb.Stage(w, bias, packing.requant(scales, shape[0], zp, qmin, qmax), groups)
    return stage, _conv_stage(x, zp_x, stage, **conv)


def irb_case(name: str, rng: np.random.Generator, *, h: int, w: int, cin: int,
             expanded: int | None, cout: int, k: int = 3, stride: int = 1,
             dilation: int = 1, pads: tuple[int, int, int, int] | None = None,
             residual: bool = False, rescale: bool = False, expand_groups: int = 1,
             project_groups: int = 1, in_place: bool = False, checked: bool = True,
             wide: float = 0.04, isa: str = "portable") -> KernelCase:
    """One `qanas_inverted_residual_s8` case; ``expanded`` None: no expand conv.

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
                           wide=wide)
        ze = expand.requant.zero_point
    depthwise, d = _stage(rng, e, ze, (ce, 1, k, k), wide=wide, stride=stride, pads=pads,
                          dilation=dilation, groups=ce)
    project, _ = _stage(rng, d, depthwise.requant.zero_point,
                        (cout, ce // project_groups, 1, 1), project_groups, clamp=False,
                        wide=wide)
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
    macs = (0 if expand is None else h * w * ce * cin // expand_groups) + \
        ho * wo * ce * k * k + ho * wo * cout * ce // project_groups
    arrays = {"input": x.transpose(0, 2, 3, 1), **packed.arrays()}
    return KernelCase(name, run, arrays, y.transpose(0, 2, 3, 1), macs=macs,
                      structs=[f"const qanas_irb_params_t {p}irb = "
                               f"{packed.c_initializer(p)};"],
                      scratch=scratch + (CANARY if checked else 0))
