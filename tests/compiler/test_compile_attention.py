"""Int8 attention through the compiler: softmax, MatMul of two activations, Reshape /
Transpose / Slice of int8 tensors, and an `efficient-topformer` subnet end to end.

References: the NumPy integer reference (`compiler.reference`, bit-exact), onnxruntime
(the softmax within 1 LSB, per op, on random inputs and scales), TVM's VM running the
lowered Relax module (the TIR softmax kernel), and the host build under QEMU.
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from compiler.errors import UnsupportedOpError
from compiler.frontend import load_model
from compiler.passes import lower_to_integer
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.int8_checks import agreement, full_range_inputs, onnxruntime_int8
from tests.support.onnx_models import _one_op_model


def _host(model, out_dir, feeds, **options) -> np.ndarray:
    result = compile_model(model, "host", out_dir, force=True, **options)
    assert result.quantized and not result.float_kernels, result.float_kernels
    return next(iter(get_runner("host").run(result.out_dir, feeds).outputs.values()))


def _vm(model, feeds) -> np.ndarray:
    import tvm
    from tvm import relax

    lowered = lower_to_integer(load_model(model))
    vm = relax.VirtualMachine(tvm.compile(lowered.mod, target="llvm"), tvm.cpu())
    return vm["main"](*(tvm.runtime.tensor(v) for v in feeds.values())).numpy()


def _library_functions(project) -> set[str]:
    plan = json.loads((project / "plan.json").read_text())
    return {c.get("library") for c in plan["calls"] if c.get("library")}


@pytest.mark.parametrize("seed", range(4))
def test_softmax_is_the_reference_and_within_one_lsb_of_onnxruntime(seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = [1, int(rng.integers(1, 5)), int(rng.integers(1, 20)), int(rng.integers(2, 70))]
    uint8 = seed % 2 == 0  # our flow's calibrated uint8 output, or TFLite's int8 1/256
    model = _one_op_model("Softmax", [shape], shape, [float(rng.uniform(0.01, 0.4))],
                          1 / 255 if uint8 else 1 / 256, 0 if uint8 else -128,
                          TensorProto.UINT8 if uint8 else TensorProto.INT8, axis=-1)
    feeds = full_range_inputs(model, rng)
    ref = run_int8_reference(model, feeds)["out"]
    ours = _host(model, tmp_path / "p", feeds)
    assert np.array_equal(ours.reshape(ref.shape), ref), "the C library's softmax"
    assert np.array_equal(_vm(model, feeds).reshape(ref.shape), ref), "the TIR softmax"
    exact, worst = agreement(ours, onnxruntime_int8(model, feeds, optimized=False)["out"])
    print(f"softmax {shape}: {exact:.2%} exact vs onnxruntime, {worst} LSB max")
    assert worst <= 1


def _attention_model(heads: int = 2, tokens: int = 4, dim: int = 8) -> onnx.ModelProto:
    """One attention head group as TopFormer exports it: the input (1, heads·dim, 1, tokens)
    split into heads by Reshape/Transpose, ``softmax(Q·Kᵀ)·V``, heads joined again, and a
    channel Slice; every product and the softmax between DequantizeLinear/QuantizeLinear."""
    nodes, inits = [], []

    def q_dq(name: str, scale: float, zp: int = 0, dtype=np.int8) -> str:
        inits.extend([numpy_helper.from_array(np.float32(scale), f"{name}_s"),
                      numpy_helper.from_array(np.array(zp, dtype), f"{name}_z")])
        nodes.extend([helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"],
                                       [f"{name}_q"]),
                      helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s",
                                                            f"{name}_z"], [f"{name}_dq"])])
        return f"{name}_dq"

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    x = q_dq("x", 0.05)
    heads_shape = const("heads", [1, heads, dim, tokens])
    nodes += [helper.make_node("Reshape", [x, heads_shape], ["split"]),
              helper.make_node("Transpose", ["split"], ["q"], perm=[0, 1, 3, 2]),
              helper.make_node("MatMul", ["q", "split"], ["qk"])]
    nodes.append(helper.make_node("Softmax", [q_dq("qk", 0.3)], ["attn"], axis=-1))
    nodes.append(helper.make_node("MatMul", [q_dq("attn", 1 / 255, 0, np.uint8), "q"], ["av"]))
    joined = const("joined", [1, heads * dim, 1, tokens])
    nodes += [helper.make_node("Transpose", [q_dq("av", 0.04)], ["av_t"], perm=[0, 1, 3, 2]),
              helper.make_node("Reshape", ["av_t", joined], ["merged"]),
              helper.make_node("Slice", ["merged", const("s0", [-dim - 3]), const("s1", [2**40]),
                                         const("s2", [1])], ["half"])]
    out = q_dq("half", 0.05)
    graph = helper.make_graph(
        nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           [1, heads * dim, 1, tokens])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, dim + 3, 1, tokens])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("library", [True, False], ids=["library", "tvm-kernels"])
def test_attention_block_is_bit_exact_with_the_reference(library, tmp_path):
    model = _attention_model()
    rng = np.random.default_rng(1)
    feeds = full_range_inputs(model, rng)
    ref = next(iter(run_int8_reference(model, feeds).values()))
    ours = _host(model, tmp_path / "p", feeds, library=library)
    assert np.array_equal(ours.reshape(ref.shape), ref)
    assert np.array_equal(_vm(model, feeds).reshape(ref.shape), ref)
    assert agreement(ours, next(iter(onnxruntime_int8(model, feeds).values())))[1] <= 1
    called = _library_functions(tmp_path / "p")
    assert called == ({"qanas_softmax_s8", "qanas_matmul_s8"} if library else set()), called


def test_a_long_reduction_reads_v_before_its_head_split_transpose(tmp_path):
    """16 tokens: ``softmax·V`` reduces over 16, so the library reads V's head split
    before its transpose (``transpose_b``); Q·Kᵀ (key dim 8) reads K as ``[K][N]``.
    Bit-exact either way."""
    model = _attention_model(tokens=16)
    feeds = full_range_inputs(model, np.random.default_rng(2))
    ref = next(iter(run_int8_reference(model, feeds).values()))
    ours = _host(model, tmp_path / "p", feeds)
    assert np.array_equal(ours.reshape(ref.shape), ref)
    flags = re.findall(r"\.k = (\d+),.*?\.transpose_b = (\d)",
                       (tmp_path / "p" / "model.c").read_text(), re.S)
    assert sorted(flags) == [("16", "1"), ("8", "0")], flags


def test_int8_softmax_over_another_axis_is_refused_by_name():
    model = _one_op_model("Softmax", [[1, 2, 3, 4]], [1, 2, 3, 4], [0.1], 1 / 256, -128,
                          TensorProto.INT8, axis=1)
    with pytest.raises(UnsupportedOpError, match="last axis only"):
        load_model(model)


def test_slice_with_a_negative_step_is_refused_by_name():
    model = _one_op_model("Slice", [[1, 4, 2, 2]], [1, 2, 2, 2], [0.1], 0.1, 0,
                          TensorProto.INT8)
    node = model.graph.node[2]
    for name, value in (("st", [3]), ("en", [1]), ("ax", [1]), ("sp", [-1])):
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
        node.input.append(name)
    with pytest.raises(UnsupportedOpError, match="only positive steps"):
        load_model(model)


@pytest.mark.slow
@pytest.mark.toolchain
def test_topformer_seed_is_bit_exact_on_the_host_and_on_cortex_m55(tmp_path):
    """TopFormer-T (the space's seed) at the demo's 64×128: the C for cortex-m55 (Helium
    kernels, the library's softmax) equals the NumPy reference on the host build and the
    host build under QEMU, instruction count printed."""
    from runtime.runners.qemu import QemuRunner
    from tests.support.firmware_util import assert_bit_exact, export_subnet, inputs_and_reference
    from tests.support.tools import require_tools

    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    onnx_path = export_subnet("efficient-topformer", "seed", tmp_path / "seed.onnx")
    result = compile_model(str(onnx_path), "cortex-m55", tmp_path / "project")
    assert result.quantized and not result.float_kernels, result.float_kernels
    assert "qanas_softmax_s8" in _library_functions(result.out_dir)
    inputs, expected = inputs_and_reference(result.out_dir)
    ref = run_int8_reference(str(onnx_path), inputs)
    for name, value in expected.items():
        assert np.array_equal(value.reshape(ref[name].shape), ref[name]), name
    run = QemuRunner("cortex-m55").run(result.out_dir, inputs)
    assert_bit_exact(run.outputs, expected)
    print(json.dumps({"subnet": "efficient-topformer:seed", "size": [64, 128],
                      "target": "cortex-m55", "instructions": run.protocol["latency"][0],
                      "sram_bytes": run.protocol["sram_bytes"]}))
