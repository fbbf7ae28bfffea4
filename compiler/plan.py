"""The AOT execution plan: the ordered kernel calls of a lowered Relax `main`, over buffers.

After legalization and fusion (`relax.get_pipeline("zero")`), `main` is one dataflow
block of ``R.call_tir(kernel, (args...), out_ty=...)`` bindings. `build_plan` reads it
into an `ExecutionPlan`: one `KernelCall` per ``call_tir`` in program order, and one
`BufferInfo` per tensor the calls touch, classified as

- ``input``: a parameter of `main` (lives in the arena from step 0),
- ``output``: a tensor `main` returns (lives in the arena until the last step),
- ``constant``: a bound weight (a ``const`` array in flash, never in the arena),
- ``intermediate``: produced by one call and read by later ones (arena),
- ``workspace``: a kernel's own scratch, ``TVMBackendAllocWorkspace`` (arena, live at
  its step only); added by `ExecutionPlan.with_workspaces` once the kernels are built.

Buffer names are C identifiers; the emitter uses them verbatim. The model's own input and
output names are made ASCII identifiers by `unique_identifiers` (deterministic and
collision-free); the original text only reaches the C as escaped string literals.
Constants are named by role (`compiler.roles`: ``conv0_weights``, ``block1_dw_weights``);
intermediates keep ``k<step>_out`` here (the memory planners break ties by name) and get
their role names in the emitted C only (`compiler.project.model_c`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from compiler.errors import CompilerError, UnsupportedOpError
from compiler.memory.buffer import DEFAULT_ALIGNMENT, BufferLifetime
from compiler.roles import role_names

KINDS = ("input", "output", "constant", "intermediate", "workspace")
ARENA_KINDS = ("input", "output", "intermediate", "workspace")


MAX_IDENTIFIER = 48
"""Characters of a model name kept in its C identifier (before a ``_<n>`` clash suffix)."""

_INTERNAL_NAME = re.compile(r"const_\d+|k\d+_out\d*|workspace_\d+|output_\d+")
"""The plan's own buffer names; a model name that sanitizes to one of them gets ``t_``."""


def c_identifier(name: str) -> str:
    """`name` made into an ASCII C identifier.

    Every character outside ``[A-Za-z0-9_]`` (punctuation, spaces, newlines, non-ASCII)
    becomes ``_``, the result is cut to `MAX_IDENTIFIER` characters, and an empty name or
    one starting with a digit gets the prefix ``t_``. No model text survives that could
    end a comment, start a directive or form a trigraph.
    """
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)[:MAX_IDENTIFIER]
    return ident if ident and not ident[0].isdigit() else f"t_{ident}"


def unique_identifiers(names: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """One distinct C identifier per name, in order (deterministic).

    Each name goes through `c_identifier`; one that equals a buffer name the plan makes
    itself (``const_<n>``, ``k<step>_out``, ``workspace_<step>``, ``output_<i>``) gets the
    prefix ``t_``; one that clashes with an earlier name or with `taken` gets the first
    free suffix ``_2``, ``_3``...

    Example:
        >>> unique_identifiers(["x-in", "x_in", "const_0", "é"])
        ['x_in', 'x_in_2', 't_const_0', '_']
    """
    used = set(taken)
    out = []
    for name in names:
        base = c_identifier(name)
        if _INTERNAL_NAME.fullmatch(base):
            base = f"t_{base}"
        ident, n = base, 2
        while ident in used:
            ident, n = f"{base}_{n}", n + 1
        used.add(ident)
        out.append(ident)
    return out


@dataclass(frozen=True)
class BufferInfo:
    """One tensor of the plan.

    Attributes:
        name: unique C identifier.
        shape: static shape.
        dtype: numpy-style dtype name ("int8", "float32").
        kind: one of `KINDS`.
        size: bytes (product of shape times the element size; workspace: scratch bytes).
        first: step of the call that writes it (0 for inputs and constants; constants
            live over every step).
        last: step of the last call that reads it (the final step for outputs).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    size: int
    first: int
    last: int

    def to_dict(self) -> dict:
        """JSON-friendly form (plan.json)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "kind": self.kind, "size": self.size, "first": self.first, "last": self.last}


