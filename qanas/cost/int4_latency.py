"""Latency of 4-bit weights: which convs run on the int4 kernels, and the cycles that changes.

The compiler runs every conv with 4-bit weights on its int4 kernels (``qanas_pointwise_conv_s4``,
``qanas_conv2d_s4``, docs/int4-weights.md): as a step of its own, or inside the fused
inverted-residual kernel, whose expand and project stages call the same int4 convolutions
(`compiler.passes.fuse_inverted_residual`), or inside the patch stage. The rule is
`qanas.space.layer_bits.int4_kernel_layers`, which the search's flash follows too.

The analytic model prices an int4-kernel conv at the int4 rate of its class
(`targets.latency.LatencyCoefficients.int4_rate`): ``pointwise`` and ``conv`` fitted on
the convs with a step of their own, ``fused_pointwise`` on the fused blocks' 1×1 stages
(`qanas.space.layer_bits.fused_convs`, the int4 stages cost more inside the fused
kernel); `int4_extra_cycles` is that price less the int8 one (`benchmarks/mcu_irb.py
--int4` measures a block against it). `WeightBitsLatency.latency` adds the
difference to a subnet's int8 latency, from the analytic model or a latency table (tables
measure int8 kernels only: the table's figure plus the analytic difference of the 4-bit
convs).

Example:
    >>> from qanas.space import get_space
    >>> space = get_space("squeezenas-small")
    >>> specs = space.layer_specs(space.resolve("seed"), (64, 128), 6)
    >>> from qanas.space.layer_bits import int4_kernel_layers, layer_bit_widths, searchable_layers
    >>> widths = layer_bit_widths(specs, 6, [4] * len(searchable_layers(specs, 6)))
    >>> int4_kernel_layers(specs, widths)[-3:]  # every 4-bit conv, fused or not
    ['head', 'decoder.cbr', 'decoder.scale']
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence

from qanas.cost.hardware import Latency
from qanas.errors import ConfigError
from qanas.space.layer_bits import fused_convs, int4_kernel_layers
from targets import Target
from targets.cost import LayerSpec
from targets.latency import LatencyCoefficients, coefficients_for, layer_cycles

log = logging.getLogger(__name__)

CYCLE_UNITS = ("cycles", "instructions")
"""Latency units the analytic model's cycles add to as they are (it is fitted to QEMU
instruction counts, read as cycles)."""


def int4_extra_cycles(specs: Sequence[LayerSpec], int4_layers: Collection[str],
                      coeffs: LatencyCoefficients) -> float:
    """Cycles the int4 kernels of `int4_layers` add to their int8 price (negative: save)."""
    fused = fused_convs(specs)
    return float(sum(layer_cycles(layer, coeffs, int4=True, fused=layer.name in fused)
                     - layer_cycles(layer, coeffs)
                     for layer in specs if layer.name in int4_layers))


class WeightBitsLatency:
    """A target's int8 latency figures made bit-aware (module docstring); warns once, when
    first used, about what the 4-bit convs are priced with where that is an approximation.

    Args:
        target: the CPU target (its `cpu`, then `isa`, selects the coefficients).
        optimise: the compiler mode the subnets are deployed with (selects the int8 rates
            the int4 ones scale).

    Raises:
        ConfigError: no analytic coefficients for the target's CPU, or an unknown mode.
    """

    def __init__(self, target: Target, optimise: str = "size"):
        self.target = target
        try:
            self.coeffs = coefficients_for(target.cpu, target.isa, optimise)
        except (KeyError, ValueError) as exc:
            raise ConfigError(str(exc.args[0])) from None
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def latency(self, int8: Latency, specs: Sequence[LayerSpec],
                widths: Sequence[int]) -> Latency:
        """`int8` (the subnet's latency with int8 weights) with the 4-bit convs of `widths`
        (one per conv of `specs`) priced on the int4 kernels."""
        on_int4 = int4_kernel_layers(specs, widths)
        if not on_int4:
            return int8
        if not self.coeffs.int4_macs_per_cycle:
            self._warn_once("unfitted", "%s has no fitted int4 rates (targets/"
                            "latency_coefficients.json): its 4-bit convs are priced as int8",
                            self.coeffs.name)
            return int8
        extra = int4_extra_cycles(specs, on_int4, self.coeffs)
        if int8.unit == "s" and self.target.clock_hz:
            extra /= self.target.clock_hz
        elif int8.unit not in CYCLE_UNITS:
            raise ConfigError(f"{int8.source} gives latency in {int8.unit!r}; the int4 "
                              f"correction is in cycles and {self.target.name} has no clock_hz "
                              "to convert it: search --bits w4w8 with a table in cycles or "
                              "with --no-lut")
        source = int8.source
        if not source.startswith("analytic:"):
            self._warn_once("table", "%s measures int8 kernels only: a mixed-precision "
                            "subnet's latency is its figure plus the analytic int4 - int8 "
                            "difference of the convs on the int4 kernels (%s, "
                            "docs/mixed-precision.md)", source, self.coeffs.name)
            source = f"{source}+int4:analytic:{self.coeffs.name}"
        return dataclasses.replace(int8, value=int8.value + extra, source=source)


__all__ = ["WeightBitsLatency", "int4_extra_cycles"]
