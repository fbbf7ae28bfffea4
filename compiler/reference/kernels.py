"""Integer kernels of the NumPy reference: convolution, matmul, pooling windows, resize taps.

Everything here is exact integer arithmetic in int64 (no float, no TVM); the
requantization that follows each kernel is `compiler.int8.requantize`. Tensors are
NCHW. Inputs are already shifted by their zero point where the caller wants
``x - zp`` (then padding with 0 is padding with the quantized zero).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Bilinear weights whose exact common denominator exceeds this are rounded to 1/2^11.
MAX_RESIZE_DENOMINATOR = 1 << 11


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
            pads: tuple[int, int, int, int], dilations: tuple[int, int] = (1, 1),
            pad_value: int = 0) -> np.ndarray:
    """The sliding windows of an NCHW tensor: shape ``(N, C, Ho, Wo, kh, kw)`` (a view).

    Args:
        x: integer NCHW tensor.
        kernel: ``(kh, kw)``.
        strides: ``(sh, sw)``.
        pads: ONNX order ``(top, left, bottom, right)``.
        dilations: ``(dh, dw)``.
        pad_value: the value of padded elements.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    top, left, bottom, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    ho = (xp.shape[2] - eh) // sh + 1
    wo = (xp.shape[3] - ew) // sw + 1
    win = sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :ho, :wo]


def conv2d(x: np.ndarray, w: np.ndarray, strides, pads, dilations, groups: int) -> np.ndarray:
    """Grouped 2-D convolution in int64 (im2col + batched matmul), no bias.

    Args:
        x: ``(N, C, H, W)`` integers (already ``x_q - zp_x``; padding adds zeros).
        w: ``(O, C / groups, kh, kw)`` integers.
        strides, pads, dilations: as in `windows`.
        groups: the ONNX ``group`` attribute.

    Returns:
        ``(N, O, Ho, Wo)`` int64 accumulators.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    o, cg, kh, kw = w.shape
    win = windows(x, (kh, kw), strides, pads, dilations)
    n, _, ho, wo = win.shape[:4]
    win = win.reshape(n, groups, cg, ho, wo, kh, kw)
    cols = win.transpose(0, 1, 3, 4, 2, 5, 6).reshape(n, groups, ho * wo, cg * kh * kw)
    wm = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)
    acc = np.matmul(cols, wm)  # (N, G, Ho*Wo, O/G)
    return acc.transpose(0, 1, 3, 2).reshape(n, o, ho, wo)


def max_pool2d(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """Max pooling of int8 values; padding is the int8 minimum (the float op's −inf)."""
    return windows(x, kernel, strides, pads, pad_value=-128).max(axis=(4, 5))


def window_sums(x: np.ndarray, kernel, strides, pads) -> np.ndarray:
    """Average-pool window sums of ``x - zp`` (passed in) in int64; padding contributes 0."""
    return windows(np.asarray(x, dtype=np.int64), kernel, strides, pads).sum(axis=(4, 5))


def valid_counts(size: int, k: int, stride: int, before: int, out: int) -> np.ndarray:
    """Per output position along one axis: how many window elements are inside the input."""
    starts = np.arange(out) * stride - before
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


# ---- Resize: exact source coordinates (ONNX Resize, spatial axes) ------------------------
RESIZE_COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                           "align_corners", "asymmetric", "tf_half_pixel_for_nn")


def onnx_scale(value: float) -> Fraction:
    """The exact scale an ONNX float32 ``scales`` entry means: the fraction with the
    smallest denominator (up to 2^16) that rounds to the same float32 (0.6 → 3/5)."""
    target = np.float32(value)
    for q in range(1, (1 << 16) + 1):
        p = round(float(target) * q)
        if p > 0 and np.float32(p / q) == target:
            return Fraction(p, q)
    return Fraction(float(target))