@dataclass(frozen=True)
class KernelCall:
    """One fused kernel call: ``kernel(*inputs, *outputs)`` in destination-passing style.

    Attributes:
        index: the step (position in the plan).
        kernel: name of the fused TIR PrimFunc (before any symbol prefix).
        inputs: buffer names read, in argument order.
        outputs: buffer names written, in argument order (after the inputs).
        workspace: name of its scratch buffer, or None when it needs none.
        library: the kernel library function the step runs (``qanas_conv2d_s8``;
            `compiler.kernels.calls`), or None for a TVM-generated kernel.
    """

    index: int
    kernel: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    workspace: str | None = None
    library: str | None = None

    @property
    def implementation(self) -> str:
        """What runs: the library function, else the TVM kernel's name (per-layer reports)."""
        return self.library or self.kernel

    @property
    def args(self) -> tuple[str, ...]:
        """All buffer arguments in calling order."""
        return self.inputs + self.outputs

    def to_dict(self) -> dict:
        """JSON-friendly form (plan.json)."""
        return {"index": self.index, "kernel": self.kernel, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "workspace": self.workspace,
                "library": self.library}


@dataclass(frozen=True)
class ExecutionPlan:
    """Ordered kernel calls over buffers; constants carry their values.

    Attributes:
        calls: the kernel calls, ``calls[i].index == i``.
        buffers: every buffer, keyed by name (insertion order: inputs, constants, then
            buffers in the order calls create them).
        inputs: names of the model inputs, in `main`'s parameter order.
        outputs: names of the model outputs, in `main`'s return order.
        constants: name → value of each constant buffer.
    """

    calls: tuple[KernelCall, ...]
    buffers: Mapping[str, BufferInfo]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    constants: Mapping[str, np.ndarray]

    @property
    def num_steps(self) -> int:
        """Number of kernel calls."""
        return len(self.calls)

    def arena_buffers(self) -> list[BufferInfo]:
        """Buffers placed in the arena (everything but constants)."""
        return [b for b in self.buffers.values() if b.kind in ARENA_KINDS]

    def lifetimes(self, alignment: int = DEFAULT_ALIGNMENT) -> list[BufferLifetime]:
        """The arena buffers as the memory planner's `BufferLifetime`s."""
        return [BufferLifetime(b.name, b.size, b.first, b.last, alignment)
                for b in self.arena_buffers()]

    def weights_bytes(self) -> int:
        """Bytes of all constants (what lands in flash)."""
        return sum(b.size for b in self.buffers.values() if b.kind == "constant")

    def with_workspaces(self, scratch: Mapping[int, int]) -> ExecutionPlan:
        """A copy with one workspace buffer per step of `scratch` (step → bytes, 0 = none)."""
        buffers = dict(self.buffers)
        calls = list(self.calls)
        for step, nbytes in sorted(scratch.items()):
            if not nbytes:
                continue
            name = f"workspace_{step}"
            buffers[name] = BufferInfo(name, (int(nbytes),), "uint8", "workspace",
                                       int(nbytes), step, step)
            calls[step] = replace(calls[step], workspace=name)
        return replace(self, calls=tuple(calls), buffers=buffers)

    def validate(self) -> None:
        """Checks the plan's invariants; raises `CompilerError` naming the first violation."""
        for i, call in enumerate(self.calls):
            if call.index != i:
                raise CompilerError(f"kernel call {call.kernel} has index {call.index}, expected {i}")
            for name in call.args:
                b = self.buffers.get(name)
                if b is None:
                    raise CompilerError(f"step {i} ({call.kernel}) uses unknown buffer {name!r}")
                if not b.first <= i <= b.last:
                    raise CompilerError(
                        f"buffer {name!r} is used at step {i} ({call.kernel}) but lives over "
                        f"[{b.first}, {b.last}]")
            for name in call.outputs:
                if self.buffers[name].first != i or self.buffers[name].kind in ("input", "constant"):
                    raise CompilerError(f"step {i} writes {name!r}, which it does not own")
        last = self.num_steps - 1
        for name in self.outputs:
            if self.buffers[name].last != last:
                raise CompilerError(f"output {name!r} must live until the last step {last}")

    def to_dict(self) -> dict:
        """JSON-friendly form written as plan.json (constants by name and size only)."""
        return {
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "calls": [c.to_dict() for c in self.calls],
            "buffers": [b.to_dict() for b in self.buffers.values()],
        }


