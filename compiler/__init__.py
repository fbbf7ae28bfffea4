"""qanas compiler: ONNX (QDQ int8) / torch.export → Apache TVM Relax → integer-only C.

Produces an AOT execution plan, a static memory plan and a standalone C project.
Imports `targets` only (never `qanas`).
"""

from compiler.errors import (
    CompilerError,
    InvalidModelError,
    MemoryBudgetExceeded,
    UnsupportedOpError,
)

__all__ = ["CompilerError", "InvalidModelError", "MemoryBudgetExceeded", "UnsupportedOpError"]
