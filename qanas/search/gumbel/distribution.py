"""`gumbel`: SqueezeNAS-style differentiable search with Gumbel-softmax architecture parameters.

**Parameters.** One logit vector per decision of the space (zeros: uniform).

**Step** (GDAS-style single path, so only one subnet runs per step on the CPU):
per decision, a relaxed sample ``y = softmax((logits + g) / τ)`` with Gumbel noise
``g`` from the run's own `torch.Generator` (the math of
`torch.nn.functional.gumbel_softmax`, which only draws from the global RNG); its
argmax, repaired by the space, is the sampled subnet; the straight-through weight
``w = onehot(choice) − y.detach() + y`` (1 forward) scales what that choice
configures (`qanas.search.gumbel.gates`). Loss
``CE + α · E[latency] / latency(seed)``, the expectation taken under
``p_j = softmax(logits_j / τ)`` with ``Δcost_jk``, the marginal cost of option
``k`` of decision ``j`` with every other decision at the seed (`choice_costs`):
``E = seed + Σ_j Σ_k p_jk Δcost_jk`` when that additive model reproduces the
cost exactly (the per-block LUT, or analytic cycles/MACs of the SqueezeNAS
spaces), else ``E = seed · Π_j Σ_k p_jk (1 + Δcost_jk / seed)`` (strides and
skips of the MobileNetV2 spaces interact; this stays positive). Adam on the logits
(lr 3e-2); the supernet's weights are frozen unless ``train_weights``. τ anneals
exponentially from ``tau_start`` to ``tau_end`` over the steps.

**After.** The distribution ``softmax(logits / tau_end)`` is pruned (options
below ``prune_below``, 0.5 %, set to 0, the rest renormalized), ``samples``
subnets are drawn from it (seeded), and the distinct ones are scored through
the same `SubnetEvaluation` and Pareto code as NSGA-II; when there are more
distinct samples than the budget, the ``budget`` most probable ones are scored.

Example:
    >>> costs = choice_costs(space, lambda c: hw.latency_model.predict(c).value, "lut", "cycles")  # doctest: +SKIP
    >>> dist = learn_distribution(supernet, loader, costs, GumbelConfig(alpha=0.5))  # doctest: +SKIP
    >>> result = run_search("gumbel", evaluation, budget=40, seed=0, distribution=dist)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from qanas.errors import ConfigError
from qanas.search.gumbel.gates import GateHooks, relaxable_decisions
from qanas.search.gumbel.sampling import prune
from qanas.space.base import SearchSpace, SubnetConfig

__all__ = ["ChoiceCosts", "GumbelConfig", "GumbelDistribution", "choice_costs",
           "learn_distribution"]

Progress = Callable[[int, dict], None]
"""Called after each search step with (steps done, that step's history row)."""


@dataclass(frozen=True)
class GumbelConfig:
    """Knobs of the differentiable search (see the module docstring).

    Attributes:
        steps: architecture steps (one batch each).
        alpha: weight of the normalized expected-latency term (unitless).
        tau_start, tau_end: Gumbel-softmax temperature, annealed exponentially.
        arch_lr: Adam learning rate of the logits.
        train_weights: also update the supernet's weights (Adam, ``weight_lr``).
        weight_lr: learning rate of the weights when ``train_weights``.
        prune_below: options with a smaller learned probability are never sampled.
        samples: architectures drawn from the learned distribution.
        seed: seeds the Gumbel noise and the sampling.
    """

    steps: int = 200
    alpha: float = 0.01
    tau_start: float = 5.0
    tau_end: float = 1.0
    arch_lr: float = 3e-2
    train_weights: bool = False
    weight_lr: float = 1e-4
    prune_below: float = 0.005
    samples: int = 200
    seed: int = 0

    def __post_init__(self):
        checks = [(self.steps >= 1, f"--gumbel-steps must be >= 1, got {self.steps}"),
                  (self.alpha >= 0, f"--alpha must be >= 0, got {self.alpha}"),
                  (self.tau_start > 0 and self.tau_end > 0,
                   f"temperatures must be > 0, got {self.tau_start} -> {self.tau_end}"),
                  (self.arch_lr > 0 and self.weight_lr > 0, "learning rates must be > 0"),
                  (0 <= self.prune_below < 1, f"prune threshold must be in [0, 1), got "
                                              f"{self.prune_below}"),
                  (self.samples >= 1, f"--samples must be >= 1, got {self.samples}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def tau(self, step: int) -> float:
        """Temperature at `step` (0-based): ``tau_start · (tau_end / tau_start)^(step / (steps-1))``."""
        frac = step / max(self.steps - 1, 1)
        return float(self.tau_start * (self.tau_end / self.tau_start) ** frac)


# -- per-choice costs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChoiceCosts:
    """Seed cost and marginal cost of every option (other decisions at the seed).

    Attributes:
        source: what the costs are ("lut:<target>", "analytic:<cpu>", "macs").
        unit: their unit ("cycles", "s", "MACs").
        seed_cost: cost of the seed subnet (normalizes the latency term).
        marginal: per decision, per option: cost(seed with that option) − seed_cost.
        model: "additive" (cost = seed + Σ marginals; exact when decisions do not interact,
            e.g. the SqueezeNAS blocks) or "multiplicative" (cost = seed · Π (1 + marginal /
            seed), always positive; used when strides or skips make costs interact).
    """

    source: str
    unit: str
    seed_cost: float
    marginal: tuple[tuple[float, ...], ...]
    model: str = "additive"

    def ratio(self, probabilities: Sequence):
        """Expected cost / seed cost under independent per-decision probabilities.

        Works on numpy arrays and on torch tensors (differentiable); a None entry is a
        decision kept at the seed (marginal 0).
        """
        terms = [(p * (torch.as_tensor(m, dtype=p.dtype) if isinstance(p, torch.Tensor)
                       else np.asarray(m)) / self.seed_cost).sum()
                 for p, m in zip(probabilities, self.marginal, strict=True) if p is not None]
        if self.model == "additive":
            return 1.0 + sum(terms)
        out = 1.0
        for t in terms:
            out = out * (1.0 + t)
        return out

    def expected(self, probabilities: Sequence) -> float:
        """Expected cost in `unit` under per-decision probabilities."""
        return float(self.ratio([np.asarray(p, dtype=float) if p is not None else None
                                 for p in probabilities])) * self.seed_cost


def choice_costs(space: SearchSpace, cost: Callable[[SubnetConfig], float], source: str,
                 unit: str, checks: int = 4) -> ChoiceCosts:
    """Marginal cost of each option against the seed subnet, via ``cost(cfg)``.

    The additive model is used when it reproduces ``cost`` exactly (relative error
    < 1e-6) on the max and min configs and `checks` seeded random subnets; otherwise
    the multiplicative one.

    Raises:
        ConfigError: a seed cost that is not positive (nothing to normalize by).
    """
    seed = space.seed_config()
    base = float(cost(seed))
    if not base > 0:
        raise ConfigError(f"the seed subnet of {space.name} costs {base} {unit} ({source}); "
                          "the latency term needs a positive cost to normalize by")
    marginal = []
    for j, decision in enumerate(space.decisions):
        row = []
        for k in range(decision.size):
            vec = list(seed.choices)
            vec[j] = k
            row.append(0.0 if k == seed.choices[j] else float(cost(space.decode(vec))) - base)
        marginal.append(tuple(row))
    rng = np.random.default_rng(0)
    probes = [space.max_config(), space.min_config()] + [space.sample(rng) for _ in range(checks)]
    additive = all(
        abs(base + sum(marginal[j][c] for j, c in enumerate(cfg.choices)) - float(cost(cfg)))
        <= 1e-6 * abs(float(cost(cfg))) for cfg in probes)
    return ChoiceCosts(source, unit, base, tuple(marginal),
                       "additive" if additive else "multiplicative")


# -- the learned distribution -------------------------------------------------------------------
@dataclass(frozen=True)
class GumbelDistribution:
    """What the differentiable search learned.

    Attributes:
        space: the space's name.
        config: the `GumbelConfig` of the run.
        costs: the per-choice costs of the latency term.
        relaxed: per decision, False when it was kept at the seed (not relaxable).
        logits: per decision, the learned logits.
        probabilities: per decision, the pruned and renormalized sampling distribution.
        history: per step: tau, ce, latency_ratio, loss, arch.
        seconds: wall time of the search steps.
    """

    space: str
    config: GumbelConfig
    costs: ChoiceCosts
    relaxed: tuple[bool, ...]
    logits: tuple[tuple[float, ...], ...]
    probabilities: tuple[tuple[float, ...], ...]
    history: tuple[dict, ...] = field(default=())
    seconds: float = 0.0

    def raw_probabilities(self) -> list[np.ndarray]:
        """``softmax(logits / tau_end)`` per decision, before pruning."""
        return [_softmax(np.asarray(lg) / self.config.tau_end) for lg in self.logits]

    def expected_latency(self) -> float:
        """Expected cost of the learned (unpruned) distribution, in the costs' unit."""
        return self.costs.expected(self.raw_probabilities())

    def expected_latency_ratio(self) -> float:
        """`expected_latency` / seed cost: the latency term of the loss at the end."""
        return float(self.costs.ratio(self.raw_probabilities()))

    def to_dict(self) -> dict:
        """JSON-friendly form (decisions with options, logits, probabilities, pruned options)."""
        from qanas.space import get_space

        space = get_space(self.space)
        raw = self.raw_probabilities()
        decisions = []
        for j, d in enumerate(space.decisions):
            decisions.append({
                "name": d.name, "options": list(d.options), "relaxed": self.relaxed[j],
                "logits": [v if math.isfinite(v) else None for v in self.logits[j]],
                "learned": [float(p) for p in raw[j]],
                "probabilities": list(self.probabilities[j]),
                "pruned": [o for o, p in zip(d.options, self.probabilities[j], strict=True)
                           if p == 0.0],
                "most_likely": d.options[int(np.argmax(self.probabilities[j]))],
                "marginal_cost": list(self.costs.marginal[j])})
        return {"space": self.space, "config": asdict(self.config), "costs": {
            "source": self.costs.source, "unit": self.costs.unit,
            "seed_cost": self.costs.seed_cost, "model": self.costs.model},
            "expected_latency": self.expected_latency(),
            "expected_latency_ratio": self.expected_latency_ratio(),
            "fixed_decisions": [d["name"] for d in decisions if not d["relaxed"]],
            "decisions": decisions, "history": list(self.history), "seconds": self.seconds}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()


# -- the search loop ----------------------------------------------------------------------------
def _batches(loader: Iterable, steps: int):
    done = 0
    while done < steps:
        empty = True
        for batch in loader:
            empty = False
            yield batch
            done += 1
            if done >= steps:
                return
        if empty:
            raise ConfigError("the training loader yields no batch; use a larger dataset or a "
                              "smaller batch size")


def learn_distribution(supernet, loader: Iterable, costs: ChoiceCosts, config: GumbelConfig,
                       ignore_index: int = 255, progress: Progress | None = None
                       ) -> GumbelDistribution:
    """Learns per-decision architecture logits over a trained supernet (see the module doc).

    Args:
        supernet: a supernet of a supported space; left with its weights as they were unless
            ``config.train_weights`` (then updated in place), in train mode (batch statistics).
        loader: yields ``(images, masks)``; cycled until ``config.steps`` batches.
        costs: per-choice costs (`choice_costs`).
        config: the knobs.
        ignore_index: label ignored by the cross-entropy.
        progress: called after every step.

    Returns:
        The `GumbelDistribution`.
    """
    space = supernet.space
    relaxed = relaxable_decisions(space)
    seed_choices = space.seed_config().choices
    gen = torch.Generator().manual_seed(int(config.seed))
    logits = [torch.zeros(d.size, requires_grad=True) if r else None
              for d, r in zip(space.decisions, relaxed, strict=True)]
    params = [lg for lg in logits if lg is not None]
    arch_opt = torch.optim.Adam(params, lr=config.arch_lr)
    weights = [p for p in supernet.parameters()] if config.train_weights else []
    saved_flags = [p.requires_grad for p in supernet.parameters()]
    for p in supernet.parameters():
        p.requires_grad_(bool(config.train_weights))
    weight_opt = torch.optim.Adam(weights, lr=config.weight_lr) if weights else None
    hooks = GateHooks(supernet)
    history: list[dict] = []
    supernet.train()
    start = time.perf_counter()
    try:
        with hooks.attached():
            for step, (images, masks) in enumerate(_batches(loader, config.steps)):
                tau = config.tau(step)
                soft, choices = [], []
                for j, lg in enumerate(logits):
                    if lg is None:
                        soft.append(None)
                        choices.append(seed_choices[j])
                        continue
                    noise = -torch.empty(lg.shape).exponential_(generator=gen).log()
                    y = F.softmax((lg + noise) / tau, dim=0)
                    soft.append(y)
                    choices.append(int(torch.argmax(y)))
                cfg = space.decode(choices)
                ws = [None if y is None else
                      (F.one_hot(torch.tensor(c), len(y)).float() - y.detach() + y)[c]
                      for y, c in zip(soft, cfg.choices, strict=True)]
                hooks.apply(cfg, ws)
                out = supernet(images)
                ce = F.cross_entropy(out, masks.long(), ignore_index=ignore_index)
                ratio = costs.ratio([None if lg is None else F.softmax(lg / tau, dim=0)
                                     for lg in logits])
                loss = ce + config.alpha * ratio
                arch_opt.zero_grad(set_to_none=True)
                if weight_opt is not None:
                    weight_opt.zero_grad(set_to_none=True)
                loss.backward()
                arch_opt.step()
                if weight_opt is not None:
                    weight_opt.step()
                row = {"step": step, "tau": tau, "ce": ce.item(), "latency_ratio": ratio.item(),
                       "loss": loss.item(), "arch": cfg.to_str()}
                history.append(row)
                if progress is not None:
                    progress(step + 1, row)
    finally:
        for p, flag in zip(supernet.parameters(), saved_flags, strict=True):
            p.requires_grad_(flag)
    seconds = time.perf_counter() - start
    final = tuple(tuple(float(v) for v in lg.detach()) if lg is not None else
                  tuple(0.0 if k != seed_choices[j] else 1.0 for k in range(space.decisions[j].size))
                  for j, lg in enumerate(logits))
    probs = []
    for j, lg in enumerate(final):
        if relaxed[j]:
            probs.append(prune(_softmax(np.asarray(lg) / config.tau_end), config.prune_below))
        else:
            probs.append(tuple(float(k == seed_choices[j]) for k in range(len(lg))))
    if not all(relaxed):
        # a fixed decision's "logits" are a point mass: keep them out of the softmax
        final = tuple(lg if relaxed[j] else tuple(0.0 if p else -math.inf for p in probs[j])
                      for j, lg in enumerate(final))
    return GumbelDistribution(space.name, config, costs, relaxed, final, tuple(probs),
                              tuple(history), seconds)
