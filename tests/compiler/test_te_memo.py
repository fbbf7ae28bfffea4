"""`compiler.te_memo`: remembered TE kernels give ``emit_te``'s module exactly.

The plan-only mode lowers with a `TeMemo` active; the fused module it plans must be
structurally equal to the one built without it (same kernels, same names, same plan), on
first sight of each kernel and when every kernel is remembered.
"""

from __future__ import annotations

from functools import partial

import pytest
import tvm_ffi
from tvm import relax, te

from compiler.pipeline import CompileOptions, lower_model
from compiler.te_memo import TeMemo, emit_te
from tests.support.qdq_models import brevitas_block_model


def _add(x, y, shift: int):
    return te.compute(x.shape, lambda *i: x(*i) + y(*i) + shift, name="add")


def _module(shape, name: str, te_func=_add):
    bb = relax.BlockBuilder()
    x = relax.Var(name, relax.TensorType(shape, "int32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = emit_te(bb, te_func, x, x, 1, primfunc_name_hint="add")
            z = bb.emit_output(emit_te(bb, te_func, y, x, 1, primfunc_name_hint="add"))
        bb.emit_func_output(z)
    return bb.get()


def test_a_kernel_is_served_only_for_its_arguments():
    plain = _module((1, 4), "x")  # no memo active: bb.emit_te itself
    memo = TeMemo()
    with memo.active():
        first = _module((1, 4), "x")
        assert (memo.hits, memo.misses) == (1, 1)  # the second call is the first's kernel
        other = _module((1, 4), "other")  # other names, same kernel
        assert (memo.hits, memo.misses) == (3, 1)
        wider = _module((1, 5), "x")  # another shape: built afresh
        assert (memo.hits, memo.misses) == (4, 2)
    assert tvm_ffi.structural_equal(first, plain)
    assert tvm_ffi.structural_equal(other, plain)
    assert tvm_ffi.structural_equal(wider, _module((1, 5), "x"))


def test_a_function_without_a_name_is_built_every_time():
    memo = TeMemo()
    with memo.active():
        _module((1, 4), "x", te_func=partial(_add))
    assert (memo.hits, memo.misses) == (0, 0)


@pytest.fixture(scope="module")
def block_onnx(tmp_path_factory):
    return brevitas_block_model(tmp_path_factory.mktemp("block"), size=32)


def test_memoised_lowering_equals_the_plain_one(block_onnx):
    options = CompileOptions()
    plain = lower_model(block_onnx, options, measure_unfused=False)
    memo = TeMemo()
    for _ in range(2):  # first sight, then every kernel remembered
        with memo.active():
            lowered = lower_model(block_onnx, options, measure_unfused=False)
        assert tvm_ffi.structural_equal(lowered.fused, plain.fused)
        assert sorted(g.name_hint for g in lowered.fused.get_global_vars()) == sorted(
            g.name_hint for g in plain.fused.get_global_vars())
        assert lowered.plan.to_dict() == plain.plan.to_dict()
    assert memo.hits >= memo.misses > 0
