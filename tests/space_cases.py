"""Space-wide compiler tests: which registered spaces the integer compiler cannot take yet.

`compiled_space_param` wraps one parametrized case of a test that compiles a subnet of
every registered space; a space listed in `NOT_COMPILED_YET` becomes a strict expected
failure, so its case turns into an error (XPASS) the moment the compiler supports it
and the entry must go.
"""

from __future__ import annotations

import pytest

NOT_COMPILED_YET = {
    "efficient-topformer": "the compiler has no lowering for attention yet: MatMul of two "
                           "activations, Softmax, Transpose and Slice are refused by the "
                           "frontend (issue 17)",
}


def compiled_space_param(space: str, *rest):
    """`(space, *rest)` as a pytest param; an expected failure for spaces not compiled yet."""
    if space in NOT_COMPILED_YET:
        return pytest.param(space, *rest, marks=pytest.mark.xfail(
            reason=NOT_COMPILED_YET[space], strict=True))
    return pytest.param(space, *rest)
