"""The int8 TFLite export (`compiler.tflite`) against the NumPy int8 reference.

Every exported model runs in TFLite Micro and in LiteRT's reference kernels (each in a
subprocess; the space tests also run LiteRT's default XNNPACK path) on the
same int8 inputs as `compiler.reference.run_int8_reference` (bit-identical to our
compiled host C). TFLite rounds a requantization twice (a rounding doubling high
multiply, then a rounding shift; ties away from zero) where we round once, half to
even, so single elements may be 1 LSB off. Ops that TFLite computes in two requantizing
steps (LOGISTIC then QUANTIZE from its fixed 1/256 output; MEAN's requantize then
divide; RESIZE_BILINEAR's 10-bit weights then QUANTIZE) differ by 1 LSB more often:
their exact-share floors below are lower, and measured values are in
docs/tflite-export.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.errors import UnsupportedOpError
from compiler.reference.values import OutQuant
from compiler.tflite import TFLiteExport, export_tflite, unsupported_ops
from compiler.tflite.ops import fused_activation
from compiler.tflite.verify import (
    ALL_BACKENDS,
    BACKENDS,
    compare,
    verify_many,
    verify_tflite,
)
from tests.support.qdq_models import brevitas_block_model, brevitas_conv_model
from tests.support.space_cases import compiled_space_param

EXACT = 0.97  # ops with one requantization (TFLite rounds it twice)
EXACT_TWICE = 0.5  # ops TFLite computes with two roundings (see the module docstring)


# ---- hand-built single-op QDQ models -----------------------------------------------------
def _qdq_model(path, op: str, in_shapes, *, attrs=None, consts=(), in_quant=None,
               out_quant=(0.05, 3), zp_dtype=np.int8):
    """float inputs → Q → DQ → ``op`` (activations, then ``consts``) → Q → DQ → output."""
    in_quant = in_quant or [(0.04 + 0.01 * i, -5 + 7 * i) for i in range(len(in_shapes))]
    nodes, inits, inputs, op_ins = [], [], [], []
    for i, (shape, (s, z)) in enumerate(zip(in_shapes, in_quant, strict=True)):
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, shape))
        inits += [numpy_helper.from_array(np.array(s, np.float32), f"s{i}"),
                  numpy_helper.from_array(np.array(z, zp_dtype), f"z{i}")]
        nodes += [helper.make_node("QuantizeLinear", [f"x{i}", f"s{i}", f"z{i}"], [f"q{i}"]),
                  helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}", f"z{i}"], [f"d{i}"])]
        op_ins.append(f"d{i}")
    for k, value in enumerate(consts):
        if value is None:
            op_ins.append("")
            continue
        inits.append(numpy_helper.from_array(np.asarray(value), f"c{k}"))
        op_ins.append(f"c{k}")
    inits += [numpy_helper.from_array(np.array(out_quant[0], np.float32), "so"),
              numpy_helper.from_array(np.array(out_quant[1], zp_dtype), "zo")]
    nodes += [helper.make_node(op, op_ins, ["f"], name=f"the_{op.lower()}", **(attrs or {})),
              helper.make_node("QuantizeLinear", ["f", "so", "zo"], ["qy"]),
              helper.make_node("DequantizeLinear", ["qy", "so", "zo"], ["y"])]
    graph = helper.make_graph(nodes, op, inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


X = [1, 6, 8, 8]
_SCALES_2X = np.array([1, 1, 2, 2], np.float32)

#: id → (op, input shapes, kwargs, exact floor)
SINGLE_OPS = {
    "add": ("Add", [X, X], {}, EXACT),
    "sub": ("Sub", [X, X], {}, EXACT),
    "add_uint8": ("Add", [X, X], {"zp_dtype": np.uint8, "in_quant": [(0.04, 120),
                                                                          (0.05, 131)],
                                       "out_quant": (0.05, 128)}, EXACT),
    "mul_broadcast": ("Mul", [X, [1, 6, 1, 1]], {}, EXACT),
    "concat_rescaled": ("Concat", [X, [1, 3, 8, 8]], {"attrs": {"axis": 1}}, EXACT),
    "concat_same_quant": ("Concat", [X, X], {"attrs": {"axis": 1},
                                             "in_quant": [(0.05, 3), (0.05, 3)]}, 1.0),
    "resize_nearest": ("Resize", [X], {"consts": (None, _SCALES_2X),
                                       "attrs": {"mode": "nearest",
                                                 "coordinate_transformation_mode": "asymmetric",
                                                 "nearest_mode": "floor"}}, EXACT),
    "resize_bilinear_half_pixel": ("Resize", [X], {"consts": (None, _SCALES_2X),
                                                   "attrs": {"mode": "linear"}}, EXACT_TWICE),
    "resize_bilinear_align_corners": (
        "Resize", [X], {"consts": (None, _SCALES_2X),
                        "attrs": {"mode": "linear",
                                  "coordinate_transformation_mode": "align_corners"}},
        EXACT_TWICE),
    "avg_pool_valid": ("AveragePool", [X], {"attrs": {"kernel_shape": [2, 2], "strides": [2, 2]},
                                            "out_quant": (0.04, -5)}, EXACT_TWICE),
    "avg_pool_same": ("AveragePool", [X], {"attrs": {"kernel_shape": [3, 3], "pads": [1] * 4},
                                           "out_quant": (0.04, -5)}, EXACT_TWICE),
    "avg_pool_count_pad": ("AveragePool", [X], {
        "attrs": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1] * 4,
                  "count_include_pad": 1}}, EXACT_TWICE),
    "global_avg_pool": ("GlobalAveragePool", [X], {}, EXACT_TWICE),
    "max_pool_padded": ("MaxPool", [X], {"attrs": {"kernel_shape": [3, 3], "strides": [2, 2],
                                                   "pads": [1] * 4}}, EXACT),
    "sigmoid": ("Sigmoid", [X], {"out_quant": (1 / 256, -128)}, EXACT),
    "sigmoid_requantized": ("Sigmoid", [X], {"out_quant": (0.0043, -110)}, EXACT_TWICE),
    "hard_swish": ("HardSwish", [X], {}, EXACT),
    "relu": ("Relu", [X], {}, EXACT),
    "relu6": ("Clip", [X], {"consts": (np.float32(0), np.float32(6))}, EXACT),
    "relu6_same_quant": ("Clip", [X], {"consts": (np.float32(0), np.float32(6)),
                                       "in_quant": [(0.05, 3)]}, 1.0),
    "avg_pool_finer_output_int16": ("AveragePool", [X], {
        "attrs": {"kernel_shape": [4, 4], "strides": [4, 4]}, "out_quant": (0.005, 2)},
        EXACT_TWICE),
    "hard_sigmoid": ("HardSigmoid", [X], {"attrs": {"alpha": 1.0 / 6.0},
                                          "out_quant": (1 / 255, -128)}, EXACT_TWICE),
    "matmul_4d_activations": ("MatMul", [[1, 2, 8, 16], [1, 2, 16, 6]], {"out_quant": (0.2, 3)},
                              EXACT),
    "matmul_3d_activations": ("MatMul", [[2, 9, 16], [2, 16, 8]], {"out_quant": (0.2, -4)},
                              EXACT),
    "softmax_tflite_quant": ("Softmax", [[1, 2, 3, 9]], {"out_quant": (1 / 256, -128)}, EXACT),
    "softmax_uint8_1_255": ("Softmax", [[1, 2, 3, 9]], {"zp_dtype": np.uint8,
                                                        "in_quant": [(0.08, 120)],
                                                        "out_quant": (1 / 255, 0)},
                            EXACT_TWICE),
    "softmax_axis_1": ("Softmax", [X], {"attrs": {"axis": 1}, "out_quant": (1 / 256, -128)},
                       EXACT),
    "transpose_4d": ("Transpose", [[1, 2, 3, 5]], {"attrs": {"perm": [0, 1, 3, 2]}}, EXACT),
    "transpose_3d": ("Transpose", [[2, 3, 5]], {"attrs": {"perm": [2, 0, 1]}}, EXACT),
    "slice_channels": ("Slice", [X], {"consts": (np.array([1], np.int64),
                                                 np.array([4], np.int64),
                                                 np.array([1], np.int64))}, EXACT),
    "slice_strided_hw": ("Slice", [X], {"consts": (np.array([1, 0], np.int64),
                                                   np.array([8, 7], np.int64),
                                                   np.array([2, 3], np.int64),
                                                   np.array([2, 3], np.int64))}, EXACT),
    "flatten": ("Flatten", [X], {}, EXACT),
    "reshape_2d": ("Reshape", [X], {"consts": (np.array([1, -1], np.int64),)}, EXACT),
}


@pytest.fixture(scope="module")
def single_op_results(tmp_path_factory):
    """Every `SINGLE_OPS` model exported and verified, in one interpreter process per backend."""
    tmp = tmp_path_factory.mktemp("single_ops")
    cases, infos = sorted(SINGLE_OPS), {}
    for case in cases:
        op, shapes, kwargs, _ = SINGLE_OPS[case]
        src = _qdq_model(tmp / f"{case}.onnx", op, shapes, **kwargs)
        infos[case] = (src, export_tflite(src, tmp / f"{case}.tflite"))
    reports = verify_many([(src, info.path, None) for src, info in infos.values()])
    return {case: (infos[case][1], report) for case, report in zip(cases, reports, strict=True)}


@pytest.mark.parametrize("case", sorted(SINGLE_OPS))
def test_single_op_matches_reference_in_both_interpreters(case, single_op_results):
    info, report = single_op_results[case]
    assert isinstance(info, TFLiteExport) and info.path.exists() and info.bytes > 0
    print(json.dumps({"case": case, "ops": info.op_counts,
                      **{b: report.worst(b) for b in BACKENDS}}))
    floor = SINGLE_OPS[case][3]
    for backend in BACKENDS:
        exact, lsb = report.worst(backend)
        assert lsb <= 1 and exact >= floor, (case, backend, exact, lsb, info.op_counts)


# ---- Brevitas QCDQ convolutions (per-channel int8 weights, int32 bias) ------------------
CONVS = {
    "conv3x3_relu": {},
    "conv3x3_stride2_pad": {"stride": 2},
    "conv1x1_per_tensor_no_bias": {"kernel": 1, "padding": 0, "per_channel": False,
                                   "bias": False, "act": "none"},
    "depthwise_dilated": {"groups": 8, "dilation": 2, "padding": 2},
    "grouped_2": {"groups": 2, "out_ch": 6},
    # more groups than TFLite Micro's CONCATENATION takes inputs (10): one grouped CONV_2D
    "grouped_16_stride2": {"groups": 16, "in_ch": 32, "out_ch": 48, "stride": 2},
}


@pytest.fixture(scope="module")
def conv_results(tmp_path_factory):
    """Every `CONVS` model exported by Brevitas and to TFLite, verified in one batch."""
    tmp = tmp_path_factory.mktemp("convs")
    cases = sorted(CONVS)
    infos = {}
    for case in cases:
        src = brevitas_conv_model(tmp, **CONVS[case])
        infos[case] = (src, export_tflite(src, tmp / f"{case}.tflite"))
    reports = verify_many([(src, info.path, None) for src, info in infos.values()])
    return {case: (infos[case][1], report) for case, report in zip(cases, reports, strict=True)}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_brevitas_conv_matches_reference(case, conv_results):
    info, report = conv_results[case]
    for backend in BACKENDS:
        exact, lsb = report.worst(backend)
        assert lsb <= 1 and exact >= EXACT, (case, backend, exact, lsb, info.op_counts)
    expected = {"depthwise_dilated": "DEPTHWISE_CONV_2D"}
    assert info.op_counts.get(expected.get(case, "CONV_2D")) == 1, info.op_counts
    assert not {"SPLIT", "CONCATENATION"} & set(info.op_counts), info.op_counts


def _quantization(path, opcode: str):
    """``(weights, bias, input)`` quantization of the first ``opcode`` op in a .tflite."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    sub = model.subgraphs[0]
    code = getattr(schema.BuiltinOperator, opcode)
    op = next(o for o in sub.operators if model.operatorCodes[o.opcodeIndex].builtinCode == code)
    x, w, b = (sub.tensors[i] for i in op.inputs)
    return w, b, x


