"""Analytic latency model: cycles from MACs and bytes per layer, with coefficients per CPU.

This is a *model*, not a measurement. Each layer costs

    cycles(layer) = max(MACs / macs_per_cycle[class] + outputs * cycles_per_output[class],
                        bytes / bytes_per_cycle) + cycles_per_layer

(a fitted set, ``roofline=False``, takes the MAC and output terms alone for MAC-bearing
layers; a hand-picked set has no output term)

where the class is ``conv`` (dense k×k), ``pointwise`` (1×1), ``depthwise``
(groups == channels) or ``linear``; bytes are the int8 input and output
activations plus int8 weights; outputs are the layer's output elements (each one
requantised, clamped and stored whatever the kernel size, so a 5×5 depthwise conv costs
less per MAC than a 3×3 one); elementwise, pooling, resize and concat layers are bounded
by bytes alone. Where ``targets/latency_coefficients.json`` holds a fit for a
CPU (``benchmarks/fit_latency_coefficients.py``: our kernels' retired instructions per
layer under QEMU ``-icount``, fitted by non-negative least squares, with its kernel
generation, command, date and fit quality), those coefficients are used; the others below
are hand-picked estimates (said so in their rationale), chosen to rank subnets, not to
predict wall time. The per-block lookup table measured under QEMU / on boards replaces
this model where it exists (``qanas.cost.hardware.LatencyModel``).

The compiler's two modes (``--optimise``, `FIT_MODES`) run different kernels, so the file
holds one int8 fit per mode and CPU (``coefficients.<mode>.<cpu>``, with its protocol under
``protocol.<mode>``): ``size`` builds run the first blocks in a patch stage, ``speed`` builds
every inverted residual as one fused kernel call. `coefficients_for` takes the mode the
subnets are deployed with; a CPU without a fit of that mode gets its hand-picked set.

A conv whose 4-bit weights run on the int4 kernels (docs/int4-weights.md) costs its MACs
at ``int4_macs_per_cycle[class]`` instead: the int8 rate of the class slowed by the extra
cycles per MAC the int4 kernels take against the int8 kernels on the same layers of
compiled subnets (``benchmarks/fit_latency_coefficients.py --bits w4``, the file's
``int4.<cpu>.extra_cycles_per_mac``, `int4_rates`); the 1×1 stages of a fused inverted
residual have an extra cost, so a rate, of their own (``fused_pointwise``). The extra
cycles are the kernels' (unpacking the weights), so they slow the int8 rates of either
mode. A class without an int4 fit (and every hand-picked set) prices 4-bit layers as int8.

Depends on nothing but `targets.cost` (the layer descriptors) and the JSON file.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from targets.cost import LayerSpec
from targets.registry import Registry

LAYER_CLASSES = ("conv", "pointwise", "depthwise", "linear")
FUSED_POINTWISE = "fused_pointwise"
INT4_CLASSES = ("conv", "pointwise", FUSED_POINTWISE)
"""The classes with int4-weight kernels (depthwise and linear layers stay int8):
`FUSED_POINTWISE` is a 1×1 stage of a fused inverted residual, its int8 rate ``pointwise``."""
FIT_MODES = ("size", "speed")
"""The compiler's ``--optimise`` modes, each with int8 coefficients of its own."""


