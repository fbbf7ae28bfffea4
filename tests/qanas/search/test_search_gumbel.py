"""Gumbel (differentiable) search: α lowers expected latency, pruning/sampling, gates, CLI, seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qanas.cost.hardware import AnalyticLatencyModel
from qanas.data import build_dataset, make_loader
from qanas.errors import ConfigError
from qanas.search.gumbel import (
    ChoiceCosts,
    GumbelConfig,
    GumbelDistribution,
    choice_costs,
    learn_distribution,
    prune,
    select_samples,
)
from qanas.search.gumbel.gates import GateHooks, gating, relaxable_decisions
from qanas.space import get_space, list_spaces
from qanas.supernet import build_supernet
from targets import get_target, total_macs

SPACE = "squeezenas-small"
SIZE = (32, 32)
CLASSES = 6  # the synthetic dataset's


def _supernet(seed: int = 0):
    torch.manual_seed(seed)
    return build_supernet(get_space(SPACE), CLASSES)


def _loader(seed: int = 0):
    ds = build_dataset("synthetic", "train", image_size=SIZE, length=8, seed=seed)
    return make_loader(ds, batch_size=2, shuffle=True, seed=seed, drop_last=True)


def _macs_costs(space, size=SIZE):
    return choice_costs(space, lambda c: float(total_macs(space.layer_specs(c, size, CLASSES))),
                        "macs", "MACs")


# -- the latency term ---------------------------------------------------------------------------
def test_expected_latency_falls_monotonically_as_alpha_grows():
    space = get_space(SPACE)
    costs = _macs_costs(space)
    ratios = []
    for alpha in (0.0, 1.0, 4.0):
        dist = learn_distribution(_supernet(), _loader(), costs,
                                  GumbelConfig(steps=12, alpha=alpha, seed=3))
        ratios.append(dist.expected_latency_ratio())
        uniform = [np.full(d.size, 1 / d.size) for d in space.decisions]  # logits start at 0
        assert dist.history[0]["latency_ratio"] == pytest.approx(costs.ratio(uniform), rel=1e-5)
    assert ratios[0] > ratios[1] > ratios[2], ratios
    assert ratios[2] < 0.9 * ratios[0]


def test_additive_costs_reproduce_the_cost_model_where_decisions_do_not_interact():
    space = get_space(SPACE)
    model = AnalyticLatencyModel(space, get_target("cortex-m7"), SIZE, CLASSES)
    costs = choice_costs(space, lambda c: model.predict(c).value, model.source, "cycles")
    assert costs.model == "additive"
    rng = np.random.default_rng(5)
    for _ in range(3):
        cfg = space.sample(rng)
        one_hot = [np.eye(d.size)[c] for d, c in zip(space.decisions, cfg.choices, strict=True)]
        assert costs.expected(one_hot) == pytest.approx(model.predict(cfg).value, rel=1e-9)
    # strides and keep/drop interact in fmas-mbv2: the positive multiplicative model is used
    fmas = get_space("fmas-mbv2")
    assert choice_costs(fmas, lambda c: float(total_macs(fmas.layer_specs(c, SIZE, CLASSES))),
                        "macs", "MACs").model == "multiplicative"


# -- gates ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list_spaces())
def test_every_decision_of_every_space_is_relaxed(name):
    space = get_space(name)
    assert all(relaxable_decisions(space)), name
    # a decision may be inert at the seed (efficient-topformer: a block beyond its stage's
    # depth) but then configures a unit of the max subnet
    covered = set().union(*gating(space, space.seed_config()).values(),
                          *gating(space, space.max_config()).values())
    assert covered == set(range(len(space.decisions)))


def test_gates_keep_the_forward_value_and_pass_gradient_to_the_chosen_weight():
    net = _supernet().eval()
    space = net.space
    cfg = space.seed_config()
    x = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    net.set_active(cfg)
    plain = net(x)
    weights = [torch.ones((), requires_grad=True) for _ in space.decisions]
    hooks = GateHooks(net)
    with hooks.attached():
        hooks.apply(cfg, weights)
        gated = net(x)
        gated.sum().backward()
    torch.testing.assert_close(gated, plain)
    assert all(w.grad is not None and w.grad.abs() > 0 for w in weights)
    assert torch.equal(net(x), plain)  # hooks removed on exit


def test_identity_skip_is_the_unscaled_path():
    net = _supernet().eval()
    space = net.space
    skip = space.decisions[1].options.index("skip")  # blocks.1: stride 1, 16 -> 16 (identity)
    cfg = space.decode([skip if j == 1 else c for j, c in enumerate(space.seed_config().choices)])
    weights = [torch.ones((), requires_grad=True) for _ in space.decisions]
    hooks = GateHooks(net)
    with hooks.attached():
        hooks.apply(cfg, weights)
        net(torch.randn(1, 3, *SIZE)).sum().backward()
    assert weights[1].grad == 0 and weights[0].grad != 0


# -- pruning and sampling -------------------------------------------------------------------------
def _hand_distribution(probabilities, samples=4000, seed=0):
    space = get_space(SPACE)
    zeros = tuple(tuple(0.0 for _ in d.options) for d in space.decisions)
    logits = tuple(tuple(float(np.log(max(p, 1e-12))) for p in row) for row in probabilities)
    return GumbelDistribution(SPACE, GumbelConfig(samples=samples, seed=seed),
                              ChoiceCosts("macs", "MACs", 1.0, zeros),
                              (True,) * len(space.decisions), logits, tuple(probabilities))


def test_prune_drops_options_below_half_a_percent_and_renormalizes():
    p = np.array([0.004, 0.0049, 0.005, 0.3, 0.6861])
    pruned = np.array(prune(p, 0.005))
    assert np.all(pruned[:2] == 0) and pruned[2] > 0
    assert pruned.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pruned[2:], p[2:] / p[2:].sum())
    assert prune([0.001] * 1000, 0.005).count(0.0) == 999  # the most likely one survives


def test_sampling_follows_the_learned_distribution_and_the_budget_takes_the_most_probable():
    space = get_space(SPACE)
    rng = np.random.default_rng(1)
    probs = []
    for d in space.decisions:
        raw = rng.dirichlet(np.full(d.size, 0.5))
        probs.append(prune(raw, 0.005))
    dist = _hand_distribution(probs, samples=3000)
    sel = select_samples(dist, budget=3000, seed=4)
    assert sel.drawn == 3000 and sum(sel.counts.values()) == 3000
    freq = np.zeros((len(space.decisions), 13))
    for arch, n in sel.counts.items():
        cfg = space.resolve(arch)
        freq[np.arange(len(cfg.choices)), cfg.choices] += n
    freq /= 3000
    target = np.array(probs)
    assert np.all(freq[target == 0] == 0)  # pruned options never drawn
    assert np.abs(freq - target).max() < 0.04  # ~4 sigma for p=0.5, n=3000
    again = select_samples(dist, budget=3000, seed=4)
    assert again.counts == sel.counts
    top = select_samples(dist, budget=5, seed=4)
    assert len(top.selected) == 5 and top.distinct == sel.distinct
    from qanas.search.gumbel import log_probability

    lp = [log_probability(dist, c) for c in top.selected]
    rest = max(log_probability(dist, space.resolve(a)) for a in sel.counts
               if a not in {c.to_str() for c in top.selected})
    assert lp == sorted(lp, reverse=True) and min(lp) >= rest


# -- reproducibility --------------------------------------------------------------------------------
def test_same_seed_same_logits_other_seed_other_logits():
    space = get_space(SPACE)
    costs = _macs_costs(space)
    runs = [learn_distribution(_supernet(), _loader(), costs,
                               GumbelConfig(steps=4, alpha=0.5, seed=s)) for s in (7, 7, 8)]
    assert runs[0].logits == runs[1].logits
    assert [h["arch"] for h in runs[0].history] == [h["arch"] for h in runs[1].history]
    assert runs[0].logits != runs[2].logits


def test_bad_knobs_are_refused_with_the_flag_name():
    with pytest.raises(ConfigError, match="--samples"):
        GumbelConfig(samples=0)
    with pytest.raises(ConfigError, match="temperatures"):
        GumbelConfig(tau_end=0)
    assert GumbelConfig(steps=5).tau(0) == 5.0 and GumbelConfig(steps=5).tau(4) == pytest.approx(1.0)


# -- CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    from qanas.search import job as search_job
    from qanas.train.checkpoint import save_checkpoint
    from tests.support.fakes import FakeScorer

    space = get_space(SPACE)
    path = save_checkpoint(tmp_path / "supernet.pt", {
        "space": SPACE, "num_classes": CLASSES, "image_size": list(SIZE),
        "dataset": {"name": "synthetic", "root": None}, "model": _supernet().state_dict(),
        "epoch": 0, "step": 0, "config": {"batch_size": 2, "train_length": 8}, "history": [],
        "qat": False, "quant_spec": None})
    scorer = FakeScorer(space)

    def build(args):
        return search_job.ScorerSetup(scorer, space, CLASSES, SIZE, "f" * 64,
                                      {"fake": True, "seed": args.seed,
                                       "checkpoint": str(args.supernet)})

    monkeypatch.setattr(search_job, "build_scorer", build)
    return path


def _cli(ckpt, out, *extra):
    from qanas.cli import main as cli

    return cli.main(["search", "--supernet", str(ckpt), "--target", "cortex-m7", "--algo",
                     "gumbel", "--budget", "5", "--samples", "40", "--gumbel-steps", "3",
                     "--out", str(out), "--json", *extra])


@pytest.mark.slow
def test_cli_gumbel_writes_front_and_gumbel_json(tmp_path, capsys, checkpoint):
    out = tmp_path / "run"
    assert _cli(checkpoint, out, "--alpha", "2", "--latency-source", "macs") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["algorithm"] == "gumbel" and 1 <= result["evaluated"] <= 5 and result["front"]
    for name in ("front.json", "front.csv", "pareto.png", "gumbel.json", "archive.sqlite"):
        assert (out / name).stat().st_size > 0
    doc = json.loads((out / "gumbel.json").read_text())
    assert doc["config"]["alpha"] == 2.0 and doc["costs"]["source"] == "macs"
    assert [h["tau"] for h in doc["history"]] == pytest.approx([5.0, 5.0 ** 0.5, 1.0])
    assert len(doc["decisions"]) == 20 and doc["fixed_decisions"] == []
    for d in doc["decisions"]:
        assert sum(d["probabilities"]) == pytest.approx(1.0)
        low = [o for o, p in zip(d["options"], d["learned"], strict=True) if p < 0.005]
        assert d["pruned"] == low
        assert all(p == 0 for o, p in zip(d["options"], d["probabilities"], strict=True)
                   if o in low)
    scored = [s["arch"] for s in doc["sampling"]["scored"]]
    assert len(scored) == result["evaluated"] and doc["sampling"]["drawn"] == 40
    assert result["gumbel"]["expected_latency_ratio"] == pytest.approx(
        doc["expected_latency_ratio"])

    # --train-weights: the scorer reads the jointly updated weights saved in the run dir
    out2 = tmp_path / "trained"
    assert _cli(checkpoint, out2, "--train-weights", "--gumbel-steps", "2") == 0
    result2 = json.loads(capsys.readouterr().out)
    doc2 = json.loads((out2 / "gumbel.json").read_text())
    assert doc2["scored_checkpoint"] == str(out2 / "gumbel_supernet.pt")
    assert doc2["costs"]["source"].startswith("analytic:")
    before = torch.load(checkpoint, weights_only=True)["model"]
    after = torch.load(out2 / "gumbel_supernet.pt", weights_only=True)["model"]
    assert any(not torch.equal(before[k], after[k]) for k in before
               if before[k].is_floating_point())
    assert result2["evaluated"] >= 1


def test_cli_gumbel_errors_name_the_fix(tmp_path, capsys, checkpoint):
    assert _cli(checkpoint, tmp_path / "a", "--samples", "0") == 2
    assert "--samples" in json.loads(capsys.readouterr().out)["error"]
    assert _cli(checkpoint, tmp_path / "b", "--latency-source", "lut",
                "--image-size", "24", "24") == 2
    assert "--lut" in json.loads(capsys.readouterr().out)["error"]
    assert _cli(checkpoint, tmp_path / "c", "--target", "ethos-u55-128") == 2
    assert "--algo nsga2" in json.loads(capsys.readouterr().out)["error"]


def test_a_decision_that_cannot_be_relaxed_stays_at_the_seed(monkeypatch):
    import qanas.search.gumbel.distribution as gumbel_mod

    space = get_space(SPACE)
    fixed = (False,) + (True,) * (len(space.decisions) - 1)
    monkeypatch.setattr(gumbel_mod, "relaxable_decisions", lambda s: fixed)
    dist = learn_distribution(_supernet(), _loader(), _macs_costs(space),
                              GumbelConfig(steps=3, alpha=1.0, seed=0))
    seed_label = space.seed_config().labels()[0]
    assert all(space.resolve(h["arch"]).labels()[0] == seed_label for h in dist.history)
    assert dist.probabilities[0] == tuple(float(o == seed_label) for o in space.decisions[0].options)
    doc = json.loads(json.dumps(dist.to_dict(), allow_nan=False))
    assert doc["fixed_decisions"] == [space.decisions[0].name]
    sel = select_samples(dist, budget=10, seed=0)
    assert all(c.labels()[0] == seed_label for c in sel.selected)
