"""The AOT execution plan, the memory plan of an emitted project, and its C API contract."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import OutputDirExistsError, compile_model
from compiler.memory import BufferLifetime, get_planner
from compiler.plan import build_plan
from runtime import C_RUNTIME_DIR
from tests.support.onnx_models import make_model
from tests.support.tools import require_tools

WARN = ["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror"]


def chain_model():
    """x → conv → relu → conv → y0, and y0 + skip(relu) → y1: two outputs, reuse."""
    rng = np.random.default_rng(3)
    w0 = numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w0")
    w1 = numpy_helper.from_array(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), "w1")
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1"], ["y0"]),
        helper.make_node("Add", ["y0", "r0"], ["y1"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y0", "y1")]
    return make_model(nodes, [x], outs, [w0, w1])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    require_tools("gcc", "make")
    out = tmp_path_factory.mktemp("chain") / "proj"
    result = compile_model(chain_model(), "host", out)
    proc = subprocess.run(["make", "-s", "-C", str(out), "-j2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # -Wall -Wextra -Werror over every file
    return out, result


def test_plan_orders_calls_by_data_dependence(project):
    plan = project[1].plan
    written = set(plan.inputs) | {n for n, b in plan.buffers.items() if b.kind == "constant"}
    for call in plan.calls:
        assert set(call.inputs) <= written, f"step {call.index} reads before it is written"
        written |= set(call.outputs)
    assert plan.outputs == ("y0", "y1")
    assert plan.num_steps >= 3


def test_plan_lifetimes_match_uses(project):
    plan = project[1].plan
    last = plan.num_steps - 1
    for name, b in plan.buffers.items():
        uses = [c.index for c in plan.calls if name in c.args]
        if b.kind == "constant":
            assert (b.first, b.last) == (0, last)
        elif b.kind == "input":
            assert (b.first, b.last) == (0, max(uses))
        elif b.kind == "output":
            assert b.first == min(uses) and b.last == last
        elif b.kind == "intermediate":
            assert (b.first, b.last) == (min(uses), max(uses))
        else:
            assert b.kind == "workspace" and b.first == b.last == uses[0]
        assert b.size == (int(np.prod(b.shape)) * np.dtype(b.dtype).itemsize
                          if b.kind != "workspace" else b.size)


def test_memory_plan_is_valid_and_tight(project):
    out, result = project
    lifetimes = result.plan.lifetimes()
    result.memory.validate(lifetimes)
    assert result.arena_bytes == result.lower_bound_bytes
    assert get_planner("no-reuse").plan(lifetimes).arena_bytes > result.arena_bytes
    saved = json.loads((out / "plan.json").read_text())
    assert saved["memory"]["offsets"] == result.memory.offsets
    assert [c["kernel"] for c in saved["calls"]] == [c.kernel for c in result.plan.calls]


def test_workspace_buffers_live_at_their_step_only(project):
    plan = project[1].plan.with_workspaces({0: 100, 1: 0})
    ws = plan.buffers["workspace_0"]
    assert (ws.kind, ws.first, ws.last, ws.size) == ("workspace", 0, 0, 100)
    assert plan.calls[0].workspace == "workspace_0" and plan.calls[1].workspace is None
    assert BufferLifetime("workspace_0", 100, 0, 0) in plan.lifetimes()


def test_header_declares_the_api(project):
    out, result = project
    header = (out / "model.h").read_text()
    for needle in ("#define QANAS_MODEL_ARENA_BYTES", "QANAS_MODEL_NUM_INPUTS 1u",
                   "QANAS_MODEL_NUM_OUTPUTS 2u", "qanas_model_init(uint8_t *arena",
                   "qanas_model_output_name(size_t i)", "QANAS_KERNEL_BEGIN"):
        assert needle in header
    assert f"QANAS_MODEL_ARENA_BYTES {result.arena_bytes}u" in header
    assert "const float qanas_model_conv0_weights[72]" in (out / "weights.c").read_text()


API_TEST = r"""
#include <stdio.h>
#include <string.h>
#include "model.h"
static uint8_t arena[QANAS_MODEL_ARENA_BYTES + 16] QANAS_ALIGNED(16);
int main(void) {
  int fails = 0;
#define EXPECT(cond) do { if (!(cond)) { printf("FAILED %s\n", #cond); ++fails; } } while (0)
  EXPECT(qanas_model_run() == QANAS_ERROR_NOT_INITIALIZED);
  EXPECT(qanas_model_input(0) == NULL);
  EXPECT(qanas_model_init(NULL, sizeof(arena)) == QANAS_ERROR_BAD_ARGUMENT);
  EXPECT(qanas_model_init(arena + 1, QANAS_MODEL_ARENA_BYTES) == QANAS_ERROR_BAD_ARGUMENT);
  EXPECT(qanas_model_init(arena, QANAS_MODEL_ARENA_BYTES - 1) == QANAS_ERROR_ARENA_TOO_SMALL);
  EXPECT(qanas_model_init(arena, QANAS_MODEL_ARENA_BYTES) == QANAS_OK);
  EXPECT(qanas_model_input_bytes(0) == QANAS_MODEL_INPUT_0_BYTES);
  EXPECT(qanas_model_output_bytes(1) == QANAS_MODEL_OUTPUT_1_BYTES);
  EXPECT(qanas_model_output_bytes(2) == 0 && qanas_model_output(2) == NULL);
  EXPECT(strcmp(qanas_model_output_name(1), "y1") == 0);
  EXPECT((uint8_t *)qanas_model_input(0) >= arena &&
         (uint8_t *)qanas_model_input(0) + qanas_model_input_bytes(0) <= arena + sizeof(arena));
  memset(qanas_model_input(0), 0, qanas_model_input_bytes(0));
  EXPECT(qanas_model_run() == QANAS_OK);
  return fails;
}
"""


def test_c_api_validates_in_init(project, tmp_path):
    out, _ = project
    src = tmp_path / "api_test.c"
    src.write_text(API_TEST)
    exe = tmp_path / "api_test"
    subprocess.run(["gcc", *WARN, f"-I{out}", f"-I{out}/runtime/include", str(src),
                    str(out / "build" / "libmodel.a"), "-lm", "-o", str(exe)], check=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


WORKSPACE_TEST = r"""
#include <stdio.h>
#include "qanas/workspace.h"
static uint8_t region[64] __attribute__((aligned(16)));
int main(void) {
  int fails = 0;
#define EXPECT(cond) do { if (!(cond)) { printf("FAILED %s\n", #cond); ++fails; } } while (0)
  qanas_workspace_set(region, sizeof(region));
  uint8_t *a = TVMBackendAllocWorkspace(1, 0, 20, 2, 32);   /* 32 bytes reserved */
  uint8_t *b = TVMBackendAllocWorkspace(1, 0, 16, 2, 32);
  EXPECT(a == region && b == region + 32);
  EXPECT(TVMBackendAllocWorkspace(1, 0, 17, 2, 32) == NULL);  /* 48 + 32 > 64 */
  EXPECT(qanas_workspace_status() == QANAS_ERROR_WORKSPACE_EXHAUSTED);
  EXPECT(TVMBackendFreeWorkspace(1, 0, b) == 0 && TVMBackendFreeWorkspace(1, 0, a) == 0);
  EXPECT(TVMBackendAllocWorkspace(1, 0, 64, 2, 32) == region);  /* LIFO frees reclaim */
  EXPECT(qanas_workspace_peak() == 64);
  qanas_workspace_set(NULL, 0);
  EXPECT(TVMBackendAllocWorkspace(1, 0, 1, 2, 32) == NULL);
  EXPECT(qanas_workspace_status() == QANAS_ERROR_WORKSPACE_EXHAUSTED);
  return fails;
}
"""


def test_workspace_allocator_serves_only_the_planned_region(tmp_path):
    require_tools("gcc")
    src = tmp_path / "ws_test.c"
    src.write_text(WORKSPACE_TEST)
    exe = tmp_path / "ws_test"
    subprocess.run(["gcc", *WARN, f"-I{C_RUNTIME_DIR / 'include'}", str(src),
                    str(C_RUNTIME_DIR / "src" / "workspace.c"), "-o", str(exe)], check=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_existing_project_needs_force(project):
    out, _ = project
    with pytest.raises(OutputDirExistsError, match="--force"):
        compile_model(chain_model(), "host", out)


def test_build_plan_names_unsupported_relax_op():
    from tvm import relax

    from compiler.errors import UnsupportedOpError

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4,), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.call_pure_packed("my_ext_fn", x,
                                                  ty_args=relax.TensorType((4,), "float32")))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    with pytest.raises(UnsupportedOpError, match="call_pure_packed"):
        build_plan(bb.get())
