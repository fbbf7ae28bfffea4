"""Int4-weight convolution cases for the kernel-library driver
(tests/support/kernel_library_util.py).

`s4_conv_case` draws a seeded convolution with int4 weights (-8..7), packs them with
`compiler.kernels.packing_s4`, folds the input zero point into the bias as the int8
packing does, and computes the expected output as the reference does: the integer
`compiler.reference.kernels.conv2d` of ``x − zp`` + bias, requantized by
`compiler.int8.requantize`. `int8_twin` is the same convolution through the int8 kernel
(the same integer weights stored a byte each), for the MAC-per-instruction comparison of
benchmarks/mcu_int4.py. Used by tests/compiler/kernels/test_int4_kernels.py and that benchmark.
"""

from __future__ import annotations

import numpy as np

from compiler import int8
from compiler.kernels import packing, packing_s4
from compiler.reference import kernels as ref
from tests.support.kernel_library_util import KernelCase, random_scales


def s4_conv_case(name: str, rng: np.random.Generator, *, h: int, w: int, cin: int,
                 cout: int, k: int = 3, stride: int = 1, dilation: int = 1,
                 pads=(1, 1, 1, 1), groups: int = 1, pointwise: bool = False,
                 narrow: bool = False) -> KernelCase:
    """A ``qanas_conv2d_s4`` (``pointwise``: ``qanas_pointwise_conv_s4`` over the h·w
    pixels) case; ``pads`` in ONNX order; ``narrow``: weights in [-7, 7]."""
    x = rng.integers(-128, 128, (1, cin, h, w)).astype(np.int8)
    zx, zy = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    wt = rng.integers(-7 if narrow else -8, 8, (cout, cin // groups, k, k)).astype(np.int8)
    bias = rng.integers(-(1 << 14), 1 << 14, cout).astype(np.int32)
    qmin, qmax = (-128, 127) if rng.random() < 0.5 else (max(-128, zy), 127)
    depth = (cin // groups) * k * k
    rq = packing.requant(random_scales(rng, cout, reduction=depth) * 16, cout, zy, qmin, qmax)
    acc = ref.conv2d(x.astype(np.int64) - zx, wt, (stride, stride), pads,
                     (dilation, dilation), groups) + bias.reshape(1, -1, 1, 1)
    y = int8.requantize(acc, rq.multiplier.reshape(1, -1, 1, 1).astype(np.int64),
                        rq.shift.reshape(1, -1, 1, 1).astype(np.int64), zy, qmin, qmax)
    _, _, ho, wo = y.shape
    folded = packing.pack_conv(wt, bias, zx, groups, "portable").bias
    p = "{p}"
    if pointwise:
        call = (f"qanas_pointwise_conv_s4({h * w}, {cin}, {cout}, {p}input, "
                f"(const uint8_t *){p}weights, {p}bias, &{p}rq, {p}output)")
        structs = []
    else:
        call = (f"qanas_conv2d_s4(&{p}cp, {p}input, (const uint8_t *){p}weights, {p}bias, "
                f"&{p}rq, {p}output)")
        structs = [f"const qanas_conv_params_t {p}cp = {{{h}, {w}, {cin}, {ho}, {wo}, {cout}, "
                   f"{k}, {k}, {stride}, {stride}, {dilation}, {dilation}, {pads[0]}, "
                   f"{pads[1]}, {groups}, 1, {zx}}};"]
    structs.append(f"const qanas_requant_t {p}rq = {{{p}mult, {p}shift, {rq.zero_point}, "
                   f"{rq.qmin}, {rq.qmax}}};")
    return KernelCase(
        name, call,
        {"input": x.transpose(0, 2, 3, 1), "weights": packing_s4.pack_conv(wt).view(np.int8),
         "bias": folded, "mult": rq.multiplier, "shift": rq.shift},
        y.transpose(0, 2, 3, 1), macs=int(acc.size * depth), structs=structs)


def int8_twin(case: KernelCase, isa: str = "portable") -> KernelCase:
    """`case` run by the int8 kernel (``qanas_conv2d_s8`` / ``qanas_pointwise_conv_s8``)
    on the same integer weights, a byte each in the layout the `isa` build reads (OHWI,
    or Helium's interleaved blocks for ``"mve"``; `case` ungrouped): the same output."""
    rows = case.arrays["weights"].view(np.uint8).reshape(case.arrays["bias"].size, -1)
    depth = case.macs // case.expected.size
    weights = packing_s4.unpack_rows(rows, depth)
    if isa == "mve":
        weights = packing.mve_interleave(weights)
    call = (case.call.replace("_s4(", "_s8(").replace("(const uint8_t *)", ""))
    return KernelCase(f"{case.name}_int8", call, {**case.arrays, "weights": weights},
                      case.expected, macs=case.macs, structs=case.structs)


__all__ = ["int8_twin", "s4_conv_case"]
