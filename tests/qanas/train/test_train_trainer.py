"""The training loop: exact resume, fair gradient coverage, quick validation, BN recalibration."""

from __future__ import annotations

import pytest
import torch

from qanas.errors import ConfigError
from qanas.supernet import build_supernet
from qanas.train import SupernetTrainer, TrainConfig, load_checkpoint
from qanas.train.evaluate import majority_class_miou
from tests.support.toy_space import register_toy_spaces, tiny_config


@pytest.fixture(autouse=True)
def _toy():
    register_toy_spaces()


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("changes", [{}, {"sampler": "spos", "optimizer": "adamw"}])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, changes):
    config = tiny_config(**changes)
    full = SupernetTrainer(config, tmp_path / "full")
    full.fit()

    first = SupernetTrainer(config, tmp_path / "split")
    first.fit(until_epoch=2)
    assert load_checkpoint(tmp_path / "split" / "supernet.pt")["epoch"] == 2
    del first
    torch.manual_seed(12345)  # disturb global RNG: resume must restore it
    resumed = SupernetTrainer.from_checkpoint(tmp_path / "split" / "supernet.pt")
    assert resumed.epoch == 2
    resumed.fit()

    _assert_same_state(full.model.state_dict(), resumed.model.state_dict())
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    assert [h["val_miou"] for h in full.history] == [h["val_miou"] for h in resumed.history]
    opt_a, opt_b = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    for pid, state in opt_a["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                assert torch.equal(value, opt_b["state"][pid][name]), (pid, name)
    assert full.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()
    assert all((a == b).all() for a, b in zip(full.sampler.counts, resumed.sampler.counts,
                                              strict=True))


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = SupernetTrainer(tiny_config(epochs=1), tmp_path / "a")
    a.fit()
    b = SupernetTrainer(tiny_config(epochs=1), tmp_path / "b")
    b.fit()
    c = SupernetTrainer(tiny_config(epochs=1, seed=2), tmp_path / "c")
    c.fit()
    _assert_same_state(a.model.state_dict(), b.model.state_dict())
    assert not torch.equal(a.model.head.weight, c.model.head.weight)


def test_fairnas_step_runs_m_paths_and_reaches_every_weight(tmp_path):
    trainer = SupernetTrainer(tiny_config(epochs=1), tmp_path)
    calls = []
    trainer.model.head.register_forward_hook(lambda *_: calls.append(1))
    image, mask = trainer._calib[0]
    before = {k: v.clone() for k, v in trainer.model.named_parameters()}
    assert trainer.train_step(image, mask) is not None
    assert len(calls) == trainer.sampler.paths_per_step == 4
    # Strict fairness: every option of every decision was trained in this step.
    for name, param in trainer.model.named_parameters():
        assert param.grad is not None, name
        assert not torch.equal(param, before[name]), name


def test_spos_step_runs_one_path_and_leaves_unused_options_untouched(tmp_path):
    trainer = SupernetTrainer(tiny_config(epochs=1, sampler="spos"), tmp_path)
    image, mask = trainer._calib[0]
    trainer.sampler.next_paths = lambda: [trainer.space.min_config()]  # k1, skip, skip
    trainer.train_step(image, mask)
    layers = trainer.model.layers
    assert layers[0].weight.grad is not None and layers[1].weight.grad is None
    assert layers[2].weight.grad is None


def test_batch_without_labels_is_skipped(tmp_path):
    trainer = SupernetTrainer(tiny_config(epochs=1), tmp_path)
    image, mask = trainer._calib[0]
    assert trainer.train_step(image, torch.full_like(mask, trainer.ignore_index)) is None
    assert trainer.step == 0 and trainer.sampler.step == 0


def test_training_lowers_the_loss_and_history_is_complete(tmp_path):
    trainer = SupernetTrainer(tiny_config(epochs=3, steps_per_epoch=3, train_length=24), tmp_path)
    summary = trainer.fit()
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0], losses
    assert summary["epochs"] == 3 and set(summary["val_miou"]) == {"max", "min", "seed"}
    assert all(0.0 <= v <= 1.0 for v in summary["val_miou"].values())
    payload = load_checkpoint(tmp_path / "supernet.pt")
    assert payload["epoch"] == 3 and payload["step"] == 9
    assert set(payload["rng"]) == {"torch", "numpy", "python", "sampler"}
    assert TrainConfig.from_dict(payload["config"]) == trainer.config


