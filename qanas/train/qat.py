"""The bridge from supernet training to Brevitas fake-quant (`--qat`).

Quantization belongs to `qanas.quant`; this module only resolves the
`QuantSpec` stored in a `TrainConfig` and calls
`qanas.quant.qat.prepare_supernet_qat(supernet, spec)`, with an error that
says what is missing when that package is not available.
"""

from __future__ import annotations

from typing import Any

from qanas.errors import ConfigError

MISSING = "QAT supernet training needs qanas.quant.qat (not available)"


def prepare_qat(supernet, spec_dict: dict[str, Any] | None):
    """The supernet with Brevitas fake-quant inserted per `spec_dict` (None: the default spec).

    Args:
        supernet: a freshly built float `Supernet`.
        spec_dict: `QuantSpec.to_dict()` output, or None for `QuantSpec()`.

    Returns:
        The prepared supernet (the same object or a replacement, as
        `prepare_supernet_qat` returns it).

    Raises:
        ConfigError: when `qanas.quant.qat` or `QuantSpec` is not available, or the
            spec dict is invalid.
    """
    try:
        from qanas.quant.qat import prepare_supernet_qat
    except ImportError as exc:
        raise ConfigError(f"{MISSING}: {exc}; train a float supernet (drop --qat) and "
                          f"quantize subnets afterwards") from None
    try:
        from qanas.quant import QuantSpec
    except ImportError:
        from qanas.quant.spec import QuantSpec  # type: ignore[no-redef]
    spec = QuantSpec() if spec_dict is None else QuantSpec.from_dict(spec_dict)
    prepared = prepare_supernet_qat(supernet, spec)
    return supernet if prepared is None else prepared