@dataclass(frozen=True)
class LatencyCoefficients:
    """Throughput coefficients of one CPU kind.

    Attributes:
        name: CPU or ISA name it applies to (matched against `Target.cpu`, then `Target.isa`).
        macs_per_cycle: sustained int8 MACs per cycle per layer class (`LAYER_CLASSES`).
        bytes_per_cycle: sustained activation/weight bytes moved per cycle.
        cycles_per_layer: fixed cost of one kernel call (loop setup, requant tables).
        cycles_per_output: cycles per output element of a MAC-bearing layer, per class
            (`LAYER_CLASSES`; requantising and storing it); a class without one has none.
        rationale: where the numbers come from.
        roofline: a MAC-bearing layer costs the larger of its MAC and byte times; when
            False (the fitted sets: their bytes_per_cycle is the rate of the byte-bound
            layers, resize and elementwise kernels), its MAC and output time alone.
        int4_macs_per_cycle: MACs per cycle of the int4-weight kernels, per class they
            have a fit for (`INT4_CLASSES`); empty when none is fitted.
        optimise: the compiler mode (`FIT_MODES`) whose builds the set was fitted on;
            None for a hand-picked set.
    """

    name: str
    macs_per_cycle: Mapping[str, float]
    bytes_per_cycle: float
    cycles_per_layer: float
    rationale: str = ""
    extra: Mapping[str, float] = field(default_factory=dict)
    roofline: bool = True
    int4_macs_per_cycle: Mapping[str, float] = field(default_factory=dict)
    optimise: str | None = None
    cycles_per_output: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        missing = set(LAYER_CLASSES) - set(self.macs_per_cycle)
        if missing:
            raise ValueError(f"{self.name}: macs_per_cycle lacks classes {sorted(missing)}")
        if min(self.macs_per_cycle.values()) <= 0 or self.bytes_per_cycle <= 0:
            raise ValueError(f"{self.name}: throughputs must be positive")
        if (set(self.cycles_per_output) - set(LAYER_CLASSES)
                or min(self.cycles_per_output.values(), default=0.0) < 0):
            raise ValueError(f"{self.name}: cycles_per_output takes non-negative costs of "
                             f"{', '.join(LAYER_CLASSES)}; got {dict(self.cycles_per_output)}")
        unknown = set(self.int4_macs_per_cycle) - set(INT4_CLASSES)
        if unknown or min(self.int4_macs_per_cycle.values(), default=1.0) <= 0:
            raise ValueError(f"{self.name}: int4_macs_per_cycle takes positive rates of "
                             f"{', '.join(INT4_CLASSES)}; got {dict(self.int4_macs_per_cycle)}")

    def int4_rate(self, cls: str, fused: bool = False) -> float:
        """MACs per cycle of a 4-bit conv of class `cls` (`LAYER_CLASSES`) on the int4
        kernels, `fused` in an inverted-residual step; the int8 rate where none is fitted."""
        rate = self.int4_macs_per_cycle.get(cls, self.macs_per_cycle[cls])
        if fused and cls == "pointwise":
            rate = self.int4_macs_per_cycle.get(FUSED_POINTWISE, rate)
        return rate


def int4_rates(macs_per_cycle: Mapping[str, float],
               extra_cycles_per_mac: Mapping[str, float]) -> dict[str, float]:
    """The int4 rates of a set with int8 rates `macs_per_cycle`: each class of
    `extra_cycles_per_mac` (`INT4_CLASSES`: the cycles per MAC the int4 kernels take more
    than the int8 ones on the same layers; `FUSED_POINTWISE` over the ``pointwise`` rate)
    that many cycles per MAC slower."""
    unknown = set(extra_cycles_per_mac) - set(INT4_CLASSES)
    if unknown:
        raise ValueError(f"extra_cycles_per_mac takes {', '.join(INT4_CLASSES)}; got "
                         f"{', '.join(sorted(unknown))}")
    return {c: round(1 / (1 / macs_per_cycle["pointwise" if c == FUSED_POINTWISE else c]
                          + extra), 4)
            for c, extra in extra_cycles_per_mac.items()}


def check_mode(optimise: str) -> str:
    """`optimise`, checked to be one of `FIT_MODES`."""
    if optimise not in FIT_MODES:
        raise ValueError(f"--optimise {optimise!r} has no latency coefficients: the compiler's "
                         f"modes are {', '.join(FIT_MODES)}; pass one of them")
    return optimise


COEFFICIENTS_PATH = Path(__file__).with_name("latency_coefficients.json")
"""The fitted coefficients (written by ``benchmarks/fit_latency_coefficients.py``)."""


