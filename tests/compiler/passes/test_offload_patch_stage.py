"""The patch stage on the kernel library (`compiler.passes.offload_patch_stage`).

A head that is a chain of convolutions (stride-2 stem, expand, stride-2 depthwise,
project) runs as one ``qanas_patch_stage_s8`` step: bit-exact with the NumPy integer
reference, with TVM's patch kernel (``library=False``) and in QEMU on cortex-m4, its
arena planned equally by plan-only (the adapter refuses regions that exceed the scratch
`scratch_bytes` planned); the same holds for uneven tiles (the last overlapping the one
before).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compiler.driver import compile_model
from compiler.pipeline import CompileOptions
from compiler.plan_only import plan_model_memory
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.firmware_util import assert_bit_exact
from tests.support.patch_models import _inputs, _patch_use
from tests.support.tools import require_tools

FUNCTION = "qanas_patch_stage_s8"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """`test_patches`' odd-sized case: its chosen head (stem, expand, stride-2 depthwise,
    project) is a chain of convolutions; a residual block follows the split."""
    from tests.support.patch_models import export_case

    return export_case("k3_odd", tmp_path_factory.mktemp("chain"))


def _library_step(result):
    (step,) = [c for c in result.plan.calls if c.library == FUNCTION]
    return step


def test_conv_chain_head_runs_on_the_library_bit_exact(chain, tmp_path, any_extra_macs):  # noqa: F811
    require_tools("gcc", "make")
    result = compile_model(chain, "host", tmp_path / "lib")
    assert _patch_use(result)["where"][0].startswith("patch0_n")
    assert result.plan.calls[0] is _library_step(result)
    inputs = _inputs(result)
    outputs = get_runner("host").run(result.out_dir, inputs).outputs
    reference = run_int8_reference(chain, inputs)
    np.testing.assert_array_equal(next(iter(outputs.values())), next(iter(reference.values())))

    tvm_kernel = compile_model(chain, "host", tmp_path / "tvm", library=False)
    assert not [c for c in tvm_kernel.plan.calls if c.library]
    np.testing.assert_array_equal(
        next(iter(get_runner("host").run(tvm_kernel.out_dir, inputs).outputs.values())),
        next(iter(outputs.values())))
    assert plan_model_memory(chain, "host", CompileOptions()).arena_bytes == result.arena_bytes


def test_conv_chain_head_runs_bit_exact_in_qemu(chain, tmp_path, any_extra_macs):  # noqa: F811
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.firmware_base import HostReferenceRunner
    from runtime.runners.qemu import QemuRunner

    result = compile_model(chain, "cortex-m4", tmp_path / "m4")
    _library_step(result)
    inputs = _inputs(result, seed=1)
    host = HostReferenceRunner().run(result.out_dir, inputs).outputs
    assert_bit_exact(QemuRunner("cortex-m4").run(result.out_dir, inputs).outputs, host)


def test_uneven_tiles_on_the_library(chain, tmp_path):
    """3 x 3 patches whose tile size does not divide the split tensor."""
    from compiler.frontend import load_model
    from compiler.passes import lower_to_integer
    from compiler.passes.patch_stage import apply_patches, choose_patches

    require_tools("gcc", "make")
    lowered = lower_to_integer(load_model(chain))
    choice = choose_patches(lowered.mod["main"], lowered.mod, max_extra=10.0)
    choice = dataclasses.replace(choice, n=3, extra_macs=choice.head.extra_macs(3))
    result = compile_model(apply_patches(lowered, choice), "host", tmp_path / "p",
                           optimise="speed")
    _library_step(result)
    inputs = _inputs(result, seed=2)
    outputs = get_runner("host").run(result.out_dir, inputs).outputs
    np.testing.assert_array_equal(next(iter(outputs.values())),
                                  next(iter(run_int8_reference(chain, inputs).values())))
