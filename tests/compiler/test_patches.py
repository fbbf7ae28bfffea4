"""Patch-based execution (MCUNetV2): the high-resolution head in n x n spatial patches.

Small Brevitas conv stacks (a stride-2 stem, inverted residuals with and without a
residual add, odd input sizes, zero-point padding, a dilated 5x5 depthwise) are compiled
for the host with the ``patches`` technique: bit-exact with the NumPy integer reference
and with the build without patches, a strictly smaller arena, the extra MACs equal to a
count made independently on the ONNX graph, plan-only equal to the compiled arena, and a
model whose head is not its peak left alone. One patched model runs in QEMU on
cortex-m4; squeezenas-small's min subnet at 64x128 runs on the host (``slow``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler import techniques
from compiler.driver import compile_model
from compiler.pipeline import CompileOptions
from compiler.plan_only import plan_model_memory
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.firmware_util import assert_bit_exact, export_subnet
from tests.support.patch_models import CASES, _inputs, _patch_use, export_case
from tests.support.tools import require_tools


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("patches")
    return {name: export_case(name, directory) for name in CASES}


@pytest.fixture
def without_patches(monkeypatch):
    """Compiles with every technique but patches (the baseline the arena is compared to)."""
    def apply():  # a filtered copy: the registry's order (patches first) stays intact
        monkeypatch.setattr(techniques, "TECHNIQUES", {
            k: v for k, v in techniques.TECHNIQUES.items() if k != "patches"})
    return apply


def _tiles(extent: int, n: int) -> list[tuple[int, int]]:
    n = min(n, extent)
    size = -(-extent // n)
    return [(min(i * size, extent - size), min(i * size, extent - size) + size)
            for i in range(n)]


def _attrs(node) -> dict:
    return {a.name: list(a.ints) or a.i for a in node.attribute}


def _macs_per_pixel(conv, shapes: dict) -> int:
    a = _attrs(conv)
    return (shapes[conv.output[0]][1] * shapes[conv.input[0]][1] // (a.get("group") or 1)
            * int(np.prod(a["kernel_shape"])))


def _hull(need: dict, name: str, box) -> None:
    old = need.get(name)
    need[name] = box if old is None else tuple(
        (min(o[0], b[0]), max(o[1], b[1])) for o, b in zip(old, box, strict=True))


def onnx_patch_macs(path: Path, split_shape: tuple[int, int, int], n: int) -> tuple[int, int]:
    """(MACs of the head's convs once, MACs in n x n patches), counted on the ONNX graph.

    The head is every node from the input up to the first Conv whose output has
    `split_shape` (C, H, W) and that conv's requantization. Per patch, each activation
    tensor's box is the hull of what its readers need (a Conv: its receptive field,
    clipped to the tensor; every other node: the same box).
    """
    model = onnx.shape_inference.infer_shapes(onnx.load(path))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    active = {model.graph.input[0].name}
    nodes = []
    for node in model.graph.node:
        if any(i in active for i in node.input):
            active.update(node.output)
            nodes.append(node)
    convs = [nd for nd in nodes if nd.op_type == "Conv"]
    last = min(i for i, nd in enumerate(convs) if tuple(shapes[nd.output[0]][1:]) == split_shape)
    stop = nodes.index(convs[last])
    while (stop + 1 < len(nodes) and nodes[stop + 1].op_type != "Conv"
           and tuple(shapes[nodes[stop + 1].output[0]][1:]) == split_shape):
        stop += 1  # the split's requantization (and its residual add)
    once = sum(_macs_per_pixel(c, shapes) * int(np.prod(shapes[c.output[0]][2:]))
               for c in convs[:last + 1])
    patched = 0
    for rows in _tiles(split_shape[1], n):
        for cols in _tiles(split_shape[2], n):
            need = {nodes[stop].output[0]: (rows, cols)}
            for node in reversed(nodes[:stop + 1]):
                box = need.get(node.output[0])
                if box is None:
                    continue
                if node.op_type != "Conv":
                    for name in node.input:
                        if name in active:
                            _hull(need, name, box)
                    continue
                a = _attrs(node)
                sizes = shapes[node.input[0]][2:]
                _hull(need, node.input[0], tuple(
                    (max(0, lo * a["strides"][i] - a["pads"][i]),
                     min(sizes[i], (hi - 1) * a["strides"][i] - a["pads"][i]
                         + (a["kernel_shape"][i] - 1) * a["dilations"][i] + 1))
                    for i, (lo, hi) in enumerate(box)))
                patched += (_macs_per_pixel(node, shapes) * (box[0][1] - box[0][0])
                            * (box[1][1] - box[1][0]))
    return once, patched


@pytest.mark.parametrize("name", CASES)
def test_patched_head_is_bit_exact_smaller_and_counted(exported, name, tmp_path,
                                                       any_extra_macs, without_patches):
    require_tools("gcc", "make")
    path = exported[name]
    patched = compile_model(path, "host", tmp_path / "patched")
    use = _patch_use(patched)
    (kernel,) = use["where"]
    inputs = _inputs(patched)
    outputs = get_runner("host").run(patched.out_dir, inputs).outputs
    reference = run_int8_reference(path, inputs)
    np.testing.assert_array_equal(next(iter(outputs.values())), next(iter(reference.values())))
    # the head runs first: the library's patch stage where it is a chain of convolutions
    first = patched.plan.calls[0]
    assert first.kernel == kernel or first.library == "qanas_patch_stage_s8"

    n, shape = kernel.split("_")[1:3]
    once, in_patches = onnx_patch_macs(path, tuple(int(v) for v in shape.split("x")),
                                       int(n[1:]))
    assert use["extra_macs"] == in_patches - once == patched.summary()["extra_macs"]

    report = plan_model_memory(path, "host", CompileOptions())
    assert report.arena_bytes == patched.arena_bytes

    without_patches()
    plain = compile_model(path, "host", tmp_path / "plain")
    assert "patches" not in [t["technique"] for t in plain.summary()["techniques"]]
    assert patched.arena_bytes < plain.arena_bytes
    np.testing.assert_array_equal(
        next(iter(get_runner("host").run(plain.out_dir, inputs).outputs.values())),
        next(iter(outputs.values())))


def test_patched_head_runs_bit_exact_in_qemu(exported, tmp_path, any_extra_macs):
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.firmware_base import HostReferenceRunner
    from runtime.runners.qemu import QemuRunner

    result = compile_model(exported["k3_odd"], "cortex-m4", tmp_path / "m4")
    assert _patch_use(result)["where"][0].startswith("patch0_n")
    inputs = _inputs(result, seed=1)
    host = HostReferenceRunner().run(result.out_dir, inputs).outputs
    assert_bit_exact(QemuRunner("cortex-m4").run(result.out_dir, inputs).outputs, host)
    np.testing.assert_array_equal(
        next(iter(host.values())),
        next(iter(run_int8_reference(exported["k3_odd"], inputs).values())))


def test_no_patches_where_they_do_not_lower_the_bound(tmp_path):
    from compiler.frontend import load_model
    from compiler.passes import lower_to_integer
    from compiler.passes.patch_stage import choose_patches, patch_stages
    from tests.support.qdq_models import brevitas_conv_model

    # one conv: the head is the whole model, its input and output are live at any rate
    lowered = lower_to_integer(load_model(brevitas_conv_model(tmp_path, size=16)))
    assert choose_patches(lowered.mod["main"], lowered.mod, max_extra=10.0) is None
    assert patch_stages(lowered, max_extra=10.0)[1:] == ((), 0)


@pytest.mark.slow
def test_squeezenas_small_min_patched_at_64x128(tmp_path, without_patches):
    """The min subnet's stem sets its arena; patches take it down within 10 % extra MACs."""
    require_tools("gcc", "make")
    from compiler.passes.patch_stage import MAX_EXTRA_MACS
    from qanas.space import get_space
    from targets import total_macs

    path = export_subnet("squeezenas-small", "min", tmp_path / "min.onnx", size=(64, 128),
                         num_classes=6)
    patched = compile_model(path, "host", tmp_path / "patched")
    use = _patch_use(patched)
    space = get_space("squeezenas-small")
    macs = total_macs(space.layer_specs(space.resolve("min"), (64, 128), 6))
    assert use["extra_macs"] <= MAX_EXTRA_MACS * macs
    inputs = _inputs(patched)
    outputs = get_runner("host").run(patched.out_dir, inputs).outputs
    np.testing.assert_array_equal(next(iter(outputs.values())),
                                  next(iter(run_int8_reference(path, inputs).values())))
    without_patches()
    assert patched.arena_bytes < plan_model_memory(path, "host", CompileOptions()).arena_bytes


