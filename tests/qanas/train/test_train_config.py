"""`TrainConfig`: resolved defaults, dict round trip, errors that name the fix."""

from __future__ import annotations

import json

import pytest

from qanas.errors import ConfigError
from qanas.train import TrainConfig
from qanas.train.optim import WarmupCosine


def test_defaults_are_resolved_per_optimizer():
    sgd = TrainConfig(space="s", optimizer="sgd")
    adamw = TrainConfig(space="s", optimizer="adamw")
    assert sgd.lr > adamw.lr > 0 and sgd.weight_decay != adamw.weight_decay
    assert TrainConfig(space="s", lr=0.3).lr == 0.3


def test_short_run_defaults():
    cfg = TrainConfig(space="s")
    assert (cfg.optimizer, cfg.lr, cfg.batch_size) == ("adamw", 1e-2, 4)
    assert cfg.zero_init_residual and cfg.path_loss == "mean"
    # Augmentation: off for the generated synthetic scenes, on for real datasets.
    assert cfg.augment is False
    assert TrainConfig(space="s", dataset="voc").augment is True
    assert TrainConfig(space="s", augment=True).augment is True


def test_dict_round_trip_is_json_safe():
    cfg = TrainConfig(space="s", image_size=[32, 48], eval_subnets=["max"], steps_per_epoch=3)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_dict(data) == cfg
    assert cfg.image_size == (32, 48)


def test_unknown_keys_are_rejected_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown TrainConfig keys \['lrate'\].*'lr'"):
        TrainConfig.from_dict({"space": "s", "lrate": 0.1})


@pytest.mark.parametrize("changes, match", [
    ({"optimizer": "rmsprop"}, "choose one of sgd, adamw"),
    ({"sampler": "greedy"}, "choose one of fairnas, spos"),
    ({"path_loss": "max"}, "choose one of sum, mean"),
    ({"image_size": (64,)}, "two positive integers"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"lr": -1.0}, "lr must be positive"),
    ({"quant_spec": {"bits": 8}}, "only used with qat=True"),
])
def test_invalid_values_name_the_problem(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(space="s", **changes)


def test_warmup_cosine_shape():
    schedule = WarmupCosine(total_steps=100, warmup_steps=10)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(55) == pytest.approx(0.5)
    assert schedule(100) == pytest.approx(0.0, abs=1e-12)
    values = [schedule(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