@pytest.mark.parametrize(("case", "opcode", "axis"), [
    ("conv3x3_relu", "CONV_2D", 0), ("depthwise_dilated", "DEPTHWISE_CONV_2D", 3)])
def test_weights_per_channel_and_bias_at_input_times_weight_scale(case, opcode, axis,
                                                                  conv_results):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    info = conv_results[case][0]
    w, b, x = _quantization(info.path, opcode)
    channels = w.shape[axis]
    assert w.type == schema.TensorType.INT8 and b.type == schema.TensorType.INT32
    assert w.quantization.quantizedDimension == axis
    assert len(w.quantization.scale) == channels and not any(w.quantization.zeroPoint)
    s_x = np.float64(x.quantization.scale[0])
    want = (s_x * np.asarray(w.quantization.scale, np.float64)).astype(np.float32)
    np.testing.assert_allclose(b.quantization.scale, want, rtol=1e-6)
    assert not any(b.quantization.zeroPoint)


def test_boundary_is_the_compiled_models(tmp_path):
    from compiler.reference import boundary

    src = brevitas_block_model(tmp_path)
    info = export_tflite(src, tmp_path / "block.tflite")
    spec = boundary(src)
    for ours, want in zip(info.inputs + info.outputs, spec.inputs + spec.outputs, strict=True):
        n, c, h, w = want.shape
        assert (ours.name, ours.shape) == (want.name, (n, h, w, c))
        assert (ours.scale, ours.zero_point) == (pytest.approx(want.scale), want.zero_point)
    assert json.loads(json.dumps(info.to_dict()))["op_counts"] == info.op_counts


