"""Int4 weights through the compiler: frontend checks, reference, compiled C, flash bytes.

Models are built by tests/support/int4_models.py (opset 21, ``DequantizeLinear`` of INT4
initializers, int8 activations) and checked to run in onnxruntime. A mixed int4/int8
stack compiles end to end (`compile_model`): its int4 convolutions call the int4 kernels
(weights packed two per byte, fewer weight bytes than the same model with int8 weights)
and its outputs equal the NumPy reference on the host (both --optimise modes, and without
the kernel library, where int4 weights are stored as int8) and in QEMU (cortex-m4 DSP
path, cortex-m55). Two inverted residuals with int4 expand / project weights (one with a
residual add, one of stride 2) compile into the fused kernel with those stages packed two
weights per byte, equal to the reference on the host and in QEMU (cortex-m4, cortex-m7,
cortex-m55). A head of int4 and int8 convs runs as the patch stage (``--optimise size``)
with its int4 layers on the int4 convolutions, equal to the reference on the host and in
QEMU. The TFLite export writes INT4 CONV_2D filters that TFLite Micro runs.
Refusals: int4 activations, UINT4 weights, int4 outside Conv weights, non-zero int4 zero
points, Ethos-U targets.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from compiler.errors import UnsupportedOpError
from compiler.frontend import load_model
from compiler.kernels import packing_s4
from compiler.passes.offload_patch_stage import LAYER_KINDS
from compiler.reference import boundary, run_int8_reference
from runtime.runners import get_runner
from tests.support.int4_models import (
    FUSED,
    MIXED,
    PATCH_HEAD,
    ConvSpec,
    int4_conv_model,
    sample_input,
)
from tests.support.qdq_models import run_onnxruntime
from tests.support.tools import require_tools

S4_CALLS = {"qanas_pointwise_conv_s4", "qanas_conv2d_s4"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The mixed stack, an int8 input and its reference output."""
    tmp = tmp_path_factory.mktemp("int4")
    path = int4_conv_model(tmp, MIXED, size=12, seed=3)
    x = np.random.default_rng(5).integers(-128, 128, (1, 4, 12, 12)).astype(np.int8)
    return path, {"input": x}, run_int8_reference(path, {"input": x}), tmp


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """The two fused blocks (`FUSED`), an int8 input and its reference output."""
    tmp = tmp_path_factory.mktemp("int4_fused")
    path = int4_conv_model(tmp, FUSED, size=12, seed=3, name="fused.onnx")
    x = np.random.default_rng(5).integers(-128, 128, (1, 4, 12, 12)).astype(np.int8)
    return path, {"input": x}, run_int8_reference(path, {"input": x}), tmp


def _int8_twin(layers, tmp, name: str):
    """The same model (same seed, so the same float weights) with every weight int8."""
    int8_layers = tuple(ConvSpec(s.kind, s.out_c, s.kernel, s.stride, bits=8, relu=s.relu,
                                 residual=s.residual) for s in layers)
    return int4_conv_model(tmp, int8_layers, size=12, seed=3, name=name)


def _assert_exact(outputs, reference):
    for name, ref in reference.items():
        got = np.asarray(outputs[name]).reshape(ref.shape)
        assert np.array_equal(got, ref), f"{name}: {(got != ref).sum()} of {ref.size} differ"


def test_reference_follows_onnxruntime(tmp_path):
    """The model runs in onnxruntime, and the integer reference's output, dequantized,
    is within one output step of onnxruntime's on 99 % of the elements."""
    path = int4_conv_model(tmp_path, MIXED, size=12, seed=1)
    x = sample_input(path)
    ort = run_onnxruntime(path, x)
    spec = boundary(path)
    inp, out = spec.inputs[0], spec.outputs[0]
    q = np.clip(np.round(x / inp.scale) + inp.zero_point, -128, 127).astype(np.int8)
    y = run_int8_reference(path, {"input": q})["output"]
    real = (y.astype(np.float64) - out.zero_point) * out.scale
    steps = np.abs(real - ort) / out.scale
    assert len(np.unique(y)) > 16
    assert (steps <= 1.01).mean() >= 0.99, steps.max()


def test_frontend_accepts_int4_conv_weights(tmp_path):
    """Per-channel and per-tensor, narrow [-7, 7] and full [-8, 7], zero point INT4 0 or
    absent: accepted, each INT4 weight recorded for the offload."""
    layers = (ConvSpec("conv", 8, 3, bits=4, per_channel=False, zero_point=False),
              ConvSpec("pw", 8, bits=4, narrow=False), ConvSpec("pw", 4, bits=8))
    model = load_model(int4_conv_model(tmp_path, layers))
    assert len(model.int4_weights) == 2


