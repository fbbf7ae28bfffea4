"""QuantSpec: round trip, validation, compact form."""

from __future__ import annotations

import pytest

from qanas.errors import ConfigError
from qanas.quant import QuantSpec


def test_round_trip_default_and_custom():
    for spec in (QuantSpec(), QuantSpec(weight_bits=4, act_signed=True, weight_per_channel=False,
                                        bias_bits=16, calibration_batches=7, act_percentile=100.0)):
        assert QuantSpec.from_dict(spec.to_dict()) == spec


def test_from_dict_rejects_unknown_keys_and_names_valid_ones():
    with pytest.raises(ConfigError, match="weight_bits"):
        QuantSpec.from_dict({"wieght_bits": 8})


def test_from_dict_none_is_default():
    assert QuantSpec.from_dict(None) == QuantSpec()


@pytest.mark.parametrize("kwargs", [{"weight_bits": 9}, {"act_bits": 1}, {"bias_bits": 8},
                                    {"calibration_batches": 0}, {"act_percentile": 10.0},
                                    {"act_signed": "yes"}])
def test_invalid_values_raise(kwargs):
    with pytest.raises(ConfigError):
        QuantSpec(**kwargs)


def test_compact_string():
    assert QuantSpec().to_str() == "w8c-a8u-b32"
    assert QuantSpec(weight_per_channel=False, act_signed=True, weight_bits=4).to_str() == "w4t-a8s-b32"