def source_coordinate(o: int, n_in: int, n_out: int, mode: str,
                      scale: Fraction | None = None) -> Fraction:
    """The exact ONNX source coordinate of output index ``o``.

    ``scale`` is the Resize's scale for this axis (``n_out / n_in`` when None, as for
    ``sizes``); the specification's resized length is ``scale · n_in``, not ``n_out``.
    """
    scale = Fraction(n_out, n_in) if scale is None else Fraction(scale)
    length = scale * n_in
    if mode == "align_corners":
        return Fraction(0) if length == 1 else Fraction(o * (n_in - 1)) / (length - 1)
    if mode == "asymmetric":
        return Fraction(o) / scale
    if mode == "tf_half_pixel_for_nn":
        return Fraction(2 * o + 1, 2) / scale
    if mode == "pytorch_half_pixel" and length == 1:
        return Fraction(-1, 2)
    if mode in ("half_pixel", "pytorch_half_pixel"):
        return Fraction(2 * o + 1, 2) / scale - Fraction(1, 2)
    if mode == "half_pixel_symmetric":
        offset = Fraction(n_in, 2) * (1 - Fraction(n_out) / length)
        return offset + Fraction(2 * o + 1, 2) / scale - Fraction(1, 2)
    raise ValueError(f"coordinate_transformation_mode {mode!r} is not supported; use one of "
                     f"{', '.join(RESIZE_COORDINATE_MODES)}")


def nearest_indices(n_in: int, n_out: int, mode: str, rounding: str,
                    scale: Fraction | None = None) -> np.ndarray:
    """Input index of each output index for nearest-neighbour resize along one axis."""
    out = []
    for o in range(n_out):
        x = source_coordinate(o, n_in, n_out, mode, scale)
        frac = x - math.floor(x)
        if rounding == "floor":
            i = math.floor(x)
        elif rounding == "ceil":
            i = math.ceil(x)
        elif rounding == "round_prefer_ceil":
            i = math.floor(x) + (frac >= Fraction(1, 2))
        elif rounding == "round_prefer_floor":
            i = math.floor(x) + (frac > Fraction(1, 2))
        else:
            raise ValueError(f"nearest_mode {rounding!r} is not supported")
        out.append(min(max(i, 0), n_in - 1))
    return np.array(out, dtype=np.int64)


def linear_taps(n_in: int, n_out: int, mode: str, scale: Fraction | None = None):
    """Bilinear taps along one axis: ``(i0, i1, w0, w1, D)`` with integer weights over ``D``.

    The source coordinate is clamped to ``[0, n_in - 1]``; ``D`` is the least common
    denominator of the exact fractional parts (4 for a 2× half-pixel upsample), so the
    weights are exact. Above `MAX_RESIZE_DENOMINATOR` they are rounded to 1/2^11.
    """
    i0, i1, fracs = [], [], []
    for o in range(n_out):
        x = min(max(source_coordinate(o, n_in, n_out, mode, scale), Fraction(0)),
                Fraction(n_in - 1))
        fl = math.floor(x)
        i0.append(fl)
        i1.append(min(fl + 1, n_in - 1))
        fracs.append(x - fl)
    denom = math.lcm(*(f.denominator for f in fracs))
    if denom <= MAX_RESIZE_DENOMINATOR:
        w1 = [int(f * denom) for f in fracs]
    else:
        denom = MAX_RESIZE_DENOMINATOR
        w1 = [round(f * denom) for f in fracs]  # Fraction rounding: half to even
    w1 = np.array(w1, dtype=np.int64)
    return np.array(i0, np.int64), np.array(i1, np.int64), denom - w1, w1, denom


def argmax_map(logits: np.ndarray) -> np.ndarray:
    """The uint8 class map of NCHW logits: ``argmax`` over axis 1 kept as size 1.

    ONNX ``ArgMax(axis=1, keepdims=1)``: ties go to the first (lowest) class index.
    """
    if logits.ndim != 4 or logits.shape[1] > 256:
        raise ValueError(f"a class map needs 4-D NCHW logits with at most 256 classes, got "
                         f"shape {logits.shape}")
    return np.argmax(logits, axis=1, keepdims=True).astype(np.uint8)


def lerp(x: np.ndarray, axis: int, taps) -> np.ndarray:
    """One separable bilinear step along ``axis``: ``x[i0]·w0 + x[i1]·w1`` in int64."""
    i0, i1, w0, w1, _ = taps
    shape = [1] * x.ndim
    shape[axis] = len(i0)
    return (np.take(x, i0, axis=axis) * w0.reshape(shape)
            + np.take(x, i1, axis=axis) * w1.reshape(shape))
