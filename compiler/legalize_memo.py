"""Relax operator legalization remembered across modules (the plan-only mode's LegalizeOps).

``relax.transform.LegalizeOps`` turns each operator call into a ``call_tir`` of a TE-built
PrimFunc; building the TE and its PrimFunc costs about a millisecond per call, and a
search plans hundreds of subnets whose calls (the same layer, the same shapes, the same
constants) recur. `LegalizeMemo.legalize` is the same pass with every registered
``FLegalize`` wrapped: a call structurally equal to one met before
(``tvm_ffi.structural_equal`` with free variables mapped: operator, attributes, argument
types, constant values) is answered by adding the remembered PrimFunc under the
remembered name and calling it on this call's arguments.

Why the answer is the one the operator's own legalization would give: ``FLegalize`` is a
function of the call alone (its operator, attributes, argument types and constant
values; the current TVM target is part of the key too), and the builder's ``add_func``
deduplicates structurally equal PrimFuncs, so adding the remembered PrimFunc under the
remembered name hint binds the same global as the call's own legalization would. Only
results of one shape are remembered: a single ``call_tir`` of the one PrimFunc the
legalization added, on the call's own arguments or constants; anything else (bindings
emitted on the side, several functions, symbolic TIR arguments) is legalized every time.
The PrimFunc's buffer and parameter names are those of the first call met (names are not
part of structural equality and change no size), so the memo serves the plan-only mode,
not the C generator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Entry:
    call: object          # the call first legalized (the structural template)
    func: object          # the PrimFunc its legalization added
    name_hint: str        # the name it was added under
    op: object            # the result's operator (relax.call_tir)
    attrs: object
    ty_args: object
    items: tuple          # per call_tir argument: ("arg", leaf index) or ("const", value)


def _leaves(args) -> list:
    """The call's arguments, tuples flattened, in order."""
    from tvm import relax

    out = []
    for a in args:
        if isinstance(a, relax.Tuple):
            out.extend(_leaves(a.fields))
        else:
            out.append(a)
    return out


class LegalizeMemo:
    """Legalized calls remembered by structure, for `legalize` (see the module docstring).

    Args:
        max_entries: calls remembered; the oldest are dropped beyond it.

    Attributes:
        hits, misses: calls answered from memory, and legalized.
    """

    def __init__(self, max_entries: int = 16384):
        self.max_entries = max_entries
        self._entries: dict[tuple, list[_Entry]] = {}
        self._count = 0
        self.hits = self.misses = 0
        self._wrapped: dict[str, object] | None = None
        self._builder = None  # the builder of the pass running now, and the globals
        self._globals: dict[int, tuple] = {}  # its add_func gave each entry's PrimFunc

    def legalize(self):
        """``relax.transform.LegalizeOps()`` with every registered legalization memoised."""
        from tvm import relax

        if self._wrapped is None:
            import tvm

            self._wrapped = {}
            for name in tvm.ir.Op.list_op_names():
                legalize = tvm.ir.Op.get(name).get_attr("FLegalize")
                if legalize is not None:
                    self._wrapped[str(name)] = self._memoised(str(name), legalize)
        return relax.transform.LegalizeOps(customize_legalize_map=self._wrapped)

    def _memoised(self, name: str, legalize):
        def memoised(bb, call):
            key = self._key(name, call)
            for entry in self._entries.get(key, ()):
                if _equal(entry.call, call):
                    self.hits += 1
                    return _replay(entry, call, self._global(bb, entry))
            self.misses += 1
            added, result = _recorded(legalize, bb, call)
            entry = _entry(call, added, result)
            if entry is not None:
                self._remember(key, entry)
            return result
        return memoised

    def _global(self, bb, entry: _Entry):
        """The global `bb.add_func` binds `entry`'s PrimFunc to (asked once per builder:
        it deduplicates structurally equal functions, so a second call returns the same)."""
        if self._builder is None or not self._builder.same_as(bb):
            self._builder, self._globals = bb, {}
        known = self._globals.get(id(entry))
        if known is None or known[0] is not entry:
            known = self._globals[id(entry)] = (entry, bb.add_func(entry.func, entry.name_hint))
        return known[1]

    @staticmethod
    def _key(name: str, call) -> tuple:
        import tvm
        import tvm_ffi

        target = tvm.target.Target.current(allow_none=True)
        return (name, tvm_ffi.structural_hash(call, map_free_vars=True),
                str(target) if target is not None else None)

    def _remember(self, key: tuple, entry: _Entry) -> None:
        if self._count >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
            self._count = sum(len(v) for v in self._entries.values())
        self._entries.setdefault(key, []).append(entry)
        self._count += 1


def _equal(a, b) -> bool:
    import tvm_ffi

    return tvm_ffi.structural_equal(a, b, map_free_vars=True)


def _recorded(legalize, bb, call):
    """(the (function, name hint, global) triples `legalize` added, its result)."""
    from tvm import relax

    added = []
    add_func = relax.BlockBuilder.add_func

    def recording(self, func, func_name):
        gvar = add_func(self, func, func_name)
        added.append((func, func_name, gvar))
        return gvar

    relax.BlockBuilder.add_func = recording
    try:
        result = legalize(bb, call)
    finally:
        relax.BlockBuilder.add_func = add_func
    return added, result


def _entry(call, added, result) -> _Entry | None:
    """The memo entry of a legalization of the remembered shape, else None."""
    import tvm
    from tvm import relax

    if (len(added) != 1 or not isinstance(result, relax.Call)
            or not isinstance(result.op, tvm.ir.Op) or result.op.name != "relax.call_tir"
            or len(result.args) != 2 or not result.args[0].same_as(added[0][2])
            or not isinstance(result.args[1], relax.Tuple)):
        return None
    leaves = _leaves(call.args)
    items = []
    for item in result.args[1].fields:
        index = next((i for i, leaf in enumerate(leaves) if leaf.same_as(item)), None)
        if index is not None:
            items.append(("arg", index))
        elif isinstance(item, tvm.ir.GenericConst):
            items.append(("const", item))
        else:
            return None  # a value the legalization emitted on the side
    func, name_hint, _ = added[0]
    return _Entry(call, func, str(name_hint), result.op, result.attrs, result.ty_args,
                  tuple(items))


def _replay(entry: _Entry, call, gvar):
    """`entry`'s call_tir of `gvar` (its PrimFunc) on the arguments of `call`."""
    from tvm import relax

    leaves = _leaves(call.args)
    items = [leaves[v] if kind == "arg" else v for kind, v in entry.items]
    return relax.Call(entry.op, [gvar, relax.Tuple(items)], entry.attrs, entry.ty_args)