def test_quick_val_leaves_the_supernet_untouched(tmp_path):
    trainer = SupernetTrainer(tiny_config(epochs=1), tmp_path)
    trainer.model.set_active(trainer.space.seed_config())
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng = torch.get_rng_state()
    trainer.quick_val()
    _assert_same_state(before, trainer.model.state_dict())
    assert trainer.model.active == trainer.space.seed_config()
    assert torch.equal(rng, torch.get_rng_state())


def test_majority_baseline_predicts_the_most_frequent_class():
    train = [(None, torch.tensor([[0, 1, 1], [1, 2, 255]]))]
    val = [(None, torch.tensor([[1, 1, 2, 0]]))]
    result = majority_class_miou(train, val, num_classes=3, ignore_index=255)
    # predicting 1 everywhere: IoU(1) = 2/4, IoU(0) = IoU(2) = 0 -> mIoU 1/6
    assert result["majority_class"] == 1
    assert result["miou"] == pytest.approx(1 / 6)


def test_too_small_dataset_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="lower --batch-size"):
        SupernetTrainer(tiny_config(train_length=3), tmp_path)


def test_resume_cannot_shrink_below_trained_epochs(tmp_path):
    SupernetTrainer(tiny_config(epochs=2), tmp_path).fit()
    with pytest.raises(ConfigError, match="already trained"):
        SupernetTrainer.from_checkpoint(tmp_path / "supernet.pt", epochs=1)


def test_path_loss_sum_accumulates_m_times_the_mean_gradient(tmp_path):
    grads, losses = {}, {}
    for mode in ("mean", "sum"):
        trainer = SupernetTrainer(tiny_config(epochs=1, path_loss=mode, grad_clip=0.0),
                                  tmp_path / mode)
        image, mask = trainer._calib[0]
        losses[mode] = trainer.train_step(image, mask)
        grads[mode] = {k: p.grad.clone() for k, p in trainer.model.named_parameters()}
    m = trainer.sampler.paths_per_step
    assert losses["sum"] == pytest.approx(losses["mean"])  # the logged loss is the path mean
    for name, grad in grads["mean"].items():
        torch.testing.assert_close(grads["sum"][name], grad * m, rtol=1e-4, atol=1e-6)


def test_zero_init_residual_makes_residual_candidates_start_as_identity():
    from qanas.space import get_space
    from qanas.supernet.squeezenas_blocks import GroupedInvertedResidual
    from qanas.train.trainer import zero_init_residual

    torch.manual_seed(0)
    net = build_supernet(get_space("squeezenas-small"), 6)
    residual = [m for m in net.modules()
                if isinstance(m, GroupedInvertedResidual) and m.use_residual]
    assert zero_init_residual(net) == len(residual) > 0
    block = residual[0].train()
    x = torch.randn(2, block.expand[0].in_channels, 8, 8)
    torch.testing.assert_close(block(x), x)


def test_adamw_step_does_not_depend_on_mean_or_sum(tmp_path):
    # Adam's update is invariant to the gradient's scale (up to eps), so under AdamW the
    # FairNAS paper's sum and our mean of the m path losses train the same weights.
    weights = {}
    for mode in ("mean", "sum"):
        trainer = SupernetTrainer(tiny_config(epochs=1, path_loss=mode, grad_clip=0.0,
                                              optimizer="adamw"), tmp_path / mode)
        image, mask = trainer._calib[0]
        trainer.train_step(image, mask)
        weights[mode] = {k: p.detach().clone() for k, p in trainer.model.named_parameters()}
    for name, value in weights["mean"].items():
        # eps (1e-8) matters only for near-zero gradients: allow 1% of one lr-sized step.
        torch.testing.assert_close(weights["sum"][name], value, rtol=0, atol=1e-2 * 1e-2)


def test_training_leaves_the_callers_global_rng_alone(tmp_path):
    torch.manual_seed(7)
    before = torch.get_rng_state()
    SupernetTrainer(tiny_config(epochs=1), tmp_path).fit()
    assert torch.equal(torch.get_rng_state(), before)
