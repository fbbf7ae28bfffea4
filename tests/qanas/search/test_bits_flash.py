"""The flash a `--bits w4w8` search uses against the weights the compiler stores.

Each subnet is exported twice with the same seeded weights (all-int8, and with two of
every three searchable convs at 4 bits, so some 4-bit convs run on the int4 kernels on
their own and some as stages of fused inverted residuals, and in ``--optimise size`` some
as layers of the patch stage) and compiled (`compile_model`, cortex-m7, both
``--optimise`` modes); the plan's constants are the weights region byte for byte.

* The saving the search gives the bits (`BitsCostModel.flash_saving`) is the compiled
  saving of the weights (the int8 and packed int4 arrays) exactly.
* The rest of the region is the int32 per-channel arrays (bias, requantization multiplier
  and shift) and the resize tables. Their size depends on values: the compiler leaves out
  a bias array whose folded values are all zero and stores one multiplier or shift where
  every channel has the same (`compiler.passes.lower_conv`), and 4-bit weights change
  the scales). The architecture's flash (`qanas.cost.hardware.flash_bytes`: 12
  bytes per output channel of every conv, no tables) is within `ARCH_TOLERANCE` of the
  compiled region, with and without 4-bit weights.
"""

from __future__ import annotations

import re

import pytest

from compiler.driver import compile_model
from compiler.passes.offload_patch_stage import LAYER_KINDS
from qanas.cost import HardwareCostModel
from qanas.search.bits import BitsCostModel
from qanas.space import get_space
from qanas.space.bits import WeightBitsSpace, with_bits
from qanas.space.layer_bits import fused_convs, int4_kernel_layers, layer_bit_widths
from targets import get_target

SIZE, CLASSES, TARGET = (32, 64), 6, "cortex-m7"
PATCH_KINDS_S4 = (LAYER_KINDS["qanas_conv2d_s4"], LAYER_KINDS["qanas_pointwise_conv_s4"])
ARCH_TOLERANCE = 0.02
"""Largest share of the compiled int8 weights region the architecture's flash model may
miss by (module docstring)."""


def compiled_constants(space, cfg, folder, optimise: str) -> tuple[int, int, set, set]:
    """(weights region, bytes of its int8 arrays, library functions called, layer kinds of
    its patch stage) of `cfg` exported with seeded weights and compiled."""
    from tests.support.firmware_util import export_subnet

    onnx_path = export_subnet(space.base, str(cfg), folder / "model.onnx", SIZE, CLASSES)
    result = compile_model(str(onnx_path), TARGET, folder / "project", optimise=optimise)
    int8 = sum(b.size for b in result.plan.buffers.values()
               if b.kind == "constant" and b.dtype in ("int8", "uint8"))
    called = {c.library for c in result.plan.calls if c.library}
    patch = re.search(r"qanas_patch_step_t \w+ = \{.*?\.kinds = \{([^}]*)\}",
                      (result.out_dir / "model.c").read_text(), re.S)
    kinds = {int(k) for k in patch.group(1).split(",")} if patch else set()
    return result.weights_bytes, int8, called, kinds


@pytest.mark.slow  # two exports and compiles, one SRAM plan per subnet: about 2 CPU-minutes
@pytest.mark.parametrize("name, which, optimise", [
    ("squeezenas-small", "seed", "speed"), ("mbv2-deeplab", "min", "speed"),
    ("squeezenas-small", "seed", "size"),  # the patch stage holds 4-bit convs too
])
def test_the_searched_flash_saving_is_what_the_compiler_stores(name, which, optimise,
                                                               tmp_path):
    space = WeightBitsSpace(get_space(name), SIZE, CLASSES)
    hw = HardwareCostModel(space.base, get_target(TARGET), SIZE, CLASSES, optimise=optimise)
    model = BitsCostModel(hw, space)
    arch = space.base.resolve(which)
    cfg = with_bits(arch, [8 if i % 3 == 0 else 4 for i in range(space.slot_count(arch))])
    specs = space.layer_specs(arch, SIZE, CLASSES)
    widths = layer_bit_widths(specs, CLASSES, cfg.weight_bits)
    packed = int4_kernel_layers(specs, widths)
    assert len(packed) == cfg.weight_bits.count(4)
    assert set(packed) & fused_convs(specs), "some 4-bit convs in fused blocks"

    int8, int8_arrays, _, _ = compiled_constants(space, arch, tmp_path / "int8", optimise)
    mixed, mixed_arrays, called, patch_kinds = compiled_constants(space, cfg, tmp_path / "mixed",
                                                                  optimise)
    assert "qanas_inverted_residual_s8" in called
    if optimise == "size":  # a layer of the patch stage on the int4 kernels
        assert patch_kinds & set(PATCH_KINDS_S4), patch_kinds
    assert model.flash_saving(cfg) == int8_arrays - mixed_arrays > 0
    assert model.profile(arch).flash_bytes - model.profile(cfg).flash_bytes \
        == model.flash_saving(cfg)
    for compiled, modelled in ((int8, model.profile(arch)), (mixed, model.profile(cfg))):
        assert abs(modelled.flash_bytes - compiled) <= ARCH_TOLERANCE * compiled
