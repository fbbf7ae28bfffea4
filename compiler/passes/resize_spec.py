"""ONNX Resize as exact integer tables: the source coordinates of every output pixel.

`ResizeSpec` is one ONNX Resize over the spatial axes of an NCHW tensor, with the
*given* scale of each axis (the ONNX specification computes the source coordinate from
the scale when ``scales`` is given, not from ``n_out / n_in``: a 0.6 downsample of 4
pixels has 2 outputs read at 2/3·… not at 4/2·…). Coordinates are computed at compile
time in exact rational arithmetic, so nearest picks the specification's pixel even on a
tie and bilinear weights are exact fractions:

* `nearest_indices`: the input index of each output index along one axis;
* `linear_taps`: ``(i0, i1, w0, w1, D)``, integer weights over the common denominator
  ``D`` of the fractional parts (``D = 4`` for a 2× half-pixel upsample); above
  ``MAX_DENOMINATOR`` the weights are rounded to 1/2^11.

The float frontend (`compiler.frontend.onnx_ops`), the int8 lowering
(`compiler.passes.lower_resize`) and the fused argmax (`compiler.passes.append_argmax`)
all read these tables, so the three agree by construction; the NumPy reference
(`compiler.reference.kernels`) derives them independently.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

MAX_DENOMINATOR = 1 << 11
"""Largest exact weight denominator per axis; beyond it weights are rounded to 1/2^11."""

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                    "align_corners", "asymmetric", "tf_half_pixel_for_nn")
"""The ``coordinate_transformation_mode`` values the compiler implements."""

NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
"""The ``nearest_mode`` values the compiler implements."""



def exact_scale(value: float) -> Fraction:
    """The rational an ONNX float32 ``scales`` entry stands for.

    The fraction ``p / q`` with the smallest denominator ``q <= 2^16`` that rounds to the
    same float32, so ``0.6`` means 3/5 and ``2`` means 2; a value with no such fraction
    is taken exactly as stored.
    """
    target = np.float32(value)
    for q in range(1, (1 << 16) + 1):
        p = round(float(target) * q)
        if p > 0 and np.float32(p / q) == target:
            return Fraction(p, q)
    return Fraction(float(target))


@dataclass(frozen=True)
class ResizeSpec:
    """One ONNX Resize over H and W of an NCHW tensor.

    Attributes:
        method: ``"nearest"`` or ``"linear"``.
        coordinate_mode: ONNX ``coordinate_transformation_mode`` (`COORDINATE_MODES`).
        nearest_mode: ONNX ``nearest_mode`` (`NEAREST_MODES`); ignored for linear.
        in_hw: input (H, W).
        out_hw: output (H, W).
        scales: the scale of H and W as exact fractions (``sizes / in`` when the model
            gives ``sizes``).
    """

    method: str
    coordinate_mode: str
    nearest_mode: str
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    scales: tuple[Fraction, Fraction]

    def __post_init__(self):
        if self.method not in ("nearest", "linear"):
            raise ValueError(f"Resize method {self.method!r}: use 'nearest' or 'linear'")
        if self.coordinate_mode not in COORDINATE_MODES:
            raise ValueError(f"coordinate_transformation_mode {self.coordinate_mode!r} is not "
                             f"implemented; use one of {', '.join(COORDINATE_MODES)}")
        if self.method == "nearest" and self.nearest_mode not in NEAREST_MODES:
            raise ValueError(f"nearest_mode {self.nearest_mode!r}: use one of "
                             f"{', '.join(NEAREST_MODES)}")

    @classmethod
    def from_sizes(cls, method: str, coordinate_mode: str, nearest_mode: str,
                   in_hw, out_hw) -> ResizeSpec:
        """A spec whose scales are ``out / in`` (ONNX ``sizes``, or a plain resize2d)."""
        in_hw, out_hw = tuple(int(v) for v in in_hw), tuple(int(v) for v in out_hw)
        return cls(method, coordinate_mode, nearest_mode, in_hw, out_hw,
                   tuple(Fraction(o, i) for i, o in zip(in_hw, out_hw, strict=True)))

    def to_json(self) -> str:
        """A JSON string of the spec (scales as ``"p/q"``), for a PrimFunc attribute."""
        d = asdict(self)
        d["scales"] = [str(s) for s in self.scales]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ResizeSpec:
        """Inverse of `to_json`."""
        d = json.loads(text)
        return cls(d["method"], d["coordinate_mode"], d["nearest_mode"], tuple(d["in_hw"]),
                   tuple(d["out_hw"]), tuple(Fraction(s) for s in d["scales"]))

    def axis(self, a: int) -> tuple[int, int, Fraction]:
        """``(n_in, n_out, scale)`` of spatial axis ``a`` (0 = H, 1 = W)."""
        return self.in_hw[a], self.out_hw[a], self.scales[a]

    def nearest_indices(self, a: int) -> np.ndarray:
        """int32 input index of each output index along axis ``a`` (clamped to the input)."""
        n_in, n_out, scale = self.axis(a)
        out = []
        for o in range(n_out):
            x = source_coordinate(o, n_in, n_out, scale, self.coordinate_mode)
            fl = math.floor(x)
            if self.nearest_mode == "floor":
                i = fl
            elif self.nearest_mode == "ceil":
                i = math.ceil(x)
            elif self.nearest_mode == "round_prefer_ceil":
                i = fl + 1 if x - fl >= Fraction(1, 2) else fl
            else:
                i = fl + 1 if x - fl > Fraction(1, 2) else fl
            out.append(min(max(i, 0), n_in - 1))
        return np.array(out, dtype=np.int32)

    def linear_taps(self, a: int):
        """``(i0, i1, w0, w1, D)`` along axis ``a``: int32 indices and weights over ``D``."""
        n_in, n_out, scale = self.axis(a)
        i0, i1, fracs = [], [], []
        for o in range(n_out):
            x = source_coordinate(o, n_in, n_out, scale, self.coordinate_mode)
            x = min(max(x, Fraction(0)), Fraction(n_in - 1))
            fl = math.floor(x)
            i0.append(fl)
            i1.append(min(fl + 1, n_in - 1))
            fracs.append(x - fl)
        denom = math.lcm(*(f.denominator for f in fracs))
        if denom <= MAX_DENOMINATOR:
            w1 = [int(f * denom) for f in fracs]
        else:
            denom = MAX_DENOMINATOR
            w1 = [round(f * denom) for f in fracs]  # Fraction rounding: half to even
        w1 = np.array(w1, dtype=np.int32)
        return np.array(i0, np.int32), np.array(i1, np.int32), denom - w1, w1, denom

    def linear_table(self, a: int) -> tuple[np.ndarray, int]:
        """Axis ``a``'s taps packed as one int32 ``(4, n_out)`` table ``[i0, i1, w0, w1]``."""
        i0, i1, w0, w1, denom = self.linear_taps(a)
        return np.stack([i0, i1, w0, w1]).astype(np.int32), denom

    def float_table(self, a: int) -> tuple[np.ndarray, np.ndarray]:
        """Axis ``a``'s exact float taps: int32 ``(2, n_out)`` indices, float32 weights."""
        n_in, n_out, scale = self.axis(a)
        idx, wts = [], []
        for o in range(n_out):
            x = source_coordinate(o, n_in, n_out, scale, self.coordinate_mode)
            x = min(max(x, Fraction(0)), Fraction(n_in - 1))
            fl = math.floor(x)
            idx.append((fl, min(fl + 1, n_in - 1)))
            wts.append((float(1 - (x - fl)), float(x - fl)))
        return (np.array(idx, np.int32).T.copy(), np.array(wts, np.float32).T.copy())


def source_coordinate(o: int, n_in: int, n_out: int, scale: Fraction, mode: str) -> Fraction:
    """The exact ONNX Resize source coordinate of output index ``o`` along one axis.

    ``scale`` is the given scale; the specification's resized length is ``scale · n_in``
    (not the integer ``n_out``), which matters for align_corners and half_pixel_symmetric
    when ``n_in · scale`` is not an integer.
    """
    length = scale * n_in
    if mode == "align_corners":
        return Fraction(0) if length == 1 else o * Fraction(n_in - 1) / (length - 1)
    if mode == "asymmetric":
        return o / scale
    if mode == "tf_half_pixel_for_nn":
        return (o + Fraction(1, 2)) / scale
    if mode == "pytorch_half_pixel" and length == 1:
        return Fraction(-1, 2)
    x = (o + Fraction(1, 2)) / scale - Fraction(1, 2)
    if mode == "half_pixel_symmetric":
        x += Fraction(n_in, 2) * (1 - n_out / length)
    return x