def load_fitted(path: Path = COEFFICIENTS_PATH, optimise: str = "size"
                ) -> dict[str, LatencyCoefficients]:
    """The coefficient sets of `path` fitted on `optimise` builds, by CPU name (empty when
    the file is absent or has no fit of that mode); each with the int4 rates of the file's
    ``int4`` section.

    Raises:
        ValueError: an unknown `optimise`, or a file whose fits are not keyed by mode.
    """
    check_mode(optimise)
    if not path.is_file():
        return {}
    document = json.loads(path.read_text())
    unknown = set(document.get("coefficients", {})) - set(FIT_MODES)
    if unknown:
        raise ValueError(f"{path}: coefficients are keyed by --optimise mode "
                         f"({', '.join(FIT_MODES)}), not {', '.join(sorted(unknown))}: refit it "
                         "with benchmarks/fit_latency_coefficients.py --optimise MODE")
    protocol = document.get("protocol", {}).get(optimise, {})
    int4_sections = document.get("int4", {})
    fitted = {}
    for name, fit in document.get("coefficients", {}).get(optimise, {}).items():
        quality = fit.get("quality", {})
        int4 = int4_sections.get(name, {})
        macs = dict(fit["macs_per_cycle"])
        fitted[name] = LatencyCoefficients(
            name, macs, float(fit["bytes_per_cycle"]), float(fit["cycles_per_layer"]),
            f"fitted to our kernels' QEMU instruction counts of --optimise {optimise} builds "
            f"(kernel generation {protocol.get('kernel_generation')}, {protocol.get('date')}; "
            f"held-out whole-model MAPE {quality.get('heldout_mape')} %); "
            f"{fit.get('note', '')}".rstrip("; "),
            roofline=bool(fit.get("roofline", True)),
            int4_macs_per_cycle=int4_rates(macs, int4.get("extra_cycles_per_mac", {})),
            optimise=optimise, cycles_per_output=dict(fit.get("cycles_per_output", {})))
    return fitted


FITTED: dict[str, dict[str, LatencyCoefficients]] = {mode: load_fitted(optimise=mode)
                                                     for mode in FIT_MODES}
"""The committed fits: mode (`FIT_MODES`) → CPU name → coefficients."""
HAND_PICKED: dict[str, LatencyCoefficients] = {}
"""The hand-picked estimates by CPU name, fitted or not (a fit's fallback and its baseline)."""
COEFFICIENTS: Registry[LatencyCoefficients] = Registry("latency coefficient set")
"""Every CPU's hand-picked set, labelled as such: what a CPU without a fit of the
requested mode is priced with."""


def _register(c: LatencyCoefficients) -> LatencyCoefficients:
    """Registers the hand-picked `c` (and its relabelled fallback)."""
    HAND_PICKED[c.name] = c
    return COEFFICIENTS.register(c.name, LatencyCoefficients(
        c.name, c.macs_per_cycle, c.bytes_per_cycle, c.cycles_per_layer,
        f"hand-picked, not fitted: {c.rationale}", c.extra))


_register(LatencyCoefficients(
    "cortex-m4", {"conv": 0.9, "pointwise": 1.1, "depthwise": 0.45, "linear": 1.0}, 2.0, 400.0,
    "DSP extension: SMLAD does 2 16-bit MACs/cycle; int8 operands are widened first, so "
    "CMSIS-NN-style kernels sustain about 1 MAC/cycle, depthwise about half of that"))
_register(LatencyCoefficients(
    "cortex-m7", {"conv": 1.6, "pointwise": 1.9, "depthwise": 0.8, "linear": 1.7}, 4.0, 300.0,
    "dual-issue M4 DSP pipeline with 64-bit loads: about 1.7x the M4 per cycle"))
