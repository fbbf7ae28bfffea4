"""`stage_errors`: no library exception reaches the user raw from a compiler stage.

The frontend and the integer-lowering passes call onnx, numpy and TVM. An error we
foresaw is raised as a `CompilerError` subclass with a message that teaches; anything
else (a TVM ``InternalError`` with an IR dump, a numpy broadcast error) is a bug or a
model we failed to validate. `stage_errors` turns those into one `CompilerStageError`
whose one-line message names the stage and the model, keeping the original exception
as ``__cause__`` for the bug report.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from compiler.errors import CompilerError, CompilerStageError


def _one_line(text: object, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def stage_errors(stage: str, source: str) -> Iterator[None]:
    """Re-raises any non-`CompilerError` exception of the block as a `CompilerStageError`.

    Args:
        stage: what the block does, e.g. ``"ONNX import"`` or ``"integer lowering"``.
        source: the model (a path or ``"onnx.ModelProto"``).

    Example:
        >>> with stage_errors("integer lowering", "net.onnx"):  # doctest: +SKIP
        ...     lowered = lower_to_integer(imported)
    """
    try:
        yield
    except CompilerError:
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as err:
        raise CompilerStageError(
            f"{stage} of {source} failed with {type(err).__name__}: {_one_line(err)}. The "
            "model passed qanas' checks, so this is a qanas bug: please report it with the "
            "model (QANAS_TRACEBACK=1 shows the cause)") from err


__all__ = ["stage_errors"]