def _single_node_model(node_inputs, inits, *, op="Conv", act_type=TensorProto.INT8):
    """x (float) → Q(act_type) → DQ → op(DQ(weight)) → y, for the refusal tests."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             *node_inputs,
             helper.make_node(op, ["xd", "wd"], ["y"])]
    shape_y = [1, 4, 4, 4] if op == "Conv" else [1, 4]
    shape_x = [1, 4, 4, 4] if op == "Conv" else [1, 4]
    z = numpy_helper.from_array(np.zeros((), np.int8), "z")
    if act_type != TensorProto.INT8:
        z = helper.make_tensor("z", act_type, [], [0])
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_x)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_y)],
        [numpy_helper.from_array(np.float32(0.05), "s"), z, *inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def _weight_dq(shape, elem=TensorProto.INT4, zp=0):
    values = np.random.default_rng(0).integers(0 if elem == TensorProto.UINT4 else -7, 8,
                                               shape)
    inits = [helper.make_tensor("w", elem, shape, values.reshape(-1).tolist()),
             numpy_helper.from_array(np.float32(0.02), "ws"),
             helper.make_tensor("wz", elem, [], [zp])]
    return [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"])], inits


@pytest.mark.parametrize("case,message", [
    ("uint4_weight", "UINT4 constant 'w'.*signed INT4"),
    ("int4_zero_point", "INT4 weights must be symmetric"),
    ("int4_gemm_weight", "INT4 only as Conv weights"),
    ("int4_activation", "quantizes the activation 'x' to INT4.*int8"),
])
def test_frontend_refuses(case, message):
    """Each 4-bit form qanas does not compile is refused by name, with the fix."""
    if case == "uint4_weight":
        model = _single_node_model(*_weight_dq([4, 4, 1, 1], TensorProto.UINT4))
    elif case == "int4_zero_point":
        model = _single_node_model(*_weight_dq([4, 4, 1, 1], zp=1))
    elif case == "int4_gemm_weight":
        model = _single_node_model(*_weight_dq([4, 4]), op="MatMul")
    else:
        model = _single_node_model(*_weight_dq([4, 4, 1, 1]), act_type=TensorProto.INT4)
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(UnsupportedOpError, match=message):
        load_model(model)


@pytest.mark.parametrize("optimise", ["speed", "size"])
def test_mixed_model_host_bit_exact_and_packed(mixed, optimise):
    """The int4 convolutions call the int4 kernels and the model equals the reference;
    its weights take fewer bytes than the same model with int8 weights."""
    require_tools("gcc", "make")
    path, feeds, reference, tmp = mixed
    result = compile_model(path, "host", tmp / f"host_{optimise}", optimise=optimise)
    called = {c.library for c in result.plan.calls if c.library}
    assert S4_CALLS <= called
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)
    int8_model = _int8_twin(MIXED, tmp, "all_int8.onnx")
    plain = compile_model(int8_model, "host", tmp / f"int8_{optimise}", optimise=optimise)
    saved = sum(s.out_c * s.kernel ** 2 for s in MIXED if s.bits == 4)
    assert result.weights_bytes < plain.weights_bytes
    assert plain.weights_bytes - result.weights_bytes >= saved * 0.4


@pytest.mark.parametrize("optimise", ["speed", "size"])
def test_fused_int4_blocks_host_bit_exact_and_packed(fused, optimise):
    """Both blocks run in the fused kernel, equal the reference, and their int4 1x1 weights
    take exactly the packed rows' bytes (`packing_s4.row_bytes`) instead of a byte each."""
    require_tools("gcc", "make")
    path, feeds, reference, tmp = fused
    result = compile_model(path, "host", tmp / f"host_{optimise}", optimise=optimise)
    called = [c.library for c in result.plan.calls if c.library]
    assert called.count("qanas_inverted_residual_s8") == 2 and not S4_CALLS & set(called)
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)
    plain = compile_model(_int8_twin(FUSED, tmp, "fused_int8.onnx"), "host",
                          tmp / f"int8_{optimise}", optimise=optimise)
    saved, c = 0, 4  # c: the layer's input channels
    for spec in FUSED:
        if spec.bits == 4 and spec.kind == "pw":
            saved += spec.out_c * (c - packing_s4.row_bytes(c))
        c = c if spec.kind == "dw" else spec.out_c
    assert plain.weights_bytes - result.weights_bytes == saved > 0


def test_mixed_model_without_library_bit_exact(mixed):
    """The TVM path (library=False) computes int4 weights stored as int8: same bytes."""
    require_tools("gcc", "make")
    path, feeds, reference, tmp = mixed
    result = compile_model(path, "host", tmp / "tvm", library=False)
    assert not any(c.library for c in result.plan.calls)
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)


