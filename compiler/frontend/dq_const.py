"""`DQConst`: a DequantizeLinear of a constant, shared by the ONNX importer and its op converters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax


@dataclass(frozen=True)
class DQConst:
    """A DequantizeLinear of a constant, kept symbolic until a consumer decides its form."""

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int

    def expr(self) -> relax.Expr:
        """``R.dequantize`` of the integer constant."""
        return relax.op.dequantize(relax_const(self.q),
                                   relax_const(self.scale.astype(np.float32)),
                                   relax_const(self.zero_point), axis=self.axis,
                                   out_dtype="float32")


def relax_const(arr: np.ndarray) -> tvm.ir.GenericConst:
    """``arr`` as a Relax constant of its own dtype."""
    arr = np.asarray(arr)
    return relax.const(arr, str(arr.dtype))
