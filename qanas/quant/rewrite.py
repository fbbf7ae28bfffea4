"""`fast_rewrites`: Brevitas's graph rewriting, same result, without its quadratic bookkeeping.

`brevitas.graph.quantize.quantize` replaces each module through helpers that
re-scan the whole model: `name_from_module` walks `named_modules()` to find the
name of the module it replaces, `ModuleToModuleByInstance` walks it again to
find the instance, and every rewriter regenerates the GraphModule's Python code
(`recompile`) and re-validates the graph (`lint`). For a subnet with ~100
quantized layers that bookkeeping was about half of the quantization time.

Inside `fast_rewrites()` the same rewriters run in the same order with the same
arguments; only the bookkeeping changes:

* module names come from a cache built from one `named_modules()` walk, checked
  on every lookup (`get_submodule(name) is module`) and rebuilt on a miss, and
  kept current by `set_module`;
* `recompile` and `lint` are deferred: rewriters only edit `graph.nodes`, and
  each GraphModule touched is recompiled and linted once on exit.

The exported ONNX of a subnet is the same op sequence with the same quantization
parameters with or without it (`tests/qanas/quant/test_quant_brevitas.py` checks this).

Subnet scoring no longer builds Brevitas models (`qanas.quant.quant_graph`); what still
calls `quantize_model` per subnet (the QDQ export, latency-table measurement, QAT, the
"brevitas" scoring engine) spends about half the time without these patches (measured
1.6-2.0 vs 3.3 CPU-s per squeezenas-small subnet), so they stay.
"""

from __future__ import annotations

import contextlib

__all__ = ["fast_rewrites"]

_ACTIVE = [False]  # the patches are process-wide: an inner `fast_rewrites` is a no-op


class _NameCache:
    """`module -> qualified name` for the models being rewritten, verified on use."""

    def __init__(self):
        self.names: dict[int, dict[int, str]] = {}

    def _build(self, model) -> dict[int, str]:
        names: dict[int, str] = {}
        for name, module in model.named_modules():
            names.setdefault(id(module), name)
        self.names[id(model)] = names
        return names

    def lookup(self, model, module) -> str | None:
        names = self.names.get(id(model))
        if names is None:
            names = self._build(model)
        name = names.get(id(module))
        if name is not None and _resolve(model, name) is module:
            return name
        name = self._build(model).get(id(module))  # stale or new: one full walk, as Brevitas does
        return name

    def assign(self, model, module, name: str) -> None:
        names = self.names.get(id(model))
        if names is not None:
            names[id(module)] = name


def _resolve(model, name: str):
    if name == "":
        return model
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


@contextlib.contextmanager
def fast_rewrites():
    """Runs Brevitas graph rewrites with cached module names and one deferred recompile.

    The patches are process-wide: do not run other fx work in another thread meanwhile.
    Nested use is fine.
    """
    import brevitas.graph.base as gbase
    import brevitas.graph.utils as gutils
    from brevitas.backport.fx.graph import Graph as BackportGraph
    from brevitas.backport.fx.graph_module import GraphModule as BackportGraphModule
    from torch.fx import Graph as TorchGraph
    from torch.fx import GraphModule as TorchGraphModule

    if _ACTIVE[0]:  # nested: the outer context already patched
        yield
        return
    _ACTIVE[0] = True
    cache = _NameCache()
    dirty: dict[int, object] = {}
    linted: dict[int, object] = {}
    saved = {
        (gutils, "name_from_module"): gutils.name_from_module,
        (gutils, "set_module"): gutils.set_module,
        (gbase.ModuleToModuleByInstance, "apply"): gbase.ModuleToModuleByInstance.apply,
    }
    for cls in {BackportGraphModule, TorchGraphModule}:
        saved[(cls, "recompile")] = cls.__dict__["recompile"]
    for cls in {BackportGraph, TorchGraph}:
        saved[(cls, "lint")] = cls.__dict__["lint"]
    original_set_module = gutils.set_module
    original_replace_module = gutils.replace_module

    def name_from_module(model, module):
        return cache.lookup(model, module)

    def set_module(model, module, name):
        original_set_module(model, module, name)
        cache.assign(model, module, name)

    def by_instance_apply(self, model):
        old = self.old_module_instance
        name = cache.lookup(model, old)
        if name is not None:
            new_module = self.init_new_module(old, name)
            original_replace_module(model, old, new_module)
        return model

    def deferred_recompile(self):
        dirty[id(self)] = self

    def deferred_lint(self):
        linted[id(self)] = self

    gutils.name_from_module = name_from_module
    gutils.set_module = set_module
    gbase.ModuleToModuleByInstance.apply = by_instance_apply
    for cls in {BackportGraphModule, TorchGraphModule}:
        cls.recompile = deferred_recompile
    for cls in {BackportGraph, TorchGraph}:
        cls.lint = deferred_lint
    try:
        yield
    finally:
        for (owner, attr), value in saved.items():
            setattr(owner, attr, value)
        _ACTIVE[0] = False
    # Outside the patches: the real recompile and lint, once per object touched.
    for graph_module in dirty.values():
        graph_module.recompile()
    for graph in linted.values():
        graph.lint()
