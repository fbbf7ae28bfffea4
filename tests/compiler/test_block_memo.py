"""`compiler.block_memo`: remembered fused blocks give the packed module exactly.

The plan-only mode offloads fused inverted residuals with a `BlockMemo` active; the
fused module must be structurally equal to the one packed without it, on first sight
of each block and when every block is remembered, and a block is served only for the
same structure, constants and kernel path.
"""

from __future__ import annotations

import pytest
import tvm_ffi

from compiler.block_memo import BlockMemo
from compiler.pipeline import CompileOptions, lower_model
from tests.support.qdq_models import brevitas_block_model


@pytest.fixture(scope="module")
def block_onnx(tmp_path_factory):
    return brevitas_block_model(tmp_path_factory.mktemp("block"), size=32)


def _lower(model, memo: BlockMemo | None = None, **options):
    options = CompileOptions(optimise="size", **options)
    if memo is None:
        return lower_model(model, options, measure_unfused=False)
    with memo.active():
        return lower_model(model, options, measure_unfused=False)


def test_remembered_blocks_give_the_packed_module(block_onnx):
    plain = _lower(block_onnx)
    memo = BlockMemo()
    for _ in range(2):  # first sight, then every block remembered
        lowered = _lower(block_onnx, memo)
        assert tvm_ffi.structural_equal(lowered.fused, plain.fused)
        assert lowered.plan.to_dict() == plain.plan.to_dict()
    assert memo.misses > 0 and memo.hits >= memo.misses


def test_a_block_is_served_only_for_its_kernel_path_shapes_and_weights(block_onnx, tmp_path):
    memo = BlockMemo()
    _lower(block_onnx, memo)
    first = memo.misses
    mve = _lower(block_onnx, memo, kernel_isa="mve")  # Helium weight blocks: packed again
    assert memo.misses == 2 * first
    assert tvm_ffi.structural_equal(mve.fused, _lower(block_onnx, kernel_isa="mve").fused)
    wider = brevitas_block_model(tmp_path, size=48)  # other shapes
    _lower(wider, memo)
    assert memo.misses == 3 * first
    reseeded = brevitas_block_model(tmp_path, size=32, seed=1)  # other weights
    lowered = _lower(reseeded, memo)
    assert memo.misses == 4 * first
    assert tvm_ffi.structural_equal(lowered.fused, _lower(reseeded).fused)


def test_a_block_is_served_only_for_the_same_int4_weights(block_onnx):
    from compiler.passes.offload_kernels import OffloadKernels
    from compiler.pipeline import resolve_model
    from compiler.techniques import apply_techniques

    model, _ = apply_techniques(resolve_model(block_onnx, None), "size")
    memo = BlockMemo()
    with memo.active():
        OffloadKernels("portable")(model.mod)
        first = memo.misses
        OffloadKernels("portable")(model.mod)
        assert (memo.hits, memo.misses) == (first, first)
        OffloadKernels("portable", frozenset({"another int4 weight"}))(model.mod)
    assert memo.misses == 2 * first > 0
