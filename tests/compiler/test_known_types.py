"""`compiler.known_types`: a slow call emitted with a remembered type builds the module
plain ``emit`` builds, and a type is reused only for the same operator, attributes and
argument types."""

from __future__ import annotations

import numpy as np
import tvm_ffi
from tvm import relax

from compiler import known_types


def _conv_module(emit, shape=(1, 8, 16, 16), padding=1, weight_seed=0):
    w = np.random.default_rng(weight_seed).integers(-8, 8, (4, shape[1], 3, 3), dtype=np.int8)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = emit(bb, relax.op.nn.conv2d(x, relax.const(w), padding=padding,
                                            out_dtype="int32"))
            z = bb.emit_output(relax.op.add(y, y))
        bb.emit_func_output(z)
    return bb.get()


def _plain(bb, expr):
    return bb.emit(expr)


def _known(bb, expr):
    return known_types.emit(bb, expr)


def test_remembered_types_build_the_plain_module():
    for _ in range(2):  # first sight (inferred), then the remembered type
        assert tvm_ffi.structural_equal(_conv_module(_known), _conv_module(_plain))
    # other weights, same signature: the remembered type, the same module as plain emit
    assert tvm_ffi.structural_equal(_conv_module(_known, weight_seed=1),
                                    _conv_module(_plain, weight_seed=1))


def test_a_type_is_reused_only_for_its_signature():
    _conv_module(_known)
    for other in ({"shape": (1, 8, 20, 16)}, {"padding": 0}, {"shape": (1, 8, 16, 16)}):
        assert tvm_ffi.structural_equal(_conv_module(_known, **other),
                                        _conv_module(_plain, **other))
    out = _conv_module(_known, shape=(1, 8, 20, 16))["main"].body.body
    assert [int(d) for d in out.ty.shape] == [1, 4, 20, 16]
    out = _conv_module(_known, padding=0)["main"].body.body
    assert [int(d) for d in out.ty.shape] == [1, 4, 14, 14]
