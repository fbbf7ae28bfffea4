"""`DemoConfig`: every knob of `qanas demo`, with defaults that finish in minutes on 2 cores.

The run folder's ``config.json`` records it under ``"config"``; `DemoConfig.from_run_dir`
reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from qanas.utils.records import JsonRecord

QEMU_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")


@dataclass(frozen=True)
class DemoConfig(JsonRecord):
    """Knobs of `qanas demo`.

    Attributes:
        space, target: search space and the deployment target whose SRAM/flash budgets
            constrain the search.
        dataset, data_root, image_size: the data (synthetic needs no root).
        epochs, steps_per_epoch, batch_size: FairNAS supernet training.
        val_images: validation images every int8 mIoU of the run is measured on (search
            scores, QAT before/after, fidelity); fewer make the figures noisy.
        qat_supernet_steps: final supernet steps trained with int8 fake-quant (QAT-aware
            supernet; 0 disables).
        budget: distinct subnets the NSGA-II search evaluates.
        latency_subnets: front subnets whose predicted latency is checked against a
            measured run on the target (0 skips the check and its compiles).
        qat_steps: QAT fine-tuning steps of the chosen subnet (0 disables).
        fidelity_images: validation images run through the compiled C on the host.
        firmware_targets: QEMU targets the firmware runs on.
        npu_target: Ethos-U target compiled with Vela (None skips the NPU stage; so does a
            chosen subnet with 4-bit weights, which Vela cannot compile).
        optimise: the compiler mode (``qanas compile --optimise``) the subnets are deployed
            with; the search plans SRAM and predicts latency for it. ``speed``: the mode the
            committed latency tables measure, so the latency check compares like with like.
        bits: weight bit widths searched: ``w8`` (int8 only) or ``w4w8`` (4 or 8 bits per
            searchable conv, with weight flash as a fourth objective; docs/mixed-precision.md).
        seed: seeds data, training, search and calibration.
    """

    space: str = "squeezenas-small"
    target: str = "cortex-m7"
    dataset: str = "synthetic"
    data_root: str | None = None
    image_size: tuple[int, int] = (64, 128)
    epochs: int = 4
    steps_per_epoch: int = 100
    batch_size: int = 4
    val_images: int = 64
    qat_supernet_steps: int = 20
    budget: int = 40
    latency_subnets: int = 3
    qat_steps: int = 60
    fidelity_images: int = 8
    firmware_targets: tuple[str, ...] = QEMU_TARGETS
    npu_target: str | None = "ethos-u55-128"
    optimise: str = "speed"
    bits: str = "w8"
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        object.__setattr__(self, "firmware_targets", tuple(self.firmware_targets))

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> DemoConfig:
        """The config a demo run folder records in its config.json."""
        return cls.from_dict(json.loads((Path(run_dir) / "config.json").read_text())["config"])
