"""The shared int8 arithmetic against exact rational arithmetic."""

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import int8


def _round_half_even(q: Fraction) -> int:
    fl = q.numerator // q.denominator
    rem = q - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2):
        return fl + 1
    return fl


@settings(max_examples=300, deadline=None)
@given(real=st.floats(1e-6, 1e3))
def test_quantize_multiplier_is_q31_accurate(real):
    m, s = int8.quantize_multiplier(real)
    assert (1 << 30) <= int(m) < (1 << 31)
    approx = Fraction(int(m)) * Fraction(2) ** (int(s) - 31)
    assert abs(approx - Fraction(real)) <= Fraction(real) * Fraction(1, 1 << 30)


@settings(max_examples=500, deadline=None)
@given(acc=st.integers(-(1 << 31), (1 << 31) - 1), real=st.floats(1e-6, 0.99),
       zp=st.integers(-128, 127))
def test_requantize_is_exact_half_even_rounding_of_the_fixed_point_product(acc, real, zp):
    m, s = int8.quantize_multiplier(real)
    exact = Fraction(acc * int(m), 1 << (31 - int(s)))
    expected = min(max(_round_half_even(exact) + zp, -128), 127)
    assert int(int8.requantize(np.array([acc], np.int32), m, s, zp)[0]) == expected


def test_rounding_right_shift_ties_go_to_even():
    x = np.array([4, 12, -4, -12, 5, -5, 3], np.int64)  # /8: .5, 1.5, -.5, -1.5, .625, -.625, .375
    assert int8.rounding_right_shift(x, 3).tolist() == [0, 2, 0, -2, 1, -1, 0]


@settings(max_examples=200, deadline=None)
@given(x=st.floats(-50, 50, width=32), scale=st.sampled_from([0.001, 0.0078125, 0.02, 0.1, 0.5]),
       zp=st.integers(-20, 20))
def test_quantize_matches_onnx_quantize_linear(x, scale, zp):
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    ref = ReferenceEvaluator(node)
    (y,) = ref.run(None, {"x": np.array([x], np.float32), "s": np.float32(scale),
                          "z": np.int8(zp)})
    assert int8.quantize(np.float32(x), np.float32(scale), zp).item() == int(y[0])


def test_shared_shift_multipliers_keep_the_ratio():
    (ma, mb), n = int8.shared_shift_multipliers([0.75, 0.3])
    assert (1 << 30) <= ma < (1 << 31)
    assert abs(ma / 2**n - 0.75) < 2**-30 and abs(mb / 2**n - 0.3) < 2**-30


def test_dequantize_inverts_quantize_within_half_a_step():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    q = int8.quantize(x, 0.01, 3)
    assert np.max(np.abs(int8.dequantize(q, 0.01, 3) - x)) <= 0.005 + 1e-6
