"""Plan-only mode: the arena `compile_model` plans, without writing C, byte for byte.

`compiler.plan_only.plan_model_memory` shares every step with `compile_model` but the
kernel scratch, which it reads from the lowered TIR instead of the generated C; these
tests compare the two (with scratch: ``schedule=False`` leaves full-size temporaries in
the kernels), check the options, and the `MemoryBudgetExceeded` that names the largest
input that fits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from compiler.driver import compile_model
from compiler.errors import CompilerError, MemoryBudgetExceeded
from compiler.fit import candidate_sizes, with_input_size
from compiler.pipeline import CompileOptions
from compiler.plan_only import plan_model_memory
from targets import get_target
from tests.support.qdq_models import brevitas_block_model
from tests.support.space_cases import compiled_space_param


@pytest.fixture(scope="module")
def block_model(tmp_path_factory):
    return brevitas_block_model(tmp_path_factory.mktemp("block"), size=32)


def _buffers(plan):
    return sorted((b.kind, b.size, b.first, b.last) for b in plan.arena_buffers())


@pytest.mark.parametrize("schedule", [True, False])
def test_plan_only_equals_the_compiled_arena(block_model, tmp_path, schedule):
    options = CompileOptions(schedule=schedule)
    report = plan_model_memory(block_model, "host", options)
    compiled = compile_model(block_model, "host", tmp_path / "p", schedule=schedule)
    assert report.arena_bytes == compiled.arena_bytes
    assert report.lower_bound_bytes == compiled.lower_bound_bytes
    assert report.workspace_bytes == compiled.to_dict()["workspace_bytes"]
    assert report.weights_bytes == compiled.weights_bytes
    assert report.num_kernels == compiled.plan.num_steps
    assert compiled.report == report
    if not schedule:  # the unscheduled kernels keep full-size temporaries as scratch
        assert report.workspace_bytes > 0
    else:
        assert report.unfused_bound_bytes >= report.lower_bound_bytes


def test_tvm_fused_blocks_plan_their_compiled_scratch_without_the_ring(block_model, tmp_path):
    """With TVM's kernels the fused inverted residuals are row-band kernels; plan-only
    schedules them without the ring of expanded rows (same buffer sizes, no TVMScript round
    trip), and their scratch is still the compiled one."""
    from compiler.codegen.schedule import FUSED_KERNEL

    report = plan_model_memory(block_model, "host", CompileOptions(library=False))
    compiled = compile_model(block_model, "host", tmp_path / "p", library=False)
    assert any(FUSED_KERNEL.match(c.kernel) for c in compiled.plan.calls)
    assert compiled.report == report
    assert report.workspace_bytes == compiled.to_dict()["workspace_bytes"]


def test_compile_json_carries_the_memory_report(block_model, tmp_path):
    import json

    compiled = compile_model(block_model, "host", tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "compile.json").read_text())
    for key in ("arena_bytes", "lower_bound_bytes", "unfused_bound_bytes", "optimise",
                "output", "techniques", "extra_macs"):
        assert saved[key] == compiled.summary()[key], key
    assert saved["optimise"] == "size" and saved["output"] == "logits"


def test_options_name_the_valid_choices():
    with pytest.raises(CompilerError, match="size, speed"):
        CompileOptions(optimise="fast")
    with pytest.raises(CompilerError, match="logits, argmax"):
        CompileOptions(output="labels")


def test_argmax_output_and_speed_mode_are_planned_like_compiled(block_model, tmp_path):
    for options in (CompileOptions(output="argmax"), CompileOptions(optimise="speed")):
        report = plan_model_memory(block_model, "host", options)
        compiled = compile_model(block_model, "host", tmp_path / options.output /
                                 options.optimise, optimise=options.optimise,
                                 output=options.output)
        assert report.arena_bytes == compiled.arena_bytes
        assert compiled.report == report
    argmax = plan_model_memory(block_model, "host", CompileOptions(output="argmax"))
    assert [t.technique for t in argmax.techniques][-1] == "argmax-output"
    assert compiled.io["outputs"][0]["dtype"] == "int8"  # the speed compile keeps logits
    speed = plan_model_memory(block_model, "host", CompileOptions(optimise="speed"))
    assert [t.technique for t in speed.techniques] == ["fused-inverted-residual"]  # no patches
    size = plan_model_memory(block_model, "host")
    assert size.arena_bytes <= speed.arena_bytes
    assert size.unfused_bound_bytes == speed.unfused_bound_bytes


def test_with_input_size_rescales_input_output_and_resize_sizes(block_model):
    proto = onnx.load(str(block_model))
    small = with_input_size(proto, (16, 16))
    dims = [d.dim_value for d in small.graph.input[0].type.tensor_type.shape.dim]
    assert dims[2:] == [16, 16]
    assert plan_model_memory(small, "host").arena_bytes < plan_model_memory(proto, "host").arena_bytes
    assert candidate_sizes((64, 128)) == [(32, 64)]
    assert candidate_sizes((96, 96)) == [(64, 64), (32, 32)]
    assert candidate_sizes((32, 32)) == [(16, 16)]
    with pytest.raises(CompilerError, match="does not scale"):
        _resize_fraction(proto)


def _resize_fraction(proto):
    """A Resize `sizes` constant that a 3/4 size change cannot scale exactly."""
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    model.graph.initializer.append(numpy_helper.from_array(np.array([1, 1, 5, 5], np.int64), "odd"))
    model.graph.node.append(helper.make_node("Resize", ["x", "", "", "odd"], ["unused"]))
    return with_input_size(model, (24, 24))


def test_budget_error_names_best_arena_and_largest_input_that_fits(block_model, tmp_path):
    proto = onnx.load(str(block_model))
    report = plan_model_memory(proto, "host")
    fits_small = plan_model_memory(with_input_size(proto, (16, 16)), "host").arena_bytes
    host = get_target("host")
    tight = dataclasses.replace(host, name="tight", sram=dataclasses.replace(
        host.sram or get_target("cortex-m4").sram, size=fits_small))
    with pytest.raises(MemoryBudgetExceeded) as err:
        compile_model(str(block_model), tight, tmp_path / "p")
    text = str(err.value)
    assert f"{report.arena_bytes:,} B" in text and "--optimise size" in text
    assert "16x16" in text and f"{fits_small:,} B" in text
    assert "bytes over" in text and "Peak at step" in text  # check_budget's detail first
    assert not (tmp_path / "p" / "compile.json").exists()


def test_compile_and_bench_cli_show_the_memory_figures(tmp_path, capsys):
    import json

    from qanas.cli.main import main
    from tests.support.onnx_models import conv_model
    from tests.support.tools import require_tools

    require_tools("gcc", "make")
    model = tmp_path / "conv.onnx"
    onnx.save(conv_model(np.random.default_rng(5), 3, 4, 8, 3, 2, 1, 1, [1, 1, 1, 1]), model)
    capsys.readouterr()
    assert main(["compile", str(model), "--out", str(tmp_path / "p"), "--optimise", "speed",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["optimise"], summary["output"], summary["extra_macs"]) == ("speed", "logits", 0)
    assert summary["unfused_bound_bytes"] >= summary["lower_bound_bytes"] > 0
    assert main(["bench", str(tmp_path / "p"), "--target", "host", "--runner", "host",
                 "--repeats", "1", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert bench["memory"]["arena_bytes"] == summary["arena_bytes"] == bench["sram_bytes"]["arena"]
    assert bench["memory"]["optimise"] == "speed"
    assert main(["bench", str(tmp_path / "p"), "--target", "host", "--optimise", "Size",
                 "--json"]) != 0
    assert "Vela's spelling" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]


def test_report_rows_name_the_techniques_and_where():
    from qanas.report.memory import technique_rows

    assert technique_rows({"arena_bytes": 1}) == ()  # a project from before the figures
    rows = dict(technique_rows({
        "optimise": "size", "output": "logits", "unfused_bound_bytes": 442368,
        "extra_macs": 1200, "techniques": [
            {"technique": "fused-inverted-residual", "where": [f"block{i}" for i in range(8)],
             "extra_macs": 0}]}))
    assert rows["layer-wise bound of the unfused graph"] == "442,368 B"
    assert rows["extra MACs (recomputed by the techniques)"] == "1,200"
    assert rows["technique: fused-inverted-residual"].startswith("8 places (block0, block1")
    assert rows["technique: fused-inverted-residual"].endswith("+2)")


def test_scratch_cache_serves_structurally_equal_kernels(block_model):
    from compiler.workspace import ScratchCache

    cache = ScratchCache()
    options = CompileOptions(schedule=False)  # kernels with scratch
    first = plan_model_memory(block_model, "host", options, cache, measure_unfused=False)
    assert cache.hits == 0 and cache.misses > 0 and first.unfused_bound_bytes is None
    misses = cache.misses
    again = plan_model_memory(block_model, "host", options, cache, measure_unfused=False)
    assert cache.misses == misses and cache.hits == misses  # every kernel from the cache
    assert again == first and again.workspace_bytes > 0


def _space_subnets():
    """Every space once (its seed; min for the two large SqueezeNAS spaces, whose seeds take
    minutes to export on 2 cores, and for efficient-topformer, whose seed takes two minutes
    here and compiles in tests/compiler/test_compile_attention.py), plus squeezenas-small's
    min and max."""
    from qanas.space import list_spaces

    heavy = {"squeezenas-large", "squeezenas-xlarge", "efficient-topformer"}
    cases = [compiled_space_param(space, "min" if space in heavy else "seed")
             for space in list_spaces()]
    return cases + [("squeezenas-small", "min"), ("squeezenas-small", "max")]


@pytest.mark.slow
@pytest.mark.parametrize("space_name, which", _space_subnets())
def test_every_space_plans_its_compiled_arena(space_name, which, tmp_path):
    """A subnet of every space at 64x128 (4 classes): plan-only == compiled, both modes."""
    from qanas.cost.subnet_export import SubnetExporter
    from qanas.space import get_space

    space = get_space(space_name)
    onnx_path = SubnetExporter(space, (64, 128), 4).export_onnx(space.resolve(which), tmp_path)
    for optimise in ("size", "speed"):
        report = plan_model_memory(onnx_path, "host", CompileOptions(optimise=optimise))
        compiled = compile_model(onnx_path, "host", tmp_path / optimise, optimise=optimise)
        assert report == compiled.report, (space_name, which, optimise)
        assert report.arena_bytes == compiled.arena_bytes
