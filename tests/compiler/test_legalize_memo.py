"""`compiler.legalize_memo`: remembered legalizations give LegalizeOps's module exactly.

The plan-only mode legalizes with a `LegalizeMemo`; the fused module it plans must be
structurally equal to the one ``relax.get_pipeline("zero")`` makes (same kernels, same
names, same plan), on first sight of each call and when every call is remembered.
"""

from __future__ import annotations

import pytest
import tvm_ffi
from tvm import relax

from compiler.legalize_memo import LegalizeMemo
from compiler.pipeline import (
    CompileOptions,
    fuse_and_plan,
    offload,
    reachable_functions,
    resolve_model,
)
from compiler.techniques import apply_techniques
from tests.support.qdq_models import brevitas_block_model


def _add_mul(shape, name="x"):
    bb = relax.BlockBuilder()
    x = relax.Var(name, relax.TensorType(shape, "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.add(x, x))
            z = bb.emit_output(relax.op.multiply(y, x))
        bb.emit_func_output(z)
    return bb.get()


def test_a_call_is_served_only_for_its_structure():
    memo = LegalizeMemo()
    first = memo.legalize()(_add_mul((1, 4)))
    assert tvm_ffi.structural_equal(first, relax.transform.LegalizeOps()(_add_mul((1, 4))))
    assert (memo.hits, memo.misses) == (0, 2)
    again = memo.legalize()(_add_mul((1, 4), name="other"))  # other names, same structure
    assert tvm_ffi.structural_equal(again, first) and (memo.hits, memo.misses) == (2, 2)
    wider = memo.legalize()(_add_mul((1, 5)))  # another shape: legalized afresh
    assert (memo.hits, memo.misses) == (2, 4)
    assert tvm_ffi.structural_equal(wider, relax.transform.LegalizeOps()(_add_mul((1, 5))))


@pytest.fixture(scope="module")
def lowered_block(tmp_path_factory):
    model = resolve_model(brevitas_block_model(tmp_path_factory.mktemp("block"), size=32), None)
    return offload(apply_techniques(model, "size")[0], CompileOptions())


def test_memoised_fusion_equals_the_zero_pipeline(lowered_block):
    plain, plain_plan = fuse_and_plan(lowered_block)
    memo = LegalizeMemo()
    for _ in range(2):  # first sight, then every call remembered
        fused, plan = fuse_and_plan(lowered_block, memo)
        assert tvm_ffi.structural_equal(fused, plain)
        assert sorted(g.name_hint for g in fused.get_global_vars()) == sorted(
            g.name_hint for g in plain.get_global_vars())
        assert plan.to_dict() == plain_plan.to_dict()
    assert memo.hits >= memo.misses > 0


def test_pruned_fusion_plans_the_same_kernels(lowered_block):
    """The plan-only mode fuses only what ``main`` reaches: the offloaded blocks' grouped
    functions are gone, and every step runs a structurally equal kernel on the same
    buffers (only the builder's numbering of kernel names may differ)."""
    assert len(reachable_functions(lowered_block.mod).functions) < len(
        lowered_block.mod.functions)
    plain, plain_plan = fuse_and_plan(lowered_block)
    pruned, plan = fuse_and_plan(lowered_block, LegalizeMemo(), prune=True)
    assert plan.lifetimes() == plain_plan.lifetimes()
    assert len(plan.calls) == len(plain_plan.calls)
    for ours, theirs in zip(plan.calls, plain_plan.calls, strict=True):
        assert (ours.inputs, ours.outputs) == (theirs.inputs, theirs.outputs)
        assert tvm_ffi.structural_equal(pruned[ours.kernel], plain[theirs.kernel])


def test_a_constant_the_legalization_adds_is_replayed():
    """A ``call_tir`` argument that is a new constant, not one of the call's, is kept."""
    import numpy as np
    from tvm import tirx

    from compiler.legalize_memo import _entry, _replay

    x = relax.Var("x", relax.TensorType((1, 4), "int8"))
    call = relax.op.negative(x)
    func = tirx.PrimFunc([], tirx.Evaluate(0))
    gvar = relax.GlobalVar("negative")
    const = relax.const(np.int8(3))
    result = relax.call_tir(gvar, relax.Tuple([x, const]), relax.TensorType((1, 4), "int8"))
    entry = _entry(call, [(func, "negative", gvar)], result)
    assert entry is not None and entry.items == (("arg", 0), ("const", const))
    y = relax.Var("y", relax.TensorType((1, 4), "int8"))
    replayed = _replay(entry, relax.op.negative(y), gvar)
    assert replayed.args[1].fields[0].same_as(y) and replayed.args[1].fields[1].same_as(const)
