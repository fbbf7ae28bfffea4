"""`integer_lowering(ops=...)` leaves out the passes with nothing to rewrite, and lowers
to the module every pass gives."""

from __future__ import annotations

import pytest
import tvm
import tvm_ffi

from compiler.frontend import load_model
from compiler.passes import called_ops, integer_lowering
from tests.support.qdq_models import brevitas_block_model


@tvm.instrument.pass_instrument
class _Names:
    def __init__(self):
        self.names = []

    def run_before_pass(self, _mod, info):
        self.names.append(info.name)


def _run(lowering, mod):
    names = _Names()
    with tvm.transform.PassContext(instruments=[names]):
        return lowering(mod), names.names


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return load_model(brevitas_block_model(tmp_path_factory.mktemp("block"), size=16))


def test_passes_without_their_operators_are_left_out_and_change_nothing(imported):
    ops = called_ops(imported.mod)
    assert "relax.nn.conv2d" in ops and "relax.nn.softmax" not in ops
    every, every_names = _run(integer_lowering(), imported.mod)
    some, some_names = _run(integer_lowering(ops=ops), imported.mod)
    assert "LowerQuantizedSoftmax" in every_names and "LowerQuantizedSoftmax" not in some_names
    assert "LowerQuantizedConv2d" in some_names
    assert tvm_ffi.structural_equal(some, every)


def test_an_operator_in_the_module_keeps_its_pass(imported):
    ops = called_ops(imported.mod) | {"relax.nn.softmax"}
    assert "LowerQuantizedSoftmax" in _run(integer_lowering(ops=ops), imported.mod)[1]