_register(LatencyCoefficients(
    "cortex-m33", {"conv": 0.9, "pointwise": 1.1, "depthwise": 0.45, "linear": 1.0}, 2.0, 400.0,
    "Armv8-M Mainline with the DSP extension (the Ethos-U65 host core): the same SMLAD "
    "pipeline as the Cortex-M4, so the M4's figures"))
_register(LatencyCoefficients(
    "cortex-m55", {"conv": 6.0, "pointwise": 7.0, "depthwise": 2.5, "linear": 6.0}, 8.0, 300.0,
    "Helium/MVE: 16 int8 MACs per beat-pair (VMLADAV), about half sustained"))
_register(LatencyCoefficients(
    "aarch64", {"conv": 8.0, "pointwise": 10.0, "depthwise": 3.0, "linear": 9.0}, 8.0, 2000.0,
    "NEON int8 dot products through auto-vectorised C on an in-order A53-class core"))
_register(LatencyCoefficients(
    "native", {"conv": 12.0, "pointwise": 16.0, "depthwise": 4.0, "linear": 14.0}, 16.0, 5000.0,
    "x86-64 SSE/AVX2 auto-vectorised C at -O2 (host runner); call overhead includes the packed "
    "calling convention"))


def coefficients_for(cpu: str, isa: str = "", optimise: str = "size") -> LatencyCoefficients:
    """The coefficients for a CPU (falling back to its ISA) running ``--optimise optimise``
    builds: the fit of that mode, else the hand-picked set; unknown names list the known
    ones, an unknown mode the modes.

    Example:
        >>> coefficients_for("cortex-m7", optimise="speed").optimise
        'speed'
    """
    fitted = FITTED[check_mode(optimise)]
    for key in (cpu, isa):
        if key in fitted:
            return fitted[key]
        if key in COEFFICIENTS:
            return COEFFICIENTS.get(key)
    known = ", ".join(COEFFICIENTS.names())
    raise KeyError(f"no latency coefficients for cpu {cpu!r} / isa {isa!r}; known: {known}. "
                   "Add a LatencyCoefficients entry in targets/latency.py")


def layer_class(layer: LayerSpec) -> str | None:
    """`LAYER_CLASSES` entry of a MAC-bearing layer, or None for byte-bound layers."""
    if layer.op in ("linear", "matmul"):
        return "linear"
    if layer.op != "conv":
        return None
    if layer.groups > 1 and layer.groups == layer.in_channels:
        return "depthwise"
    if layer.kernel == (1, 1):
        return "pointwise"
    return "conv"


def layer_cycles(layer: LayerSpec, coeffs: LatencyCoefficients, int4: bool = False,
                 fused: bool = False) -> float:
    """Modelled cycles of one layer (see the module docstring); `int4`: its weights are 4-bit
    and run on the int4 kernels, `fused` inside a fused inverted-residual step."""
    moved = layer.input_elements + layer.output_elements + layer.params
    cycles = moved / coeffs.bytes_per_cycle
    cls = layer_class(layer)
    if cls is not None:
        rate = coeffs.int4_rate(cls, fused) if int4 else coeffs.macs_per_cycle[cls]
        compute = (layer.macs / rate
                   + layer.output_elements * coeffs.cycles_per_output.get(cls, 0.0))
        cycles = max(cycles, compute) if coeffs.roofline else compute
    return cycles + coeffs.cycles_per_layer


def analytic_cycles(layers: Iterable[LayerSpec], coeffs: LatencyCoefficients,
                    int4_layers: Collection[str] = (), fused: Collection[str] = ()) -> float:
    """Modelled cycles of a whole network (`act` specs are fused into their conv: no cost);
    the layers named in `int4_layers` run on the int4 kernels, those also in `fused` inside
    a fused inverted residual (`qanas.space.layer_bits.fused_convs`)."""
    return float(sum(layer_cycles(layer, coeffs, layer.name in int4_layers,
                                  layer.name in fused)
                     for layer in layers if layer.op != "act"))
