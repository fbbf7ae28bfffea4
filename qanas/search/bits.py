"""Searching weight bit widths with the architecture (`qanas search --bits w4w8`).

`mixed_precision(setup, costs, target)` turns a search's space, scorer and cost
model into their (architecture, bits) versions:

* the space becomes a `qanas.space.bits.WeightBitsSpace` (a 4/8 decision per
  searchable conv), which NSGA-II and random search explore like any decision;
* `BitsEvaluator` scores a mixed config with the scorer's `QuantSpec` plus the
  config's per-layer weight bits (`QuantSpec.layer_weight_bits`);
* `BitsCostModel` takes the architecture's profile and lowers its flash by the
  bytes the 4-bit layers save (two weights per byte), and prices the convs that
  run on the int4 kernels at the target's int4 rates
  (`qanas.cost.int4_latency.WeightBitsLatency`). SRAM is unchanged (activations
  stay int8).

Ethos-U targets are refused: Vela compiles int8 weights only.
"""

from __future__ import annotations

import dataclasses

from qanas.errors import ConfigError
from qanas.quant.layer_bits import layer_weight_bits
from qanas.space.bits import WeightBitsSpace, arch_of, searched_bits
from qanas.space.layer_bits import layer_bit_widths, weight_flash_saving

BITS_CHOICES = ("w8", "w4w8")
"""`--bits` values: int8 weights only (the default), or 4 or 8 bits per searchable conv."""


def check_bits(bits: str, target) -> None:
    """Raises `ConfigError` for an unknown `--bits` or w4w8 on an Ethos-U target."""
    if bits not in BITS_CHOICES:
        raise ConfigError(f"--bits {bits!r}: choose one of {', '.join(BITS_CHOICES)}")
    if bits != "w8" and target.npu_config is not None:
        raise ConfigError(f"--bits {bits} cannot deploy on {target.name}: Vela compiles int8 "
                          "weights only (no int4). Search this target with --bits w8, or choose "
                          "a CPU target for mixed precision")


class BitsCostModel:
    """A cost model's profile of the architecture, with the flash and latency of the
    config's bits."""

    def __init__(self, inner, space: WeightBitsSpace):
        from qanas.cost.int4_latency import WeightBitsLatency

        self.inner, self.space = inner, space
        self.target = inner.target
        self.bits_latency = WeightBitsLatency(inner.target)

    def profile(self, cfg):
        """The architecture's profile; flash lowered by what the 4-bit layers save, latency
        with the convs on the int4 kernels at the int4 rates."""
        arch = arch_of(cfg)
        prof = self.inner.profile(arch)
        bits = searched_bits(cfg)
        if bits is None:
            return prof
        specs = self.space.layer_specs(arch, self.space.image_size, self.space.num_classes)
        widths = layer_bit_widths(specs, self.space.num_classes, bits)
        return dataclasses.replace(
            prof, flash_bytes=prof.flash_bytes - weight_flash_saving(specs, widths),
            latency=self.bits_latency.latency(prof.latency, specs, widths))

    def budgets(self) -> dict:
        """The inner model's budgets."""
        return self.inner.budgets()

    def __getattr__(self, name: str):
        # memory reports, latency models and settings are the architecture's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class BitsEvaluator:
    """Scores (architecture, bits) configs with a `SubnetScorer` (see the module docstring)."""

    def __init__(self, scorer, space: WeightBitsSpace):
        self.scorer, self.space = scorer, space

    def spec_for(self, cfg):
        """The scorer's `QuantSpec` with `cfg`'s 4-bit convs (the spec itself for all-int8)."""
        if searched_bits(cfg) is None:
            return self.scorer.spec
        layers = layer_weight_bits(cfg, self.scorer.supernet.extract(arch_of(cfg)), self.space)
        return dataclasses.replace(self.scorer.spec, layer_weight_bits=layers)

    def score(self, cfg) -> dict:
        """Quantized (with `cfg`'s bits) and float mIoU, per-class IoU and seconds."""
        keep = ("miou", "miou_fp32", "per_class", "seconds")
        result = self.scorer.score(arch_of(cfg), spec=self.spec_for(cfg)).to_dict()
        scored = {k: result[k] for k in keep}
        bits = searched_bits(cfg)
        return scored if bits is None else {**scored, "weight_bits": list(bits)}


def mixed_precision(setup, costs, bits: str, target) -> None:
    """Switches a search's `ScorerSetup` and `CostModelChoice` to `bits` in place (w8: no-op)."""
    check_bits(bits, target)
    if bits == "w8":
        return
    space = WeightBitsSpace(costs.space, setup.image_size, setup.num_classes)
    costs.space = space
    costs.model = BitsCostModel(costs.model, space)
    setup.space = space
    scorer = getattr(setup.evaluator, "scorer", None)
    if scorer is not None:  # else the evaluator is given the mixed configs themselves
        setup.evaluator = BitsEvaluator(scorer, space)


__all__ = ["BITS_CHOICES", "BitsCostModel", "BitsEvaluator", "check_bits", "layer_weight_bits",
           "mixed_precision"]
