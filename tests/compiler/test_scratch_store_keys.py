"""The disk key of `PersistentScratchCache` holds what the schedule reads of a kernel's name.

A patch stage's patch count is in its name only (`compiler.codegen.patches.PATCH_KERNEL`),
so two patch stages of equal structure and different counts must not share a scratch size
in the file, as they do not in memory (`compiler.workspace.ScratchCache`).
"""

from __future__ import annotations

from tvm import te

from compiler.scratch_store import PersistentScratchCache


def _func():
    a = te.placeholder((4, 8), "int8", name="a")
    b = te.compute((4, 8), lambda i, j: a[i, j] + a[i, j], name="b")
    return te.create_prim_func([a, b])


def test_patch_count_fused_flag_and_plain_kernels_key_apart():
    key, func, target = PersistentScratchCache._disk_key, _func(), {"kind": "c"}
    names = ["patch0_n2_head", "patch0_n3_head", "irb0_k3s1e96", "fused_add"]
    keys = [key(func, name, True, target) for name in names]
    assert len(set(keys)) == len(names)
    assert key(func, "fused_add", True, target) == key(func, "fused_multiply", True, target)