def _shape_dtype(ty, what: str) -> tuple[tuple[int, ...], str]:
    try:
        shape = tuple(int(v) for v in ty.shape.values)
    except (AttributeError, TypeError) as exc:
        raise CompilerError(
            f"{what} has type {ty}, not a tensor of static shape; the AOT plan needs static "
            "shapes (fix the input shapes when exporting the model)") from exc
    return shape, str(ty.dtype)


def _nbytes(shape: Sequence[int], dtype: str) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def _name_constants(calls: Sequence[KernelCall], buffers: dict[str, BufferInfo],
                    constants: dict[str, np.ndarray], taken: Sequence[str]):
    """Renames the constants by role (`compiler.roles`: ``conv0_weights``, ``block1_dw_weights``);
    returns the calls, buffers and constants with the new names, in the same order."""
    new = role_names(calls, buffers, ("constant",), taken)

    def rename(names: Sequence[str]) -> tuple[str, ...]:
        return tuple(new.get(n, n) for n in names)

    calls = [replace(c, inputs=rename(c.inputs), outputs=rename(c.outputs)) for c in calls]
    buffers = {new.get(n, n): replace(b, name=new.get(n, n)) for n, b in buffers.items()}
    constants = {new[n]: v for n, v in constants.items()}
    return calls, buffers, constants


