"""Errors raised by the compiler. Each names the problem and what to do about it."""

from __future__ import annotations


class CompilerError(Exception):
    """Base class of every error the compiler raises on purpose."""


class UnsupportedOpError(CompilerError, NotImplementedError):
    """An ONNX operator or attribute the compiler cannot lower; nothing is half-compiled."""


class MemoryBudgetExceeded(CompilerError, ValueError):
    """The planned arena (or weights) do not fit the target's SRAM (or flash)."""


class InvalidModelError(CompilerError, ValueError):
    """A model that fails `onnx.checker`, shape inference, or has unsupported dtypes."""


class CompilerStageError(CompilerError, RuntimeError):
    """An unexpected failure inside a compiler stage (a library error we did not foresee).

    The message names the stage (import, integer lowering, ...) and the ONNX node when one
    is known; the library's original exception is kept as ``__cause__`` (``QANAS_TRACEBACK=1``
    prints it). Seeing one is a qanas bug: please report it with the model.
    """
