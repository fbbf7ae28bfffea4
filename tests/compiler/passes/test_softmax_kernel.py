"""The TIR softmax kernel: one parse per shape, its integers bound per op, each bound
kernel bit-exact with the NumPy reference."""

from __future__ import annotations

import numpy as np
import tvm

from compiler.passes import softmax_kernel
from compiler.passes.softmax_kernel import SoftmaxParams, softmax_primfunc
from compiler.reference.softmax import softmax_int8


def _run(func, x: np.ndarray) -> np.ndarray:
    mod = tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
    y = tvm.runtime.tensor(np.zeros_like(x))
    tvm.compile(mod, target="llvm")["main"](tvm.runtime.tensor(x), y)
    return y.numpy()


def test_softmaxes_of_one_shape_share_a_parse_and_each_is_the_reference():
    shape = (2, 5, 23)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    ops = [(0.03, 1 / 256, -128), (0.37, 1 / 255, -120)]
    misses = softmax_kernel._softmax_template.cache_info().misses
    for input_scale, output_scale, zero_point in ops:
        params = SoftmaxParams.from_scales(shape, input_scale, output_scale, zero_point,
                                           -128, 127)
        func = softmax_primfunc(shape, params)
        assert [p.name for p in func.params] == ["x_nd", "y_nd"], "every integer is bound"
        ref = softmax_int8(x, input_scale, output_scale, zero_point, -128, 127)
        assert np.array_equal(_run(func, x), ref.astype(np.int8)), input_scale
    assert softmax_kernel._softmax_template.cache_info().misses - misses <= 1, "one parse"
