"""Independent int8 references for the compiler: QDQ ONNX models in NumPy integer arithmetic.

`run_int8_reference` interprets a QDQ model with the arithmetic of `compiler.int8`
(one rounding, half to even; see ``docs/int8-arithmetic.md``) without TVM or the
generated C, so the compiled kernels can be checked bit for bit against it, while
onnxruntime (a float32 path) is checked to within 1 LSB.
"""

from compiler.reference.numpy_int8 import (
    FLOAT_OPS,
    Boundary,
    BoundaryTensor,
    boundary,
    run_int8_reference,
)

__all__ = ["FLOAT_OPS", "Boundary", "BoundaryTensor", "boundary", "run_int8_reference"]
