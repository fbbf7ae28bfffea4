"""The conformance tier: ONNX's backend node cases for every operator in the support table.

Each case (`tests/support/onnx_conformance.py`) is compiled for the host with its parameters as
constants, run, and compared with the output the ONNX specification gives: exactly for
integers, within `FLOAT_RTOL`/`FLOAT_ATOL` for floats. A case qanas does not support must
be refused with a qanas error (listed with its reason at the end of the test run, so a gap
is visible); it must never compile into a wrong result.

Run it alone with ``pytest tests/compiler/frontend/test_onnx_conformance.py -n 2``.
"""

from __future__ import annotations

import pytest

from compiler.driver import compile_model
from compiler.errors import CompilerError, UnsupportedOpError
from runtime.runners import get_runner
from tests.support.onnx_conformance import bind_case, conformance_cases, mismatch
from tests.support.tools import require_tools

# Cases that once compiled wrong or were refused without reason: they must compile and match.
MUST_COMPILE = frozenset({
    "test_clip_min_greater_than_max",
    "test_clip_example",
    "test_clip_default_int8_min",
    "test_clip_default_inbounds_expanded",
    "test_identity",
    "test_relu",
    "test_resize_downsample_scales_linear",
    "test_resize_upsample_sizes_nearest",
    "test_conv_with_autopad_same",
    "test_averagepool_2d_same_upper",
    "test_maxpool_2d_same_lower",
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


def _qdq_only_model(op: str) -> tuple:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    scale = numpy_helper.from_array(np.array(0.05, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(3, np.int8), "zero")
    in_type, out_type = ((TensorProto.FLOAT, TensorProto.INT8) if op == "QuantizeLinear"
                         else (TensorProto.INT8, TensorProto.FLOAT))
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "scale", "zero"], ["y"])], op,
        [helper.make_tensor_value_info("x", in_type, [1, 3, 4, 5])],
        [helper.make_tensor_value_info("y", out_type, [1, 3, 4, 5])], [scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 3, 4, 5)).astype(np.float32) * 4 if op == "QuantizeLinear"
         else rng.integers(-128, 128, (1, 3, 4, 5)).astype(np.int8))
    return model, x


@pytest.mark.toolchain
@pytest.mark.parametrize("op", ["QuantizeLinear", "DequantizeLinear"])
def test_a_graph_of_only_quantize_or_dequantize_compiles(op, tmp_path):
    """Nothing is left to compute once the boundary is stripped: the project copies the
    input to the output and reports the output's quantization, like onnxruntime's result."""
    import json

    import numpy as np
    import onnxruntime as ort

    require_tools("gcc", "make")
    model, x = _qdq_only_model(op)
    compile_model(model, "host", tmp_path / "project")
    io = json.loads((tmp_path / "project" / "compile.json").read_text())
    (inp,), (out,) = io["inputs"], io["outputs"]
    feed = x
    if inp["dtype"] == "int8" and x.dtype != np.int8:  # quantize with the input's parameters
        feed = np.clip(np.rint(x / inp["scale"]) + inp["zero_point"], -128, 127).astype(np.int8)
    ours = get_runner("host").run(tmp_path / "project", {"x": feed}).outputs["y"]
    if out["scale"] is not None:  # an int8 output standing for floats: dequantize it
        ours = (ours.astype(np.float32) - out["zero_point"]) * np.float32(out["scale"])
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours.astype(expected.dtype), expected)