@pytest.mark.toolchain
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_mixed_model_qemu_bit_exact(mixed, target):
    """In QEMU: the DSP path of the int4 kernels (a Helium core runs it too) equals the
    reference, next to int8 layers in Helium's own weight layout on cortex-m55."""
    require_tools("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.qemu import QemuRunner
    from targets import get_target

    path, feeds, reference, tmp = mixed
    result = compile_model(path, target, tmp / target, optimise="speed")
    assert S4_CALLS <= {c.library for c in result.plan.calls if c.library}
    _assert_exact(QemuRunner(get_target(target)).run(result.out_dir, feeds).outputs, reference)


@pytest.mark.toolchain
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7", "cortex-m55"])
def test_fused_int4_blocks_qemu_bit_exact(fused, target):
    """In QEMU: the fused kernel with int4 stages (the int4 convolutions' DSP path; on
    cortex-m55 next to Helium's int8 depthwise) equals the reference, for the residual
    block and the stride-2 block."""
    require_tools("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.qemu import QemuRunner
    from targets import get_target

    path, feeds, reference, tmp = fused
    result = compile_model(path, target, tmp / target, optimise="speed")
    called = [c.library for c in result.plan.calls if c.library]
    assert called.count("qanas_inverted_residual_s8") == 2
    _assert_exact(QemuRunner(get_target(target)).run(result.out_dir, feeds).outputs, reference)


def test_tflite_export_writes_int4_filters(mixed):
    """CONV_2D filters of INT4 weights are written INT4 (packed two per byte; the
    depthwise and int8 ones int8), the file is smaller than the all-int8 model's, and
    TFLite Micro runs it within 1 LSB of the reference (TFLite's double rounding)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from compiler.tflite import export_tflite
    from compiler.tflite.verify import verify_tflite

    path, feeds, _, tmp = mixed
    info = export_tflite(path, tmp / "mixed.tflite")
    model = schema.ModelT.InitFromPackedBuf(info.path.read_bytes(), 0)
    types = {t.name.decode().split("/")[0]: t.type for t in model.subgraphs[0].tensors
             if t.name.endswith(b"/weights")}
    int4 = [f"a{i}_q" for i, s in enumerate(MIXED) if s.bits == 4 and s.kind != "dw"]
    assert {k for k, v in types.items() if v == schema.TensorType.INT4} == set(int4)
    int8_layers = tuple(ConvSpec(s.kind, s.out_c, s.kernel, s.stride, bits=8, relu=s.relu)
                        for s in MIXED)
    plain = export_tflite(int4_conv_model(tmp, int8_layers, size=12, seed=3,
                                          name="tfl_int8.onnx"), tmp / "int8.tflite")
    assert info.bytes < plain.bytes
    report = verify_tflite(path, info.path, inputs=feeds, backends=("tflm",))
    assert all(a.max_lsb <= 1 and a.exact > 0.5 for a in report.agreements), report


def test_ethos_u_refuses_int4(mixed):
    """The NPU flow names the 4-bit weights and the fix (Vela has no int4)."""
    from compiler.npu.flow import as_tflite

    path, _, _, tmp = mixed
    with pytest.raises(UnsupportedOpError, match="Vela has no int4.*--bits int8"):
        as_tflite(path, tmp / "npu")


@pytest.mark.parametrize("target", ["host", pytest.param("cortex-m4", marks=pytest.mark.toolchain),
                                    pytest.param("cortex-m55", marks=pytest.mark.toolchain)])
def test_patch_stage_runs_int4_layers_bit_exact(target, tmp_path, any_extra_macs):
    """``--optimise size`` runs the head as the library's patch stage, its int4 3×3 and 1×1
    layers on the int4 convolutions (weights packed), equal to the reference."""
    require_tools("gcc", "make", *(("arm-none-eabi-gcc", "qemu-system-arm")
                                   if target != "host" else ()))
    path = int4_conv_model(tmp_path, PATCH_HEAD, size=40, seed=3, name="head.onnx")
    x = np.random.default_rng(5).integers(-128, 128, (1, 4, 40, 40)).astype(np.int8)
    result = compile_model(path, target, tmp_path / "project", optimise="size")
    assert result.plan.calls[0].library == "qanas_patch_stage_s8"
    kinds = re.search(r"qanas_patch_step_t \w+ = \{.*?\.kinds = \{([^}]*)\}",
                      (result.out_dir / "model.c").read_text(), re.S).group(1)
    assert {LAYER_KINDS["qanas_conv2d_s4"], LAYER_KINDS["qanas_pointwise_conv_s4"]} <= \
        {int(k) for k in kinds.split(",")}
    if target == "host":
        outputs = get_runner("host").run(result.out_dir, {"input": x}).outputs
    else:
        from runtime.runners.qemu import QemuRunner
        from targets import get_target

        outputs = QemuRunner(get_target(target)).run(result.out_dir, {"input": x}).outputs
    _assert_exact(outputs, run_int8_reference(path, {"input": x}))
