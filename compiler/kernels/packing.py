"""Offline packing of weights, biases and requantization constants for the kernel library.

`runtime/c/kernels/` (docs/kernels.md) computes NHWC int8 convolutions from weights laid
out here at compile time; nothing is repacked at run time. One layout serves every ISA:
the DSP path splits int8 words with ``SXTB16`` on the fly (matching halves of input and
weight words pair up, so no interleaving is needed) and the Helium path reads 16-byte
runs with tail predication, so the packed arrays are the same bytes for portable C, DSP,
MVE, NEON and AVX2, and the compiler packs once per model, not once per target.

Layouts (C arrays, row-major):

* conv2d, pointwise, grouped, stem: ``[out_c][kh][kw][in_c / groups]`` (OHWI) int8; for
  Helium (``isa="mve"``) each group's ``[out_c / groups][K]`` matrix (``K = kh · kw ·
  in_c / groups``) is interleaved in blocks of 8 rows × 16 bytes: for row block ``b`` and
  16-byte column chunk ``j``, rows ``8b .. 8b + 7`` each give ``W[r][16j : 16j + 16]``,
  rows padded to a multiple of 8 and ``K`` to a multiple of 16 with zeros, so one weight
  pointer feeds eight ``VMLADAV`` accumulators;
* depthwise: ``[kh][kw][in_c · multiplier]`` int8 (output channel ``c · m + j`` reads
  input channel ``c``);
* bias: ``int32[out_c]`` with the input zero point folded in,
  ``b[o] − zp_x · Σ w[o]``, so kernels accumulate raw int8 inputs and a tap in the
  padding adds ``zp_x · w`` (reading the zero point, no padded copy);
* requantization: ``multiplier`` / ``shift`` ``int32[out_c]`` from
  `compiler.int8.quantize_multiplier` (a per-tensor scale is repeated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler import int8


@dataclass(frozen=True)
class PackedConv:
    """Weights and bias of one convolution as the kernel library reads them.

    Attributes:
        weights: int8, flat, in the kernel's layout (module docstring).
        bias: int32 ``[out_c]`` with ``−zp_x · Σ w`` folded in.
    """

    weights: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class Requant:
    """Per-output-channel requantization constants (`qanas_requant_t`).

    Attributes:
        multiplier: int32 Q31 multipliers.
        shift: int32 left shifts (``quantize_multiplier`` convention).
        zero_point: output zero point.
        qmin, qmax: clamp bounds (ReLU / ReLU6 folded in).
    """

    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int
    qmin: int = -128
    qmax: int = 127


def _check_int8(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.int8:
        raise TypeError(f"{name} must be int8 (quantized weights), got {a.dtype}; quantize "
                        "the weights first (compiler.int8.quantize)")
    return a


def fold_bias(w_rows: np.ndarray, bias, input_zero_point: int) -> np.ndarray:
    """`bias` (int32 per output channel, or None) less ``input_zero_point · Σ w`` of each
    row of `w_rows`, as int32 (the kernels read raw int8 inputs)."""
    out_c = w_rows.shape[0]
    b = np.zeros(out_c, np.int64) if bias is None else np.asarray(bias, np.int64)
    if b.shape != (out_c,):
        raise ValueError(f"bias has shape {b.shape}, expected ({out_c},) (one per output "
                         "channel)")
    folded = b - int(input_zero_point) * w_rows.astype(np.int64).sum(axis=1)
    if np.any(np.abs(folded) >= 2**31):
        raise ValueError("bias with the input zero point folded in overflows int32; the "
                         "kernel library cannot take this conv (leave it to TVM)")
    return folded.astype(np.int32)


#: Rows and bytes of one Helium weight block (`pack_conv` with ``isa="mve"``).
MVE_ROWS, MVE_CHUNK = 8, 16

#: The instruction-set paths `pack_conv` lays weights out for.
PACKING_ISAS = ("portable", "dsp", "neon", "avx2", "mve")


def mve_interleave(rows: np.ndarray) -> np.ndarray:
    """A ``[R][K]`` int8 matrix in Helium's 8-row × 16-byte blocks (module docstring)."""
    r, k = rows.shape
    rp, kp = -(-r // MVE_ROWS) * MVE_ROWS, -(-k // MVE_CHUNK) * MVE_CHUNK
    padded = np.zeros((rp, kp), np.int8)
    padded[:r, :k] = rows
    blocks = padded.reshape(rp // MVE_ROWS, MVE_ROWS, kp // MVE_CHUNK, MVE_CHUNK)
    return np.ascontiguousarray(blocks.transpose(0, 2, 1, 3)).reshape(-1)


def pack_conv(weights: np.ndarray, bias: np.ndarray | None, input_zero_point: int,
              groups: int = 1, isa: str = "portable") -> PackedConv:
    """Packs an ONNX conv weight ``(O, I / groups, kh, kw)`` for `qanas_conv2d_s8`.

    Also serves `qanas_pointwise_conv_s8` (a 1×1 conv: the layout is then ``[out_c][in_c]``).

    Args:
        weights: int8 ``(O, I / groups, kh, kw)`` (ONNX / PyTorch order).
        bias: int32 ``(O,)`` at scale ``s_x · s_w[o]``, or None.
        input_zero_point: the input's zero point (folded into the bias).
        groups: the conv's ``group`` attribute (``O`` must be divisible by it).
        isa: the path the target compiles (`compiler.kernels.isa_for_cpu`): ``"mve"``
            interleaves each group's rows for Helium, every other path reads OHWI.

    Returns:
        The weights in the path's layout and the folded bias.

    Example:
        >>> w = np.ones((2, 3, 1, 1), np.int8)
        >>> packed = pack_conv(w, np.array([10, 20], np.int32), input_zero_point=1)
        >>> packed.bias.tolist()
        [7, 17]
    """
    w = _check_int8("weights", weights)
    if w.ndim != 4 or groups < 1 or w.shape[0] % groups:
        raise ValueError(f"conv weights must be (O, I/groups, kh, kw) with O divisible by "
                         f"groups={groups}, got shape {w.shape}")
    if isa not in PACKING_ISAS:
        raise ValueError(f"unknown kernel ISA {isa!r}; choose one of {PACKING_ISAS} "
                         "(compiler.kernels.isa_for_cpu names a core's)")
    ohwi = np.ascontiguousarray(w.transpose(0, 2, 3, 1))
    rows = ohwi.reshape(w.shape[0], -1)
    folded = fold_bias(rows, bias, input_zero_point)
    if isa == "mve":
        per_group = rows.reshape(groups, w.shape[0] // groups, -1)
        return PackedConv(np.concatenate([mve_interleave(g) for g in per_group]), folded)
    return PackedConv(ohwi.reshape(-1), folded)


def pack_depthwise(weights: np.ndarray, bias: np.ndarray | None,
                   input_zero_point: int) -> PackedConv:
    """Packs a depthwise conv weight ``(C · m, 1, kh, kw)`` for `qanas_depthwise_conv2d_s8`.

    Args:
        weights: int8 ``(C · multiplier, 1, kh, kw)`` (ONNX ``group = C``).
        bias: int32 ``(C · multiplier,)`` or None.
        input_zero_point: the input's zero point (folded into the bias).

    Returns:
        The ``[kh][kw][C · m]`` weights and the folded bias.
    """
    w = _check_int8("weights", weights)
    if w.ndim != 4 or w.shape[1] != 1:
        raise ValueError(f"depthwise weights must be (C*multiplier, 1, kh, kw), got {w.shape}")
    hwc = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
    return PackedConv(hwc.reshape(-1), fold_bias(w.reshape(w.shape[0], -1), bias,
                                                    input_zero_point))


def requant(real_scales, channels: int, zero_point: int, qmin: int = -128,
            qmax: int = 127) -> Requant:
    """Multipliers and shifts of ``channels`` outputs from their real scales.

    Args:
        real_scales: ``s_x · s_w[o] / s_y`` per channel (float64), or one scale for all.
        channels: number of output channels.
        zero_point, qmin, qmax: output zero point and clamp (ReLU6 → its quantized bounds).
    """
    r = np.broadcast_to(np.asarray(real_scales, np.float64), (channels,))
    m, s = int8.quantize_multiplier(r)
    return Requant(np.ascontiguousarray(m, np.int32), np.ascontiguousarray(s, np.int32),
                   int(zero_point), int(qmin), int(qmax))


def pool_requant(input_scale: float, output_scale: float, kernel: tuple[int, int],
                 zero_point: int, qmin: int = -128, qmax: int = 127) -> Requant:
    """The average pool's constants, indexed by window count ``1 .. kh · kw`` (0 unused).

    Entry ``n`` is ``quantize_multiplier(s_x / (s_y · n))``, the reference's real factor
    (`compiler.reference.groups.lower_avg_pool`); with ``count_include_pad`` the kernel
    only reads entry ``kh · kw``.
    """
    full = int(kernel[0]) * int(kernel[1])
    counts = np.arange(1, full + 1, dtype=np.float64)
    real = np.float64(input_scale) / (np.float64(output_scale) * counts)
    m, s = int8.quantize_multiplier(real)
    return Requant(np.concatenate([[0], m]).astype(np.int32),
                   np.concatenate([[0], s]).astype(np.int32), int(zero_point), int(qmin),
                   int(qmax))


@dataclass(frozen=True)
class AddParams:
    """`qanas_add_params_t`: shared-shift multipliers of a quantized add or sub."""

    a_zero_point: int
    b_zero_point: int
    a_multiplier: int
    b_multiplier: int
    right_shift: int
    subtract: bool
    output_zero_point: int
    qmin: int = -128
    qmax: int = 127


def add_params(a_scale: float, a_zero_point: int, b_scale: float, b_zero_point: int,
               output_scale: float, output_zero_point: int, subtract: bool = False,
               qmin: int = -128, qmax: int = 127) -> AddParams:
    """The add's constants, exactly as the reference derives them.

    ``(M_a, M_b), n = shared_shift_multipliers([s_a / s_y, s_b / s_y])``
    (`compiler.reference.groups.lower_elementwise`).
    """
    (ma, mb), n = int8.shared_shift_multipliers([a_scale / output_scale,
                                                 b_scale / output_scale])
    if max(abs(ma), abs(mb)) >= 2**31:
        raise ValueError(f"add multipliers {ma}, {mb} do not fit int32; the scales "
                         f"{a_scale}, {b_scale} are too far apart for the kernel library")
    return AddParams(int(a_zero_point), int(b_zero_point), int(ma), int(mb), int(n),
                     bool(subtract), int(output_zero_point), int(qmin), int(qmax))