# ---- errors ------------------------------------------------------------------------------
def test_unsupported_op_names_op_node_and_fix(tmp_path):
    src = _qdq_model(tmp_path / "hs.onnx", "HardSigmoid", [X])  # alpha 0.2: not h-sigmoid
    with pytest.raises(UnsupportedOpError, match=r"HardSigmoid \(node 'the_hardsigmoid'\)"
                       r".*alpha 1/6"):
        export_tflite(src, tmp_path / "hs.tflite")
    assert not (tmp_path / "hs.tflite").exists()


def test_unknown_float_op_is_rejected_with_the_supported_list(tmp_path):
    src = _qdq_model(tmp_path / "t.onnx", "Tanh", [X])
    assert unsupported_ops(src) == ["Tanh (node 'the_tanh')"]
    with pytest.raises(UnsupportedOpError, match=r"Tanh \(node 'the_tanh'\).*supported.*Softmax"):
        export_tflite(src, tmp_path / "t.tflite")


def test_matmul_with_a_constant_operand_names_the_fix(tmp_path):
    w = np.linspace(-1, 1, 7 * 3, dtype=np.float32).reshape(7, 3)
    src = _qdq_model(tmp_path / "mm.onnx", "MatMul", [[1, 5, 7]], consts=(w,))
    with pytest.raises(UnsupportedOpError, match=r"MatMul \(node 'the_matmul'\).*constant.*1×1 Conv"):
        export_tflite(src, tmp_path / "mm.tflite")