def test_uneven_tiles_overlap_and_stay_one_patch_in_size(exported, tmp_path):
    """3 x 3 patches of a 6 x 10 split: 10 columns in tiles of 4, the last one overlapping."""
    import dataclasses

    from compiler.frontend import load_model
    from compiler.passes import lower_to_integer
    from compiler.passes.patch_stage import apply_patches, choose_patches

    require_tools("gcc", "make")
    path = exported["k3_odd"]
    lowered = lower_to_integer(load_model(path))
    choice = choose_patches(lowered.mod["main"], lowered.mod, max_extra=10.0)
    choice = dataclasses.replace(choice, n=3, extra_macs=choice.head.extra_macs(3))
    assert choice.name == "patch0_n3_16x6x10"
    once, in_patches = onnx_patch_macs(path, (16, 6, 10), 3)
    assert choice.extra_macs == in_patches - once
    result = compile_model(apply_patches(lowered, choice), "host", tmp_path / "p",
                           optimise="speed", library=False)  # TVM's patch kernel
    inputs = _inputs(result, seed=2)
    outputs = get_runner("host").run(result.out_dir, inputs).outputs
    np.testing.assert_array_equal(next(iter(outputs.values())),
                                  next(iter(run_int8_reference(path, inputs).values())))
    # the stem output (24 x 12 x 19) is one patch's region, not the whole tensor
    assert result.kernels[choice.name].workspace_bytes < 24 * 12 * 19
