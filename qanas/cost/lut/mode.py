"""The compiler mode a latency table describes (``qanas compile --optimise``)."""

from __future__ import annotations

TABLE_OPTIMISE = "speed"
"""The compiler mode latency tables measure: ``speed`` (layer kernels of the library, no
patches) is block-additive. ``size`` runs the high-resolution head as one patch kernel that
absorbs a subnet-dependent number of blocks, so its latency is not a sum of block costs."""


def table_optimise(protocol: dict) -> str:
    """The ``--optimise`` mode a table's models were compiled with (tables before the
    field: ``size``, the compiler's default then)."""
    return str(protocol.get("optimise", "size"))
