"""The `efficient-topformer` supernet: elastic slicing, extraction, FairNAS training.

References: the supernet path vs the extracted static network (bit-identical in eval
mode, with non-trivial BN statistics); the strict-fairness counts of the sampler.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from qanas.score.bn import recalibrate_bn
from qanas.space import get_space
from qanas.supernet import build_supernet
from qanas.supernet.topformer import MAX_DIM, token_index
from qanas.supernet.topformer_blocks import Attention
from qanas.supernet.topformer_ops import ElasticAttention, head_index
from qanas.train import SupernetTrainer, TrainConfig
from tests.support.mbv2_reference import randomize_bn

SPACE = "efficient-topformer"


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = build_supernet(get_space(SPACE), 5)
    randomize_bn(net)
    return net.eval()


@pytest.mark.parametrize("which", ["min", "seed", "max", "random:1", "random:2"])
def test_supernet_path_equals_extracted_subnet(supernet, which):
    space = supernet.space
    cfg = space.resolve(which)
    x = torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    supernet.set_active(cfg)
    with torch.no_grad():
        path = supernet(x)
        static = supernet.extract(cfg).eval()(x)
    assert path.shape == (2, 5, 64, 128) and path.std() > 0
    torch.testing.assert_close(static, path, rtol=0, atol=1e-5)
    assert supernet.active == cfg  # extract restores the active path


def test_bn_recalibration_of_the_path_equals_the_extracted_subnets(supernet):
    """`recalibrate_bn` (cumulative averages, ``momentum=None``) gives the supernet path the
    statistics it gives the extracted subnet, the indexed transformer BNs included."""
    net = copy.deepcopy(supernet)
    cfg = net.space.resolve("random:1")
    gen = torch.Generator().manual_seed(4)
    batches = [torch.randn(2, 3, 64, 128, generator=gen) for _ in range(3)]
    net.set_active(cfg)
    static = net.extract(cfg)
    assert recalibrate_bn(net, batches) == recalibrate_bn(static, batches) == 3
    x = torch.randn(1, 3, 64, 128, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(net.extract(cfg).eval()(x), static(x), rtol=0, atol=1e-4)
        torch.testing.assert_close(net(x), static(x), rtol=0, atol=1e-4)


def test_extract_keeps_the_active_path(supernet):
    space = supernet.space
    supernet.set_active(space.min_config())
    supernet.extract(space.max_config())
    assert supernet.active == space.min_config()


def test_token_channels_are_segment_prefixes():
    assert MAX_DIM == 40 + 72 + 136 + 176
    assert token_index((16, 32, 64, 96)).tolist() == (
        list(range(0, 16)) + list(range(40, 72)) + list(range(112, 176)) + list(range(248, 344)))
    assert head_index(2, 3, 20).tolist() == [0, 1, 2, 20, 21, 22]


def test_elastic_attention_keeps_each_heads_weights():
    """Head 0's key weights are the same rows of the max weight whatever heads/key dim are active."""
    torch.manual_seed(0)
    attn = ElasticAttention(12, 4, 6, 8)
    dims = torch.arange(12)
    attn.configure(dims, 2, 4, 5)
    small = attn.to_static()
    attn.configure(dims, 4, 6, 8)
    large = attn.to_static()
    assert isinstance(small, Attention) and small.to_q[0].out_channels == 8
    torch.testing.assert_close(small.to_k[0].weight[:4], large.to_k[0].weight[:4])
    torch.testing.assert_close(small.to_k[0].weight[4:8], large.to_k[0].weight[6:10])
    torch.testing.assert_close(small.to_v[0].weight[5:10], large.to_v[0].weight[8:13])


def test_fairnas_training_steps_train_every_choice(tmp_path):
    config = TrainConfig(space=SPACE, image_size=(64, 64), epochs=1, batch_size=2,
                         steps_per_epoch=1, train_length=4, val_length=2, val_batches=1,
                         calib_batches=1, seed=1)
    trainer = SupernetTrainer(config, tmp_path)
    space = trainer.space
    image, mask = trainer._calib[0]
    losses = [trainer.train_step(image, mask) for _ in range(2)]
    assert all(loss is not None and np.isfinite(loss) for loss in losses)
    m = trainer.sampler.paths_per_step
    assert m == 12  # the widest decision: MBConv-5 width, 88..176 step 8
    for decision, counts in zip(space.decisions, trainer.sampler.counts, strict=True):
        assert counts.sum() == 2 * m
        # strict fairness: each option trained floor(m/c) or ceil(m/c) times per step
        assert counts.min() >= 2 * (m // decision.size), decision.name
        assert counts.max() <= 2 * -(-m // decision.size), decision.name
