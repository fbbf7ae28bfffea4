"""Int8 resize offload (`compiler.passes.offload_resize`): every quantized Resize of a model
becomes ``qanas_resize_s8``, bit-exact with the NumPy reference.

One seeded QDQ model: a pointwise conv (a library call) feeds a bilinear half-pixel 2×
upsample that is a model output (the library writes it NCHW, no transpose), a nearest
upsample with a rescale (asymmetric, floor) read by another pointwise conv (it stays
NHWC), and an align-corners bilinear resize to given sizes read straight from the model
input. Compiled for the host and, under QEMU, for cortex-m4 (DSP) and cortex-m55 (Helium).
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from compiler.pipeline import CompileOptions
from compiler.plan_only import plan_model_memory
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.tools import require_tools

X_SHAPE = (1, 6, 5, 7)


def _resize_model() -> onnx.ModelProto:
    rng = np.random.default_rng(5)
    nodes, inits, outputs = [], [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def qdq(x, name, scale, zp):
        s, z = const(f"{name}_s", np.float32(scale)), const(f"{name}_z", np.int8(zp))
        nodes.extend([helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_q"]),
                      helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [name])])
        return name

    def pointwise(x, name, cin, cout):
        w = rng.integers(-127, 128, (cout, cin, 1, 1)).astype(np.int8)
        ws = np.float32(0.004)
        nodes.extend([
            helper.make_node("DequantizeLinear", [const(f"{name}_w", w), const(f"{name}_ws", ws),
                                                  const(f"{name}_wz", np.int8(0))], [f"{name}_wd"]),
            helper.make_node("Conv", [x, f"{name}_wd"], [name])])
        return qdq(name, f"{name}_q", 0.06, 3)

    def output(x, name, scale, zp, shape):
        qdq(x, name, scale, zp)
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))

    def resize(x, name, mode, coordinate, nearest="round_prefer_floor", scales=None,
               sizes=None):
        ins = [x, "", const(f"{name}_scales", np.float32(scales))] if scales else \
              [x, "", "", const(f"{name}_sizes", np.int64(sizes))]
        nodes.append(helper.make_node("Resize", ins, [name], mode=mode, nearest_mode=nearest,
                                      coordinate_transformation_mode=coordinate))
        return name

    n, c, h, w = X_SHAPE
    x = qdq("x", "xq", 0.05, -9)
    pw = pointwise(x, "pw", c, 8)
    up = resize(pw, "up", "linear", "half_pixel", scales=[1, 1, 2, 2])
    output(up, "up_y", 0.05, 1, (n, 8, 2 * h, 2 * w))
    near = qdq(resize(x, "near", "nearest", "asymmetric", nearest="floor",
                      scales=[1, 1, 2, 3]), "near_q", 0.07, -2)
    output(pointwise(near, "near_pw", c, 5), "near_y", 0.06, 3, (n, 5, 2 * h, 3 * w))
    aligned = resize(x, "aligned", "linear", "align_corners", sizes=[n, c, 9, 13])
    output(aligned, "aligned_y", 0.045, 0, (n, c, 9, 13))
    graph = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(X_SHAPE))], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def resize_model():
    model = _resize_model()
    x = np.random.default_rng(2).integers(-128, 128, X_SHAPE).astype(np.int8)
    return model, {"x": x}, run_int8_reference(model, {"x": x})


def _assert_exact(outputs, reference):
    assert set(outputs) == set(reference)
    for name, ref in reference.items():
        got = np.asarray(outputs[name]).reshape(ref.shape)
        assert np.array_equal(got, ref), f"{name}: {(got != ref).sum()} elements differ"


def _resize_fields(project, field: str) -> list[int]:
    """``field`` of every resize step's parameters in the generated ``model.c``."""
    text = (project / "model.c").read_text()
    structs = re.findall(r"qanas_resize_step_t kParams\w* = \{\n(.*?)\n\};", text, re.S)
    return sorted(int(re.search(rf"\.{field} = (-?\d+)", s).group(1)) for s in structs)


def test_every_resize_is_a_library_call_and_bit_exact(resize_model, tmp_path):
    require_tools("gcc", "make")
    model, feeds, reference = resize_model
    result = compile_model(model, "host", tmp_path / "p", optimise="speed")
    resizes = [c for c in result.plan.calls if c.library == "qanas_resize_s8"]
    assert len(resizes) == 3
    assert not any(c.kernel.startswith("resize") for c in result.plan.calls if not c.library)
    # the output resizes write NCHW, the one a library conv reads stays NHWC
    assert _resize_fields(result.out_dir, "out_nchw") == [0, 1, 1]
    assert _resize_fields(result.out_dir, "method") == [0, 1, 1]
    _assert_exact(get_runner("host").run(result.out_dir, feeds).outputs, reference)
    # the plan-only estimate sees the same library calls and arena
    report = plan_model_memory(model, "host", CompileOptions(optimise="speed"))
    assert report.arena_bytes == result.arena_bytes


@pytest.mark.toolchain
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_bit_exact_on_qemu_with_named_layers(resize_model, tmp_path, target):
    """The firmware equals the reference, and ``--per-layer`` names the resize kernel."""
    require_tools("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.qemu import QemuRunner
    from targets import get_target

    model, feeds, reference = resize_model
    result = compile_model(model, target, tmp_path / "p", optimise="speed")
    run = QemuRunner(get_target(target), profile_layers=True).run(result.out_dir, feeds)
    _assert_exact(run.outputs, reference)
    names = [layer["implementation"] for layer in run.protocol["layers"]]
    assert names.count("qanas_resize_s8") == 3
