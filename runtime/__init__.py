"""qanas runtime: the C runtime emitted projects link against, and the runners that build and run them."""

from pathlib import Path

C_RUNTIME_DIR = Path(__file__).parent / "c"

__all__ = ["C_RUNTIME_DIR"]
