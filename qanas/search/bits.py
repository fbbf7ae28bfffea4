"""Searching weight bit widths with the architecture (`qanas search --bits w4w8`).

`mixed_precision(setup, costs, target)` turns a search's space, scorer and cost
model into their (architecture, bits) versions:

* the space becomes a `qanas.space.bits.WeightBitsSpace` (a 4/8 decision per
  searchable conv), which NSGA-II and random search explore like any decision;
* `BitsEvaluator` scores a mixed config with the scorer's `QuantSpec` plus the
  config's per-layer weight bits (`QuantSpec.layer_weight_bits`);
* `BitsCostModel` takes the architecture's profile; the 4-bit convs, which all run on
  the int4 kernels (`qanas.space.layer_bits.int4_kernel_layers`: on their own, or as
  stages of the fused inverted-residual kernel or layers of the patch stage), lower its
  flash by what their packed weights save (two weights per byte) and are priced at the
  target's int4 rates of the search's ``--optimise`` mode
  (`qanas.cost.int4_latency.WeightBitsLatency`). SRAM is unchanged
  (activations stay int8).

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
    config's bits: the 4-bit convs priced with the coefficients of the inner model's
    compiler mode (`HardwareCostModel.optimise`; the compiler's default, ``size``, for a
    model that does not say)."""

    def __init__(self, inner, space: WeightBitsSpace):
        from qanas.cost.int4_latency import WeightBitsLatency

        self.inner, self.space = inner, space
        self.target = inner.target
        self.bits_latency = WeightBitsLatency(inner.target, getattr(inner, "optimise", "size"))

    def _widths(self, cfg):
        """(layer descriptors, weight bits of every conv) of a mixed `cfg`; None for int8."""
        bits = searched_bits(cfg)
        if bits is None:
            return None
        specs = self.space.layer_specs(arch_of(cfg), self.space.image_size,
                                       self.space.num_classes)
        return specs, layer_bit_widths(specs, self.space.num_classes, bits)

    def flash_saving(self, cfg) -> int:
        """Weight bytes the compiler stores less for `cfg` than for its architecture
        all-int8: the packed weights of its 4-bit convs (0 for int8)."""
        mixed = self._widths(cfg)
        return 0 if mixed is None else weight_flash_saving(*mixed)

    def profile(self, cfg):
        """The architecture's profile; flash lowered by `flash_saving`, latency with the
        convs on the int4 kernels at the int4 rates."""
        prof = self.inner.profile(arch_of(cfg))
        mixed = self._widths(cfg)
        if mixed is None:
            return prof
        return dataclasses.replace(
            prof, flash_bytes=prof.flash_bytes - weight_flash_saving(*mixed),
            latency=self.bits_latency.latency(prof.latency, *mixed))

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
