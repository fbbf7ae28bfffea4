"""Kernel library offload (`compiler.passes.offload_kernels`): which groups become library
calls, and that the compiled model stays bit-exact with the NumPy reference.

One hand-built QDQ model (onnx.helper, seeded) holds a branch per library function, on an
input with a non-zero zero point (so padded taps read it): a grouped strided conv with
asymmetric padding, a dilated depthwise conv with channel multiplier 2, a pointwise conv,
average pooling with and without ``count_include_pad``, global average pooling, add, a
subtraction of a per-channel vector and a squeeze-excite style multiply. It is compiled
with and without the library (both must equal the reference byte for byte), for the host
and for cortex-m55, whose Helium-packed weights run in QEMU and, de-interleaved by the
step adapter, in the host reference build.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from compiler.kernels.calls import STEP_TYPES
from compiler.pipeline import CompileOptions
from compiler.plan_only import plan_model_memory
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.tools import require_tools

X_SHAPE = (1, 8, 9, 9)
X_SCALE, X_ZP = 0.05, -7


class _Model:
    """Accumulates a QDQ graph with int8 activations and per-channel int8 weights."""

    def __init__(self, seed: int = 3):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.outputs = [], [], []

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def qdq(self, x, name, scale, zp=0):
        s, z = self.const(f"{name}_s", np.float32(scale)), self.const(f"{name}_z", np.int8(zp))
        self.nodes += [helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_q"]),
                       helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [name])]
        return name

    def conv(self, x, name, cin, cout, k, group=1, **attrs):
        w = self.rng.integers(-127, 128, (cout, cin // group, k, k)).astype(np.int8)
        ws = (0.003 + 0.004 * self.rng.random(cout)).astype(np.float32)
        b = self.rng.integers(-400, 400, cout).astype(np.int32)
        self.nodes += [
            helper.make_node("DequantizeLinear", [self.const(f"{name}_w", w),
                                                  self.const(f"{name}_ws", ws),
                                                  self.const(f"{name}_wz", np.zeros(cout, np.int8))],
                             [f"{name}_wd"], axis=0),
            helper.make_node("DequantizeLinear", [
                self.const(f"{name}_b", b), self.const(f"{name}_bs", (ws * X_SCALE).astype(np.float32)),
                self.const(f"{name}_bz", np.zeros(cout, np.int32))], [f"{name}_bd"], axis=0),
            helper.make_node("Conv", [x, f"{name}_wd", f"{name}_bd"], [name], group=group,
                             **attrs)]
        return name

    def output(self, x, name, scale, zp, shape):
        self.qdq(x, name, scale, zp)
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))

    def build(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "offload", [helper.make_tensor_value_info(
            "x", TensorProto.FLOAT, list(X_SHAPE))], self.outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def library_zoo() -> onnx.ModelProto:
    """The model of the module docstring: one output per branch."""
    m = _Model()
    x = m.qdq("x", "xq", X_SCALE, X_ZP)
    grouped = m.conv(x, "grouped", 8, 6, 3, group=2, strides=[2, 2], pads=[0, 1, 2, 1])
    m.output(grouped, "grouped_y", 0.06, 3, [1, 6, 5, 5])
    dw = m.conv(x, "dw", 8, 16, 3, group=8, dilations=[2, 2], pads=[2, 2, 2, 2])
    m.nodes.append(helper.make_node("Relu", [dw], ["dw_relu"]))
    m.output("dw_relu", "dw_y", 0.04, -128, [1, 16, 9, 9])
    pw = m.qdq(m.conv(x, "pw", 8, 8, 1), "pw_q", 0.05, 2)
    m.output(pw, "pw_y", 0.05, 2, list(X_SHAPE))
    m.nodes.append(helper.make_node("AveragePool", [x], ["avg_valid"], kernel_shape=[3, 3],
                                    strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0))
    m.output("avg_valid", "avg_valid_y", 0.045, -5, [1, 8, 5, 5])
    m.nodes.append(helper.make_node("AveragePool", [x], ["avg_pad"], kernel_shape=[2, 2],
                                    strides=[2, 2], pads=[0, 0, 1, 1], count_include_pad=1))
    m.output("avg_pad", "avg_pad_y", 0.03, 1, [1, 8, 5, 5])
    m.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    gap = m.qdq("gap", "gap_q", 0.02, 4)
    m.output(gap, "gap_y", 0.02, 4, [1, 8, 1, 1])
    m.nodes.append(helper.make_node("Add", [pw, x], ["sum"]))
    m.output("sum", "sum_y", 0.09, -3, list(X_SHAPE))
    m.nodes.append(helper.make_node("Sub", [x, gap], ["diff"]))
    m.output("diff", "diff_y", 0.07, 0, list(X_SHAPE))
    m.nodes.append(helper.make_node("Mul", [gap, pw], ["gated"]))
    m.output("gated", "gated_y", 0.01, -2, list(X_SHAPE))
    return m.build()


EXPECTED = {"qanas_conv2d_s8", "qanas_depthwise_conv2d_s8", "qanas_pointwise_conv_s8",
            "qanas_avg_pool2d_s8", "qanas_global_avg_pool_s8", "qanas_add_s8", "qanas_mul_s8"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    model = library_zoo()
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, X_SHAPE).astype(np.int8)
    return model, {"x": x}, run_int8_reference(model, {"x": x}), tmp_path_factory


def _assert_exact(outputs, reference):
    assert set(outputs) == set(reference)
    for name, ref in reference.items():
        got = np.asarray(outputs[name]).reshape(ref.shape)
        assert np.array_equal(got, ref), (
            f"{name}: {(got != ref).sum()} of {ref.size} elements differ from the reference")


@pytest.mark.parametrize("optimise", ["speed", "size"])
def test_every_library_function_is_called_and_bit_exact(zoo, optimise):
    require_tools("gcc", "make")
    model, feeds, reference, tmp = zoo
    result = compile_model(model, "host", tmp.mktemp(f"host_{optimise}") / "p",
                           optimise=optimise)
    called = {c.library for c in result.plan.calls if c.library}
    assert called == EXPECTED
    assert set(result.to_dict()["kernel_library"]) == EXPECTED
    assert set(result.to_dict()["kernel_implementations"]) >= EXPECTED
    assert result.float_kernels == {}
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)
    # only the model's input and outputs cross between layouts: every transpose reads the
    # input or writes an output
    for call in result.plan.calls:
        if call.kernel.startswith("transpose"):
            assert (call.inputs[0] in result.plan.inputs
                    or call.outputs[0] in result.plan.outputs), call
    report = plan_model_memory(model, "host", CompileOptions(optimise=optimise))
    assert report.arena_bytes == result.arena_bytes


def test_without_the_library_the_same_bytes(zoo):
    require_tools("gcc", "make")
    model, feeds, reference, tmp = zoo
    result = compile_model(model, "host", tmp.mktemp("tvm") / "p", library=False)
    assert not any(c.library for c in result.plan.calls)
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)


def test_step_adapters_cover_every_library_function():
    from runtime import C_RUNTIME_DIR

    header = (C_RUNTIME_DIR / "include" / "qanas" / "kernel_steps.h").read_text()
    for function, step_type in STEP_TYPES.items():
        assert f"qanas_step_{function.removeprefix('qanas_')}(" in header
        assert f"}} {step_type};" in header


@pytest.mark.toolchain
def test_helium_packed_weights_on_qemu_and_on_the_host(zoo):
    """A cortex-m55 project (Helium-packed conv weights) is bit-exact in QEMU, and in its
    host reference build (the adapter de-interleaves the weights there)."""
    require_tools("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.qemu import QemuRunner
    from targets import get_target

    model, feeds, reference, tmp = zoo
    result = compile_model(model, "cortex-m55", tmp.mktemp("m55") / "p", optimise="speed")
    assert any(c.library == "qanas_conv2d_s8" for c in result.plan.calls)
    assert "-DQANAS_KERNELS_NO_MVE" not in (result.out_dir / "sources.mk").read_text()
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)
    qemu = QemuRunner(get_target("cortex-m55"), profile_layers=True).run(result.out_dir, feeds)
    _assert_exact(qemu.outputs, reference)
    # per-layer profile (qanas bench --per-layer) names what each step ran
    layers = qemu.protocol["layers"]
    assert [layer["implementation"] for layer in layers] == [
        c.library or c.kernel for c in result.plan.calls]
    assert all(layer["value"] > 0 for layer in layers)
