"""Space-wide compiler tests: which registered spaces the integer compiler cannot take yet.

`compiled_space_param` wraps one parametrized case of a test that compiles a subnet of
every registered space; a space listed in `NOT_COMPILED_YET` becomes a strict expected
failure, so its case turns into an error (XPASS) the moment the compiler supports it
and the entry must go; `NOT_EXPORTED_TO_TFLITE_YET` does the same for the TFLite
export. A subnet listed in `OVER_EMULATED_MEMORY` is an expected failure only through
`FirmwareDoesNotFit` (the firmware runner's refusal with the numbers): it passes in the
host-only suites and must fail that way, and no other, on a QEMU board.
A space in `HEAVY_SPACES` is marked ``heavy``: its compile and QEMU cases take many
minutes each on 2 cores, so `.ci/run` leaves them out (``make test HEAVY=1`` runs them).

`_export` writes the QDQ ONNX of a space's subnet at `SIZE` x `SIZE` (the compile and
TFLite export tests of every space share it).
"""

from __future__ import annotations

import pytest
import torch

from qanas.supernet import build_supernet

NOT_COMPILED_YET: dict[str, str] = {}


NOT_EXPORTED_TO_TFLITE_YET: dict[str, str] = {}


OVER_EMULATED_MEMORY = {
    ("fmas-xception", "seed"): "DeepLabV3+ Xception's 41 MB of int8 weights exceed the 16 MiB "
                               "PSRAM of the MPS2 boards QEMU emulates for cortex-m4/m7: the "
                               "firmware runner refuses it with the numbers",
}


HEAVY_SPACES = {
    "fmas-xception": "DeepLabV3+ Xception: its min subnet holds 15 MB of int8 weights; one "
                     "host compile took 501 s and the QEMU run on every emulated target "
                     "1147 s on the shared 2-core machine",
}


def compiled_space_param(space: str, *rest, tflite: bool = False):
    """`(space, *rest)` as a pytest param; an expected failure for spaces not compiled yet
    (with `tflite`, not exported to TFLite yet), and for subnets too big for the emulated
    boards; ``heavy`` for `HEAVY_SPACES` (see the module docstring)."""
    heavy = [pytest.mark.heavy] if space in HEAVY_SPACES else []
    not_yet = {**NOT_COMPILED_YET, **(NOT_EXPORTED_TO_TFLITE_YET if tflite else {})}
    if space in not_yet:
        return pytest.param(space, *rest, marks=[pytest.mark.xfail(
            reason=not_yet[space], strict=True), *heavy])
    if (space, *rest[:1]) in OVER_EMULATED_MEMORY:
        from runtime.firmware import FirmwareDoesNotFit

        return pytest.param(space, *rest, marks=[pytest.mark.xfail(
            reason=OVER_EMULATED_MEMORY[(space, *rest[:1])], raises=FirmwareDoesNotFit,
            strict=False), *heavy])
    return pytest.param(space, *rest, marks=heavy)


SIZE = 64


def _export(space_name: str, which: str, path, seed: int = 0):
    from qanas.quant import QuantSpec, calibrate, export_qdq, quantize_model
    from qanas.score import recalibrate_bn
    from qanas.space import get_space

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    space = get_space(space_name)
    model = build_supernet(space, 6).extract(space.resolve(which)).eval()
    batches = [(torch.randn(2, 3, SIZE, SIZE, generator=gen), None) for _ in range(2)]
    recalibrate_bn(model, batches)
    qmodel = quantize_model(model.eval(), QuantSpec())
    calibrate(qmodel, batches)
    return export_qdq(qmodel, torch.randn(1, 3, SIZE, SIZE, generator=gen), path)
