"""Role names of plan buffers (`compiler.roles`) and the tables of model.c that use them.

Before: a plan's buffers are ``const_<n>`` / ``k<step>_out``. Expected: constants are named
in the plan by layer and part, intermediates and scratch by layer in model.c, all distinct
from each other and from the model's input and output identifiers, deterministically.
"""

from __future__ import annotations

import re

import numpy as np

from compiler.plan import BufferInfo, ExecutionPlan, KernelCall
from compiler.project.model_c import c_names
from compiler.roles import assign, constant_parts, kernel_role, layer_names, role_names


def _buf(name, shape, dtype, kind):
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return BufferInfo(name, tuple(shape), dtype, kind, size, 0, 0)


def _plan(input_name="x", output_name="y") -> ExecutionPlan:
    """x → conv (weights, bias, multiplier) → depthwise conv → resize → y."""
    bufs = [_buf(input_name, (1, 4, 4, 4), "int8", "input"),
            _buf("const_0", (8, 4, 1, 1), "int8", "constant"),
            _buf("const_1", (1, 8, 1, 1), "int32", "constant"),
            _buf("const_2", (1, 8, 1, 1), "int64", "constant"),
            _buf("k0_out", (1, 8, 4, 4), "int8", "intermediate"),
            _buf("const_3", (8, 1, 3, 3), "int8", "constant"),
            _buf("k1_out", (1, 8, 4, 4), "int8", "intermediate"),
            _buf("workspace_1", (64,), "uint8", "workspace"),
            _buf(output_name, (1, 8, 8, 8), "int8", "output")]
    calls = (KernelCall(0, "fused_conv2d_add_cast_multiply", (input_name, "const_0", "const_1",
                                                                "const_2"), ("k0_out",)),
             KernelCall(1, "fused_conv2d1_cast1", ("k0_out", "const_3", "const_2"), ("k1_out",),
                        "workspace_1"),
             KernelCall(2, "resize_linear_int8", ("k1_out",), (output_name,)))
    consts = {b.name: np.zeros(b.shape, b.dtype) for b in bufs if b.kind == "constant"}
    return ExecutionPlan(calls, {b.name: b for b in bufs}, (input_name,), (output_name,),
                         consts)


def test_kernel_role_reads_the_main_operator_of_a_fused_name():
    assert kernel_role("fused_conv2d3_cast6_multiply3_right_shift3_tir_clip2_cast7") == "conv"
    assert kernel_role("fused_cast4_multiply4_concatenate_cast8_add11") == "concat"
    assert kernel_role("resize_linear_int8") == "resize"
    assert kernel_role("take1") == "gather"
    assert kernel_role("irb12_k5s2e96_res") == "block"
    assert kernel_role("fused_cast8_sum") == "sum"
    assert kernel_role("something_else") == "layer"


def test_layers_count_per_role_and_tell_depthwise_from_dense_convs():
    names = layer_names(["fused_conv2d", "fused_conv2d1", "fused_conv2d2", "take", "take1"],
                        [[(8, 4, 3, 3)], [(8, 1, 3, 3)], [(8, 8, 1, 1)], [], []])
    assert names == ["conv0", "dwconv0", "conv1", "gather0", "gather1"]


def test_block_parts_follow_expand_depthwise_project():
    parts = constant_parts([(16, 8, 1, 1), (1, 16, 1, 1), (1, 16, 1, 1), (16, 1, 3, 3),
                            (1, 16, 1, 1), (8, 16, 1, 1), (1,)],
                           ["int8", "int32", "int64", "int8", "int32", "int8", "int64"],
                           block=True)
    assert parts == ["expand_weights", "expand_bias", "param0", "dw_weights", "dw_bias",
                     "project_weights", "param1"]


def test_assign_suffixes_clashes_in_order():
    assert assign({"a": "n", "b": "n", "c": "m"}, taken=["m"]) == {"a": "n", "b": "n_2",
                                                                   "c": "m_2"}


def test_role_names_of_a_plan():
    plan = _plan()
    names = role_names(plan.calls, plan.buffers, ("constant", "intermediate", "workspace"),
                       taken=["x", "y"])
    assert names == {"const_0": "conv0_weights", "const_1": "conv0_bias",
                     "const_2": "conv0_param0", "k0_out": "conv0_out",
                     "const_3": "dwconv0_weights", "k1_out": "dwconv0_out",
                     "workspace_1": "dwconv0_scratch"}


def test_model_c_names_avoid_the_models_own_names():
    """A model input named like a role keeps its name; the role gets a suffix."""
    plan = _plan(input_name="conv0_out", output_name="dwconv0_scratch")
    names = c_names(plan)
    assert names["conv0_out"] == "conv0_out" and names["k0_out"] == "conv0_out_2"
    assert names["workspace_1"] == "dwconv0_scratch_2"
    assert len(set(names.values())) == len(names)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names.values())
    assert c_names(plan) == names  # deterministic
