"""`efficient-topformer`: the space, its analytic costs, and TopFormer-T as its seed.

References: a hook count on the static network vs the analytic layer specs; the
published TopFormer-T figures (Zhang et al., CVPR 2022, Table 1: 0.6 GFLOPs at
512x512, 1.4 M parameters; FLOPs there are multiply-accumulates as mmcv counts them).
"""

from __future__ import annotations

import numpy as np
import pytest

from qanas.errors import ConfigError
from qanas.space import SubnetConfig, get_space
from qanas.space.geometry import total_stride
from qanas.supernet.count import count_macs_params
from qanas.supernet.topformer_blocks import build_topformer
from targets.cost import total_macs, total_params

SPACE = "efficient-topformer"
TOPFORMER_T_GMACS = 0.6
TOPFORMER_T_MPARAMS = 1.4


@pytest.fixture(scope="module")
def space():
    return get_space(SPACE)


def test_decisions_follow_the_study_table(space):
    sizes = {d.name: d.size for d in space.decisions}
    assert len(space.decisions) == 59
    assert sizes["stem"] == 2 and sizes["s1.width"] == 2 and sizes["s1.depth"] == 2
    assert [sizes[f"s{s}.width"] for s in range(2, 6)] == [4, 7, 11, 12]
    assert [sizes[f"s{s}.depth"] for s in range(2, 6)] == [3, 3, 3, 4]
    assert "s1.b1.expand" not in sizes and sizes["s5.b4.expand"] == 4
    assert space.decisions[space.index("s5.width")].options[-1] == "w176"
    for g in range(1, 5):
        assert (sizes[f"vit{g}.heads"], sizes[f"vit{g}.keydim"], sizes[f"vit{g}.attn"],
                sizes[f"vit{g}.mlp"], sizes[f"vit{g}.depth"]) == (6, 5, 5, 5, 2)


def test_seed_is_topformer_t(space):
    plan = space.plan(space.seed_config())
    assert plan.stem == 16 and plan.widths == (16, 16, 32, 64, 96)
    assert [[(b.kernel, b.expand, b.stride) for b in s] for s in plan.stages] == [
        [(3, 1, 1)], [(3, 4, 2), (3, 3, 1)], [(5, 3, 2), (5, 3, 1)], [(3, 3, 2), (3, 3, 1)],
        [(5, 6, 2), (5, 6, 1)]]
    assert plan.embed_dim == 208 and len(plan.vit) == 4
    assert {(v.heads, v.key_dim, v.value_dim, v.mlp_hidden) for v in plan.vit} == {(4, 16, 32, 416)}
    assert plan.token_slices() == ((16, 48), (48, 112), (112, 208))


def test_seed_costs_match_published_topformer_t(space):
    specs = space.layer_specs(space.seed_config(), (512, 512))
    gmacs, mparams = total_macs(specs) / 1e9, total_params(specs) / 1e6
    print(f"seed at 512x512: {gmacs:.3f} GMACs, {mparams:.3f} M params "
          f"(TopFormer-T: {TOPFORMER_T_GMACS} G, {TOPFORMER_T_MPARAMS} M)")
    assert gmacs == pytest.approx(TOPFORMER_T_GMACS, rel=0.05)
    assert mparams == pytest.approx(TOPFORMER_T_MPARAMS, rel=0.05)


@pytest.mark.parametrize("which", ["min", "seed", "max", "random:3"])
def test_analytic_costs_equal_a_hook_count(space, which):
    cfg = space.resolve(which)
    net = build_topformer(space.plan(cfg), 7)
    macs, params = count_macs_params(net, (1, 3, 128, 192))
    specs = space.layer_specs(cfg, (128, 192), num_classes=7)
    assert (macs, params) == (total_macs(specs), total_params(specs))


def test_landmarks_are_ordered_and_round_trip(space):
    costs = [total_macs(space.layer_specs(space.resolve(w), (256, 256))) for w in ("min", "seed", "max")]
    assert costs == sorted(costs) and len(set(costs)) == 3
    for which in ("min", "seed", "max"):
        cfg = space.resolve(which)
        assert SubnetConfig.from_str(cfg.to_str()) == cfg


def test_canonical_ignores_blocks_beyond_the_depth(space):
    rng = np.random.default_rng(0)
    for _ in range(20):
        cfg = space.sample(rng)
        canon = space.canonical(cfg)
        assert space.plan(canon) == space.plan(cfg)
        for i, d in enumerate(space.decisions):
            if not space.is_active(cfg, i):
                assert canon.choices[i] == 0, d.name
    seed = space.seed_config()
    assert not space.is_active(seed, space.index("s5.b3.kernel"))
    assert space.is_active(seed, space.index("s5.b2.kernel"))


def test_image_sides_must_be_multiples_of_64(space):
    with pytest.raises(ConfigError, match="multiples of 64.*--image-size 64 128"):
        space.layer_specs(space.seed_config(), (60, 120))
    assert total_stride(space) == (64, 64)
