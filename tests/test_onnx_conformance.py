"""The conformance tier: ONNX's backend node cases for every operator in the support table.

Each case (`tests/onnx_conformance.py`) is compiled for the host with its parameters as
constants, run, and compared with the output the ONNX specification gives: exactly for
integers, within `FLOAT_RTOL`/`FLOAT_ATOL` for floats. A case qanas does not support must
be refused with a qanas error (listed with its reason at the end of the test run, so a gap
is visible); it must never compile into a wrong result.

Run it alone with ``pytest tests/test_onnx_conformance.py -n 2``.
"""

from __future__ import annotations

import pytest

from compiler.driver import compile_model
from compiler.errors import CompilerError, UnsupportedOpError
from runtime.runners import get_runner
from tests.conftest import require_tools
from tests.onnx_conformance import bind_case, conformance_cases, mismatch

# Cases that once compiled wrong or were refused without reason: they must compile and match.
MUST_COMPILE = frozenset({
    "test_clip_min_greater_than_max",
    "test_clip_example",
    "test_clip_default_int8_min",
    "test_relu",
})


@pytest.mark.toolchain
@pytest.mark.parametrize("name", list(conformance_cases()))
def test_case_compiles_to_the_specified_output_or_is_refused(name, tmp_path, record_property):
    require_tools("gcc", "make")
    case = bind_case(name)
    try:
        compile_model(case.model, "host", tmp_path / "project")
    except CompilerError as err:
        stage = "support table" if isinstance(err, UnsupportedOpError) else type(err).__name__
        reason = str(err).splitlines()[0]
        assert name not in MUST_COMPILE, f"{name} must compile; refused: {reason}"
        record_property("conformance_refused", f"{name} [{stage}]: {reason}")
        return
    outputs = get_runner("host").run(tmp_path / "project", case.feeds).outputs
    for output, expected in case.expected.items():
        why = mismatch(outputs[output], expected)
        assert why is None, f"{name}: output {output!r}: {why}"


def test_every_supported_operator_has_cases():
    """Each operator in the table is exercised by at least one ONNX case (or named here)."""
    from compiler.frontend.support import SUPPORTED_OPS

    covered = {node.op_type for case in conformance_cases().values()
               for node in case.model.graph.node}
    assert set(SUPPORTED_OPS) - covered <= set(), sorted(set(SUPPORTED_OPS) - covered)
