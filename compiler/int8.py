"""The int8 arithmetic shared by the compiler's kernels and qanas' quantization.

Everything here is plain NumPy so that the NAS side (fake-quant export, accuracy
estimates) and the compiler (constants baked into the integer Relax graph, the
reference that tests compare the generated kernels against) use one definition.

Rounding, in one sentence: a real scale ``r`` is stored as a Q31 ``multiplier``
and a power-of-two ``shift`` (``r ≈ multiplier · 2^(shift-31)``), the int32
accumulator is multiplied by the multiplier in int64 and divided by
``2^(31-shift)`` with a *single* rounding, round-half-to-even, exactly like
ONNX ``QuantizeLinear``. See ``docs/int8-arithmetic.md`` for why.
"""

from __future__ import annotations

import numpy as np

#: Largest right shift the kernels use; keeps ``acc · multiplier + rounding`` in int64.
MAX_RIGHT_SHIFT = 62


def quantize_multiplier(real: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Splits real scales into Q31 multipliers and power-of-two shifts (gemmlowp/TFLite style).

    Args:
        real: one non-negative scale or an array of them (for example per-channel
            ``input_scale · weight_scale / output_scale``).

    Returns:
        ``(multiplier, shift)``: int32 and int32 arrays of ``real``'s shape with
        ``real ≈ multiplier · 2^(shift - 31)``, ``multiplier`` in ``[2^30, 2^31)``
        (0 for a zero scale) and ``shift`` the *left* shift (negative for scales
        below 0.5), following TFLite's ``QuantizeMultiplier``. Scales so small
        that the right shift ``31 - shift`` would exceed ``MAX_RIGHT_SHIFT`` lose
        low multiplier bits instead.

    Raises:
        ValueError: a scale is negative, NaN or infinite.

    Example:
        >>> m, s = quantize_multiplier(0.25)
        >>> int(m), int(s)
        (1073741824, -1)
    """
    r = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"quantization scales must be finite and >= 0, got {r}")
    mant, exp = np.frexp(r)  # r = mant * 2**exp, mant in [0.5, 1)
    mult = np.round(mant * (1 << 31)).astype(np.int64)
    carry = mult == (1 << 31)
    mult = np.where(carry, mult // 2, mult)
    exp = np.where(carry, exp + 1, exp).astype(np.int64)
    right = 31 - exp
    excess = np.maximum(right - MAX_RIGHT_SHIFT, 0)
    mult = np.where(excess > 0, np.right_shift(mult, np.minimum(excess, 62)), mult)
    exp = np.where(excess > 0, 31 - MAX_RIGHT_SHIFT, exp)
    exp = np.where(mult == 0, 0, exp)
    if np.any(31 - exp < 1):
        raise ValueError(f"scale {r} is too large for a Q31 multiplier (must be < 2^30)")
    return mult.astype(np.int32), exp.astype(np.int32)


def rounding_right_shift(x: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Returns ``x / 2^n`` rounded half to even, in int64 (``n >= 1``).

    This is the formula the generated kernels use:
    ``(x + 2^(n-1) - 1 + ((x >> n) & 1)) >> n`` with an arithmetic (flooring) shift.
    """
    x = np.asarray(x, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    half_minus_one = np.left_shift(np.int64(1), n - 1) - 1
    odd = np.bitwise_and(np.right_shift(x, n), 1)
    return np.right_shift(x + half_minus_one + odd, n)


def requantize(
    acc_int32: np.ndarray,
    multiplier: np.ndarray | int,
    shift: np.ndarray | int,
    zero_point: int,
    qmin: int = -128,
    qmax: int = 127,
) -> np.ndarray:
    """The NumPy integer reference of the kernels' requantization.

    Computes ``clip(round_half_even(acc · multiplier / 2^(31 - shift)) + zero_point,
    qmin, qmax)`` with exact int64 arithmetic.

    Args:
        acc_int32: the int32 accumulators (already including the int32 bias).
        multiplier: Q31 multipliers from `quantize_multiplier`, broadcastable
            against ``acc_int32`` (per-channel: shape ``(C, 1, 1)`` for NCHW).
        shift: matching left shifts from `quantize_multiplier`.
        zero_point: the output zero point.
        qmin: lower clamp (activation clamps are folded in here).
        qmax: upper clamp.

    Returns:
        The requantized values, int8 when ``[qmin, qmax]`` fits int8, else int32.
    """
    acc = np.asarray(acc_int32, dtype=np.int64)
    prod = acc * np.asarray(multiplier, dtype=np.int64)
    q = rounding_right_shift(prod, 31 - np.asarray(shift, dtype=np.int64))
    q = np.clip(q + int(zero_point), qmin, qmax)
    return q.astype(np.int8 if qmin >= -128 and qmax <= 127 else np.int32)


def quantize(
    x_float: np.ndarray,
    scale: float | np.ndarray,
    zero_point: int | np.ndarray,
    qmin: int = -128,
    qmax: int = 127,
) -> np.ndarray:
    """ONNX ``QuantizeLinear``: ``clip(round_half_even(x / scale) + zero_point, qmin, qmax)``.

    The division is done in float32 like onnxruntime, so results agree bit for bit.
    Returns int8 when the range fits int8, uint8 when it fits uint8, else int32.
    """
    x = np.asarray(x_float, dtype=np.float32)
    with np.errstate(over="ignore"):
        q = np.rint(x / np.asarray(scale, dtype=np.float32))
    # Saturate before the cast: x / scale may be ±inf (a Clip bound of ±FLT_MAX), which
    # would wrap to INT64_MIN instead of clamping to qmin / qmax.
    q = np.clip(q, -(2.0 ** 40), 2.0 ** 40).astype(np.int64)
    q = np.clip(q + np.asarray(zero_point, dtype=np.int64), qmin, qmax)
    if qmin >= -128 and qmax <= 127:
        return q.astype(np.int8)
    if qmin >= 0 and qmax <= 255:
        return q.astype(np.uint8)
    return q.astype(np.int32)


def dequantize(
    q: np.ndarray, scale: float | np.ndarray, zero_point: int | np.ndarray
) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(q - zero_point) · scale`` in float32."""
    diff = np.asarray(q, dtype=np.int64) - np.asarray(zero_point, dtype=np.int64)
    return (diff.astype(np.float32) * np.asarray(scale, dtype=np.float32)).astype(np.float32)


def shared_shift_multipliers(reals: list[float]) -> tuple[list[int], int]:
    """Integer multipliers with one common right shift, for sums of rescaled terms.

    Used by int8 Add: ``out = round(Σ r_i · x_i)`` becomes
    ``round_half_even(Σ M_i · x_i / 2^n)``, a single rounding of the exact sum,
    which is what a float reference does (up to the multipliers' 31-bit precision).

    Args:
        reals: the positive real factors ``r_i``.

    Returns:
        ``([M_i], n)`` with ``r_i ≈ M_i / 2^n``, the largest ``M_i`` in ``[2^30, 2^31)``.
    """
    largest = max(reals)
    if largest <= 0:
        raise ValueError(f"rescale factors must be positive, got {reals}")
    _, exp = np.frexp(largest)
    n = int(min(31 - exp, MAX_RIGHT_SHIFT))
    if n < 1:
        raise ValueError(f"rescale factor {largest} is too large (must be < 2^30)")
    mults = [int(np.round(r * 2.0**n)) for r in reals]
    return mults, n
