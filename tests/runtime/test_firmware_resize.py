"""The int8 resize kernels and the fused resize + argmax in QEMU (Cortex-M4/M7/M55).

One QDQ model, compiled once: bilinear half-pixel 2× up, nearest 0.6× down (a
non-integer ONNX scale), align-corners bilinear to an odd size, and a 4× bilinear
resize whose argmax is fused (the class map is the output). Each target's firmware must
return exactly the NumPy reference's int8 values and labels.
"""

from __future__ import annotations

import numpy as np
import pytest

from compiler.driver import compile_model
from compiler.frontend import load_model
from compiler.passes import append_argmax, lower_to_integer
from compiler.reference import run_int8_reference
from runtime.runners.qemu import QemuRunner
from tests.support.int8_checks import full_range_inputs
from tests.support.onnx_models import _Zoo
from tests.support.tools import require_tools

pytestmark = pytest.mark.toolchain
QEMU_TARGETS = ["cortex-m4", "cortex-m7", "cortex-m55"]


def _resize_model(rng: np.random.Generator):
    z = _Zoo(rng)  # x: (1, 4, 8, 8), scale 0.05, zero point 3
    up2 = z.const("up2", np.array([1, 1, 2, 2], np.float32))
    down = z.const("down", np.array([1, 1, 0.6, 0.6], np.float32))
    odd = z.const("odd", np.array([1, 4, 11, 5], np.int64))
    up4 = z.const("up4", np.array([1, 1, 4, 4], np.float32))
    z.branch("bilinear", "Resize", ["x_dq", "", up2], 0.03, -4, mode="linear")
    z.branch("nearest_down", "Resize", ["x_dq", "", down], 0.04, 1, mode="nearest",
             nearest_mode="round_prefer_ceil")
    z.branch("align", "Resize", ["x_dq", "", "", odd], 0.05, 0, mode="linear",
             coordinate_transformation_mode="align_corners")
    z.branch("labels", "Resize", ["x_dq", "", up4], 0.04, -2, mode="linear")
    return z.model()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    rng = np.random.default_rng(11)
    model = _resize_model(rng)
    lowered = lower_to_integer(load_model(model))
    out_dir = tmp_path_factory.mktemp("fw_resize") / "project"
    compile_model(lowered, "cortex-m4", out_dir)
    labels_dir = tmp_path_factory.mktemp("fw_argmax") / "project"
    compile_model(append_argmax(lowered), "cortex-m4", labels_dir)
    feeds = full_range_inputs(model, rng)
    return {"logits": out_dir, "labels": labels_dir, "feeds": feeds,
            "ref": run_int8_reference(model, feeds),
            "ref_labels": run_int8_reference(model, feeds, output="argmax")}


@pytest.mark.parametrize("target", QEMU_TARGETS)
def test_resize_kernels_in_qemu_equal_the_reference(project, target):
    got = QemuRunner(target).run(project["logits"], project["feeds"]).outputs
    for name, ref in project["ref"].items():
        np.testing.assert_array_equal(got[name].reshape(ref.shape), ref, err_msg=name)
    labels = QemuRunner(target).run(project["labels"], project["feeds"]).outputs
    for name, ref in project["ref_labels"].items():
        assert labels[name].dtype == np.uint8
        np.testing.assert_array_equal(labels[name].reshape(ref.shape), ref, err_msg=name)