def test_transpose_of_nhwc_tensors_follows_the_onnx_perm():
    from compiler.tflite.layout import stored_perm

    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # NCHW
    for perm in ((0, 1, 3, 2), (0, 2, 1, 3), (3, 2, 1, 0)):
        stored = x.transpose(0, 2, 3, 1).transpose(stored_perm(perm, 4))
        assert np.array_equal(stored, x.transpose(perm).transpose(0, 2, 3, 1)), perm


def test_block_model_has_no_unsupported_ops(tmp_path):
    assert unsupported_ops(brevitas_block_model(tmp_path)) == []


def test_nearest_resize_that_tflite_cannot_reproduce_is_rejected(tmp_path):
    src = _qdq_model(tmp_path / "r.onnx", "Resize", [X], consts=(None, _SCALES_2X),
                     attrs={"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                            "nearest_mode": "ceil"})
    with pytest.raises(UnsupportedOpError, match="RESIZE_NEAREST_NEIGHBOR"):
        export_tflite(src, tmp_path / "r.tflite")


@pytest.mark.parametrize(("qmin", "qmax", "name"), [
    (-128, 127, "NONE"), (-10, 127, "RELU"), (-10, 110, "RELU6")])
def test_fused_activation_matches_tflite_clamp(qmin, qmax, name):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    out = OutQuant(0.05, -10)  # 6 / 0.05 = 120 → RELU6 clamps to -10 + 120
    assert fused_activation(qmin, qmax, out, "x") == getattr(schema.ActivationFunctionType, name)


def test_fused_activation_rejects_other_clamps():
    with pytest.raises(UnsupportedOpError, match=r"clamps to \[0, 50\]"):
        fused_activation(0, 50, OutQuant(0.05, -10), "Conv (node 'c')")


def test_interpreter_failure_is_reported_not_crashing_the_caller(tmp_path):
    from compiler.tflite.verify import InterpreterError, run_interpreter

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 8)
    for backend in BACKENDS:
        with pytest.raises(InterpreterError, match=backend):
            run_interpreter(backend, bad, [np.zeros((1, 8, 8, 6), np.int8)])
    with pytest.raises(ValueError, match="choose one of"):
        run_interpreter("tfjs", bad, [])


def test_verify_command_prints_one_json_report(tmp_path, capsys):
    from compiler.tflite.verify_cli import main

    src = _qdq_model(tmp_path / "add.onnx", "Add", [X, X])
    export_tflite(src, tmp_path / "add.tflite")
    assert main([str(src), str(tmp_path / "add.tflite"), "--layers", "--backend", "tflm"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [a["backend"] for a in out["agreements"]] == ["tflm"]
    assert [r["ops"] for r in out["layers"]] == [["ADD"]]
    assert all(a["exact"] == 1.0 for a in out["agreements"] + out["layers"])


def test_compare_counts_exact_share_and_max_lsb():
    a = np.array([[0, 5, -128, 127]], np.int8)
    b = np.array([[0, 6, -128, 125]], np.int8)
    assert compare(a, b) == (0.5, 2)


# ---- end to end: the NAS block and every search space ------------------------------------
def _vela(path, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ethosu.vela", str(path), "--accelerator-config",
                           "ethos-u55-128", "--output-dir", str(tmp_path / "vela")],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_block_model_layers_match_and_vela_accepts(tmp_path):
    from compiler.tflite.layers import verify_layers

    src = brevitas_block_model(tmp_path)
    info = export_tflite(src, tmp_path / "block.tflite")
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "CONCATENATION", "HARD_SWISH",
               "LOGISTIC", "MEAN", "AVERAGE_POOL_2D", "RESIZE_BILINEAR"):
        assert op in info.op_counts, (op, info.op_counts)
    rows = verify_layers(src)
    assert rows and max(r.max_lsb for r in rows) <= 1, rows
    proc = _vela(info.path, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


#: Ops TFLite computes with one requantization (rounded twice, see the module docstring).
_ONE_REQUANT = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "SUB", "MUL", "PAD", "SPLIT",
                "CONCATENATION", "HARD_SWISH", "RELU"}


def _space_cases():
    """``min`` of every space, ``seed`` of the cheapest and of the attention space.

    The large seeds cost half a minute each in Brevitas export alone; set
    ``QANAS_TFLITE_ALL_SEEDS=1`` to run the seed of every space.
    """
    import os

    from qanas.space import list_spaces

    spaces = list_spaces()
    seeds = spaces if os.environ.get("QANAS_TFLITE_ALL_SEEDS") else [
        s for s in ("squeezenas-small", "efficient-topformer") if s in spaces]
    return ([compiled_space_param(s, "min", tflite=True) for s in spaces]
            + [compiled_space_param(s, "seed", tflite=True) for s in seeds])


@pytest.mark.slow
@pytest.mark.parametrize(("space", "which"), _space_cases())
def test_space_subnet_exports_runs_and_compiles_with_vela(space, which, tmp_path):
    from compiler.tflite.layers import verify_layers
    from compiler.tflite.verify import input_sensitivity
    from tests.support.space_cases import _export

    src = _export(space, which, tmp_path / f"{space}-{which}.onnx")
    info = export_tflite(src, tmp_path / f"{space}-{which}.tflite")

    # accepted by the interpreters end to end (measured; see input_sensitivity below)
    report = verify_tflite(src, info.path, backends=ALL_BACKENDS)

    # each layer on the reference's own inputs: within 1 LSB, mostly exact
    layers = verify_layers(src)
    assert layers and max(r.max_lsb for r in layers) <= 1, [r for r in layers if r.max_lsb > 1]
    single = [r for r in layers if set(r.ops) <= _ONE_REQUANT]
    exact = sum(r.exact * r.elements for r in single) / sum(r.elements for r in single)
    assert exact >= 0.99, f"single-requantization layers only {exact:.4%} exact"
    # SOFTMAX's int8 output is fixed at 1/256, −128 and tops out at 255/256: a probability
    # of 1 (one token, or one dominant score) lands 1 LSB below ours in any finer grid
    rounded = [r for r in layers if "SOFTMAX" not in r.ops]
    assert min(r.exact for r in rounded) >= EXACT_TWICE, min(rounded, key=lambda r: r.exact)

    proc = _vela(info.path, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    unchanged, moved = input_sensitivity(src)
    print(json.dumps({
        "space": space, "which": which, "ops": info.op_counts, "bytes": info.bytes,
        "end_to_end": {b: dict(zip(("exact", "max_lsb"), report.worst(b), strict=True))
                       for b in ALL_BACKENDS},
        "layers": {b: {"n": sum(r.backend == b for r in layers),
                       "exact_weighted": sum(r.exact * r.elements for r in layers
                                             if r.backend == b)
                       / sum(r.elements for r in layers if r.backend == b),
                       "worst_exact": min(r.exact for r in layers if r.backend == b),
                       "max_lsb": max(r.max_lsb for r in layers if r.backend == b)}
                   for b in BACKENDS},
        "single_requant_exact": exact,
        "reference_input_sensitivity": {"unchanged": unchanged, "max_lsb": moved}}))


#: The attention ops of efficient-topformer in TFLite (MatMul, Softmax, head split, gate).
_ATTENTION_OPS = ("BATCH_MATMUL", "SOFTMAX", "TRANSPOSE", "STRIDED_SLICE")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["min", "seed"])
def test_topformer_at_demo_size_layers_match_and_attention_stays_on_the_npu(which, tmp_path):
    """efficient-topformer at the demo's 64×128 (two attention tokens, so softmax is not
    trivially 1): every layer within 1 LSB, and Vela (ethos-u55-128) puts every attention
    op on the NPU; the CPU operators and Vela's reasons are printed."""
    from compiler.npu.vela import run_vela
    from compiler.tflite.layers import verify_layers
    from targets.npu import ETHOS_U55_128
    from tests.support.firmware_util import export_subnet

    src = export_subnet("efficient-topformer", which, tmp_path / f"{which}.onnx")
    info = export_tflite(src, tmp_path / f"{which}.tflite")
    assert all(op in info.op_counts for op in _ATTENTION_OPS), info.op_counts
    layers = verify_layers(src)
    assert layers and max(r.max_lsb for r in layers) <= 1, [r for r in layers if r.max_lsb > 1]
    report = run_vela(info.path, ETHOS_U55_128, tmp_path / "vela").report
    cpu = [c.to_dict() for c in report.cpu_fallback]
    # Vela names op types in CamelCase ("BatchMatMul", "StridedSlice")
    attention = {op.replace("_", "") for op in _ATTENTION_OPS}
    assert not [c for c in cpu if c["op"].upper() in attention], cpu
    kinds: dict[str, list] = {}
    for r in layers:
        if r.backend == "tflm":
            kinds.setdefault("+".join(r.ops), []).append(r)
    print(json.dumps({
        "subnet": f"efficient-topformer:{which}", "size": [64, 128], "ops": info.op_counts,
        "layers": len(layers) // len(BACKENDS),
        "exact_by_kind": {k: round(sum(r.exact * r.elements for r in rs)
                                   / sum(r.elements for r in rs), 4)
                          for k, rs in kinds.items() if any(
                              op in k for op in (*_ATTENTION_OPS, "AVERAGE_POOL_2D", "MUL"))},
        "vela": {"npu_ops": report.npu_ops, "cpu_ops": report.cpu_ops, "cpu": cpu}}))