def build_plan(mod, output_names: Sequence[str] | None = None,
               input_names: Sequence[str] | None = None) -> ExecutionPlan:
    """Reads the AOT execution plan from a legalized and fused Relax module.

    Args:
        mod: IRModule whose `main` is a flat list of ``R.call_tir`` bindings.
        output_names: names for `main`'s outputs (e.g. the ONNX output names); they are
            made C identifiers. Default ``output_<i>``.
        input_names: names for `main`'s parameters; default their Relax names.

    Returns:
        The validated `ExecutionPlan`.

    Raises:
        UnsupportedOpError: `main` still holds an operator that has no TIR kernel.
        CompilerError: dynamic shapes, or a structure the AOT plan does not model.

    Example:
        >>> plan = build_plan(relax.get_pipeline("zero")(mod), ["y"])  # doctest: +SKIP
        >>> [c.kernel for c in plan.calls]  # doctest: +SKIP
        ['fused_conv2d_add_relu']
    """
    from tvm import relax
    from tvm.ir import Op
    from tvm.ir.expr import GenericConst

    from compiler.kernels.calls import library_call

    call_tir = Op.get("relax.call_tir")
    main = mod["main"]
    buffers: dict[str, BufferInfo] = {}
    constants: dict[str, np.ndarray] = {}
    const_by_digest: dict[tuple, str] = {}
    var_buffers: dict[int, tuple[str, ...]] = {}  # Relax var → buffer name(s)

    def key(var) -> int:
        return hash(var)  # TVM objects hash by identity

    inputs = []
    in_idents = unique_identifiers(input_names if input_names else
                                   [p.name for p in main.params])
    for i, param in enumerate(main.params):
        name = in_idents[i]
        shape, dtype = _shape_dtype(param.ty, f"input {param.name}")
        buffers[name] = BufferInfo(name, shape, dtype, "input", _nbytes(shape, dtype), 0, 0)
        var_buffers[key(param)] = (name,)
        inputs.append(name)

    def constant(expr) -> str:
        value = expr.value.numpy()
        digest = (value.dtype.str, value.shape, value.tobytes())
        if digest not in const_by_digest:
            name = f"const_{len(const_by_digest)}"
            const_by_digest[digest] = name
            constants[name] = value
            buffers[name] = BufferInfo(name, tuple(value.shape), str(value.dtype), "constant",
                                       int(value.nbytes), 0, 0)
        return const_by_digest[digest]

    def resolve(expr, step: int) -> tuple[str, ...]:
        if isinstance(expr, relax.Var) and key(expr) in var_buffers:
            return var_buffers[key(expr)]
        if isinstance(expr, GenericConst):
            return (constant(expr),)
        if isinstance(expr, relax.Tuple):
            return tuple(n for f in expr.fields for n in resolve(f, step))
        if isinstance(expr, relax.TupleGetItem):
            return (resolve(expr.tuple_value, step)[expr.index],)
        raise CompilerError(f"step {step}: cannot place argument {expr} of type "
                            f"{type(expr).__name__} in the AOT plan")

    def touch(names: Sequence[str], step: int) -> None:
        for n in names:
            b = buffers[n]
            if b.kind != "constant":
                buffers[n] = replace(b, last=max(b.last, step))

    calls: list[KernelCall] = []
    body = main.body
    for block in body.blocks:
        for binding in block.bindings:
            value = binding.value
            step = len(calls)
            if isinstance(value, relax.Call) and value.op.same_as(call_tir):
                if len(value.args) > 2:
                    raise CompilerError(f"kernel {value.args[0].name_hint} takes symbolic shape "
                                        "arguments; the AOT plan needs static shapes")
                kernel = value.args[0].name_hint
                ins = resolve(value.args[1], step)
                touch(ins, step)
                out_types = value.ty_args[0]
                out_list = list(out_types.fields) if hasattr(out_types, "fields") else [out_types]
                outs = []
                for j, ty in enumerate(out_list):
                    name = f"k{step}_out" if len(out_list) == 1 else f"k{step}_out{j}"
                    shape, dtype = _shape_dtype(ty, f"output {j} of {kernel}")
                    buffers[name] = BufferInfo(name, shape, dtype, "intermediate",
                                               _nbytes(shape, dtype), step, step)
                    outs.append(name)
                var_buffers[key(binding.var)] = tuple(outs)
                library = library_call(mod[value.args[0]])
                calls.append(KernelCall(step, kernel, tuple(ins), tuple(outs),
                                        library=library.function if library else None))
            elif isinstance(value, (relax.Tuple, relax.TupleGetItem, relax.Var)):
                var_buffers[key(binding.var)] = resolve(value, step)
            elif isinstance(value, relax.Call):
                raise UnsupportedOpError(
                    f"operator {value.op} has no TIR kernel after legalization (binding "
                    f"{binding.var.name}); it cannot be compiled to C. Replace it in the model "
                    "or add a legalization for it")
            else:
                raise CompilerError(f"binding {binding.var.name} = {type(value).__name__} is "
                                    "not a kernel call; the AOT plan cannot express it")
    if not calls:
        raise CompilerError("main has no kernel calls; there is nothing to compile")

    result = resolve(body.body, len(calls))
    if output_names is not None and len(output_names) != len(result):
        raise CompilerError(f"main returns {len(result)} tensors but {len(output_names)} "
                            f"output names were given: {list(output_names)}")
    last = len(calls) - 1
    outputs = []
    out_idents = (unique_identifiers(output_names, taken=in_idents) if output_names
                  else [f"output_{i}" for i in range(len(result))])
    for i, produced in enumerate(result):
        b = buffers[produced]
        if b.kind != "intermediate":
            raise CompilerError(f"output {i} is the model {b.kind} {produced!r} itself; "
                                "outputs must be computed by a kernel")
        name = out_idents[i]
        out = replace(b, name=name, kind="output", last=last)
        del buffers[produced]
        buffers[name] = out
        calls = [replace(c, inputs=tuple(name if n == produced else n for n in c.inputs),
                         outputs=tuple(name if n == produced else n for n in c.outputs))
                 for c in calls]
        outputs.append(name)
    for name, b in buffers.items():
        if b.kind == "constant":  # weights are in flash for the whole run
            buffers[name] = replace(b, first=0, last=last)
    calls, buffers, constants = _name_constants(calls, buffers, constants,
                                                taken=[*inputs, *outputs])
    plan = ExecutionPlan(tuple(calls), buffers, tuple(inputs), tuple(outputs), constants)
    plan.validate()
    return plan
