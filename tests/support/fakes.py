"""Stand-ins for the expensive parts of a search: a deterministic scorer
and a latency measurer that need no supernet and no QEMU."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from compiler.plan_only import MemoryReport
from qanas.cost.hardware import HardwareCostModel
from qanas.cost.lut.measure import Measurement, ModelInputs
from targets import get_target
from targets.cost import peak_activation_elements

SIZE = (32, 64)


class LayerwiseSram:
    """Test-only SRAM model: the largest input + output pair of any layer, in int8 bytes.

    The search tests need a deterministic SRAM figure that differs across subnets, not
    the compiler's plan (a QDQ export per subnet); tests/qanas/cost/test_search_hw.py checks that
    the default `CompiledSramModel` equals the compiled arena.
    """

    def __init__(self, space):
        self.space = space

    def report(self, cfg) -> MemoryReport:
        peak = peak_activation_elements(self.space.layer_specs(cfg, SIZE, 4))
        return MemoryReport("host", "size", "logits", "greedy", peak, peak, peak, (), 0, 0,
                            0, 0)


def _hw(space, target="host") -> HardwareCostModel:
    return HardwareCostModel(space, get_target(target), SIZE, 4,
                             sram_model=LayerwiseSram(space))


class FakeScorer:
    """Test-only scorer: log-MACs plus arch-seeded noise, in [0, 1]; records what it scores."""

    def __init__(self, space, noise: float = 0.02):
        self.space, self.noise, self.calls = space, noise, []
        self.hw = _hw(space)

    def score(self, cfg):
        assert self.space.is_valid(cfg), f"invalid config reached the scorer: {cfg.choices}"
        self.calls.append(cfg.to_str())
        macs = self.hw.profile(cfg).macs
        seed = int.from_bytes(hashlib.sha256(cfg.to_str().encode()).digest()[:8], "little")
        noise = np.random.default_rng(seed).normal(0, self.noise)
        miou = float(np.clip(0.1 * np.log10(macs) - 0.2 + noise, 0, 1))
        return {"miou": miou, "miou_fp32": miou + 0.01, "pixel_acc": 0.5}


PER_MODEL = 500.0  # the fake runner's constant per compiled model (timer, call overhead)


class FakeMeasurer:
    """Latency = 2 instructions per conv weight x output pixel (MACs) + a per-model constant.

    Additive in blocks by construction, so a correct table predicts it exactly.
    """

    unit = "instructions"

    def __init__(self):
        self.calls: list[str] = []
        self.inputs: dict[str, ModelInputs] = {}

    def measure(self, model: nn.Module, inputs: ModelInputs, name: str) -> Measurement:
        self.calls.append(name)
        self.inputs[name] = inputs
        macs = 0

        def hook(mod, args, output):
            nonlocal macs
            macs += mod.weight.numel() * output.shape[-1] * output.shape[-2]

        handles = [m.register_forward_hook(hook) for m in model.modules()
                   if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            model.eval()(inputs.sample)
        for h in handles:
            h.remove()
        return Measurement(2.0 * macs + PER_MODEL, self.unit)

    def protocol(self) -> dict:
        return {"target": "fake", "runner": "fake", "unit": self.unit}
