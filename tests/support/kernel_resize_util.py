"""One `qanas_resize_s8` call as a `KernelCase`: the compiler's tables and the reference's
output. Used by tests/compiler/kernels/test_kernel_resize.py and benchmarks/mcu_resize.py.
"""

from __future__ import annotations

import numpy as np

from compiler import int8
from compiler.passes.resize_spec import ResizeSpec
from compiler.reference import kernels as ref
from tests.support.kernel_library_util import KernelCase


def resize_case(name: str, rng: np.random.Generator, *, h: int, w: int, c: int, out_hw,
                method: str = "linear", mode: str = "half_pixel",
                nearest_mode: str = "round_prefer_floor", nchw: bool = False,
                rescale: bool = True, relu: bool = False, gain: float | None = None,
                requant: tuple[int, int] | None = None, zx: int | None = None) -> KernelCase:
    """One `qanas_resize_s8` call: tables from `ResizeSpec`, expected output from the
    reference; ``gain`` is s_x / s_y (random in [0.3, 0.7) when None; a power of two
    makes exact ties; its multiplier's shift is −2 or below when < 0.25 for nearest,
    always for bilinear's s_x / (s_y D) of a small gain); ``requant`` a (multiplier,
    shift) in its place, ``zx`` the input zero point (random when None)."""
    ho, wo = out_hw
    gain = float(rng.uniform(0.3, 0.7)) if gain is None else gain
    x = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8)
    zx, zy = int(rng.integers(-100, 100)) if zx is None else zx, int(rng.integers(-20, 20))
    qmin, qmax = (max(-128, zy), 127) if relu else (-128, 127)
    spec = ResizeSpec.from_sizes(method, mode, nearest_mode, (h, w), out_hw)
    centred = x.astype(np.int64) - zx
    if method == "linear":
        (rows, dh), (cols, dw) = spec.linear_table(0), spec.linear_table(1)
        taps_h, taps_w = ref.linear_taps(h, ho, mode), ref.linear_taps(w, wo, mode)
        acc = ref.lerp(ref.lerp(centred, 2, taps_h), 3, taps_w)
        real = np.float64(gain) / (taps_h[4] * taps_w[4])
        assert (dh, dw) == (taps_h[4], taps_w[4])
    else:
        rows, cols = spec.nearest_indices(0), spec.nearest_indices(1)
        ri = ref.nearest_indices(h, ho, mode, nearest_mode)
        ci = ref.nearest_indices(w, wo, mode, nearest_mode)
        acc = centred[:, :, ri][:, :, :, ci]
        real = np.float64(gain)
    m, s = requant or (int(v) for v in int8.quantize_multiplier(real))
    if method == "nearest" and not rescale:
        y = x[:, :, ri][:, :, :, ci]
        m = s = 0
    else:
        y = int8.requantize(acc, m, s, zy, qmin, qmax)
    p = "{p}"
    params = (f"const qanas_resize_params_t {p}rp = {{{h}, {w}, {c}, {ho}, {wo}, "
              f"{1 if method == 'linear' else 0}, {int(rescale)}, {int(nchw)}, {zx}, {m}, "
              f"{s}, {zy}, {qmin}, {qmax}}};")
    return KernelCase(name, f"qanas_resize_s8(&{p}rp, {p}rows, {p}cols, {p}input, {p}output)",
                      {"input": x.transpose(0, 2, 3, 1), "rows": rows.astype(np.int32),
                       "cols": cols.astype(np.int32)},
                      y if nchw else y.transpose(0, 2, 3, 1), structs=[params])
