"""Helpers shared by the Before/Expected tests of the integer-lowering passes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tvm
from tvm import relax


def const(value, dtype: str) -> relax.Expr:
    """A Relax constant of `dtype` holding `value`."""
    return relax.const(np.asarray(value, dtype), dtype)


def f32(value) -> float:
    """A scale as the passes see it: stored in float32, read back as a Python float."""
    return float(np.float32(value))


def lowering(pass_: tvm.transform.Pass) -> Callable[[tvm.IRModule], tvm.IRModule]:
    """Runs `pass_` then CanonicalizeBindings (a rewritten quantize is bound as ``y = lv``)."""

    def lower(mod: tvm.IRModule) -> tvm.IRModule:
        return relax.transform.CanonicalizeBindings()(pass_(mod))

    return lower
