"""`QuantSpec`: the one description of how a network is quantized.

The defaults are the deployment format of the compiler: int8 weights with one
symmetric scale per output channel (narrow range [-127, 127]), 8-bit per-tensor
activations with a float scale calibrated from a percentile of the observed
values, and int32 biases whose scale is input scale x weight scale (so the
bias adds straight into the int32 accumulator).

Example:
    >>> spec = QuantSpec(calibration_batches=2)
    >>> QuantSpec.from_dict(spec.to_dict()) == spec
    True
    >>> spec.to_str()
    'w8c-a8u-b32'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qanas.errors import ConfigError
from qanas.utils.records import reject_unknown_keys

BIAS_BITS = (16, 24, 32)


@dataclass(frozen=True)
class QuantSpec:
    """How weights, activations and biases are quantized.

    Attributes:
        weight_bits: weight bit width (2..8); weights are signed and symmetric.
        act_bits: activation bit width (2..8).
        weight_per_channel: one weight scale per output channel (else one per tensor).
        bias_bits: bias bit width, 16, 24 or 32; the bias scale is input x weight scale.
        act_signed: False: activations known to be non-negative (after ReLU, ReLU6,
            Sigmoid, Hardsigmoid, and pools/products/sums of those) use unsigned
            [0, 2^bits - 1]; True: every activation is signed (TFLite-style, one bit
            less resolution after ReLU).
        narrow_range_weights: weights use [-(2^(b-1) - 1), 2^(b-1) - 1] (symmetric
            around zero, which keeps the integer kernels free of a weight zero point).
        calibration_batches: batches used to calibrate activation ranges.
        act_percentile: percentile of |activation| (signed) or of the activation
            (unsigned) taken as the range during calibration; 100 means the max.
        layer_weight_bits: per-layer exceptions to `weight_bits`, as (conv module name
            in the extracted subnet, bits) pairs (mixed precision, see
            docs/mixed-precision.md); empty: every layer uses `weight_bits`.
    """

    weight_bits: int = 8
    act_bits: int = 8
    weight_per_channel: bool = True
    bias_bits: int = 32
    act_signed: bool = False
    narrow_range_weights: bool = True
    calibration_batches: int = 2
    act_percentile: float = 99.999
    layer_weight_bits: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        for name in ("weight_bits", "act_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 8:
                raise ConfigError(f"QuantSpec.{name} must be an integer in 2..8 (the int8 "
                                  f"containers of the compiler); got {value!r}")
        if self.bias_bits not in BIAS_BITS:
            raise ConfigError(f"QuantSpec.bias_bits must be one of {BIAS_BITS}; "
                              f"got {self.bias_bits!r}")
        for name in ("weight_per_channel", "act_signed", "narrow_range_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"QuantSpec.{name} must be true or false; "
                                  f"got {getattr(self, name)!r}")
        if not isinstance(self.calibration_batches, int) or self.calibration_batches < 1:
            raise ConfigError(f"QuantSpec.calibration_batches must be a positive integer; "
                              f"got {self.calibration_batches!r}")
        layers = tuple((str(name), bits) for name, bits in self.layer_weight_bits)
        object.__setattr__(self, "layer_weight_bits", layers)
        for name, bits in layers:
            if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
                raise ConfigError(f"QuantSpec.layer_weight_bits: layer {name!r} has {bits!r} "
                                  "bits; use an integer in 2..8")
        if not 50.0 < float(self.act_percentile) <= 100.0:
            raise ConfigError(f"QuantSpec.act_percentile must be in (50, 100]; "
                              f"got {self.act_percentile!r}")

    def weight_bits_of(self, layer: str) -> int:
        """The weight bit width of the conv module called `layer` (its exception, else the default)."""
        return dict(self.layer_weight_bits).get(layer, self.weight_bits)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (every field; `layer_weight_bits` only when it has entries, so
        the dict, and the metric sets keyed by it, of a uniform spec are unchanged)."""
        data = asdict(self)
        if self.layer_weight_bits:
            data["layer_weight_bits"] = [list(pair) for pair in self.layer_weight_bits]
        else:
            del data["layer_weight_bits"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> QuantSpec:
        """Inverse of `to_dict`; missing keys take defaults, unknown keys raise `ConfigError`.

        `None` gives the default spec (convenient for checkpoints without one).
        """
        if data is None:
            return cls()
        if isinstance(data, QuantSpec):
            return data
        reject_unknown_keys(cls, data)
        data = dict(data)
        if "layer_weight_bits" in data:
            data["layer_weight_bits"] = tuple(tuple(pair) for pair in data["layer_weight_bits"])
        return cls(**data)

    def to_str(self) -> str:
        """Compact form for logs, e.g. `w8c-a8u-b32` (c: per channel, t: per tensor;
        m: some layers have other weight bits; u: unsigned where non-negative, s: all
        signed)."""
        w = f"w{self.weight_bits}{'c' if self.weight_per_channel else 't'}"
        a = f"a{self.act_bits}{'s' if self.act_signed else 'u'}"
        mixed = "m" if self.layer_weight_bits else ""
        return f"{w}{mixed}-{a}-b{self.bias_bits}"

    def __str__(self) -> str:
        return self.to_str()
