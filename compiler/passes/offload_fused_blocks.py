"""Fused inverted residuals → calls of the kernel library's ``qanas_inverted_residual_s8``.

In ``--optimise size``, and in ``speed`` when the library is on (`compiler.techniques`),
`compiler.passes.fuse_inverted_residual` groups each inverted residual into one Relax
function (``irb<i>_<label>``: expand 1×1 → depthwise k×k → project 1×1 (+ residual
add), the lowering's own bindings, its constants lifted to parameters).
`OffloadKernels` (`compiler.passes.offload_kernels`) asks `fused_block_call` about every
binding of ``main``; for a call of such a function it reads the block's integers back
from the grouped bindings (the call's constants bound to the parameters) with the same
group matchers it uses for single convolutions, packs them with
`compiler.kernels.irb.pack_inverted_residual` for the target's ``kernel_isa`` and returns
the library call. An expand or project conv whose weight is one of the source's INT4
initializers (the rule of `OffloadKernels.int4_conv`, as for an unfused conv) is packed
two weights per byte and runs on the int4 convolutions inside the block; the depthwise
stays int8. The block then runs as one ``call_extern`` like every other library op
(NHWC, transposes only at the edges of library runs), its scratch
(`compiler.kernels.irb.scratch_bytes`: the ring of expanded rows) planned in the arena
for both compiling and plan-only (`compiler.kernels.calls.library_scratch_bytes`).

The biases the graph holds already have each stage's input zero point folded in (the
convs read raw int8 and the padding is the zero point); they are unfolded with the same
zero point `pack_inverted_residual` folds back in, so the packed bias equals the graph's
offset exactly.

A block the kernel cannot take (a stage that is not a plain requantized conv, padding
with a value other than E's zero point, a subtraction, a kernel over 16, zero points
that disagree, constants beyond int32) stays the TVM row-band kernel: never a wrong
result, only a slower one.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from compiler.block_memo import active_block_memo
from compiler.kernels import irb, packing
from compiler.kernels.calls import LibraryCall
from compiler.passes._common import const_value, shape_of
from compiler.passes.fuse_inverted_residual import FUSED_PREFIX, FUSION_ATTR

FUNCTION = "qanas_inverted_residual_s8"
"""The library function a fused block becomes."""


def fused_block_call(groups, final):
    """The library call computing `final` when it is bound to a fused inverted residual.

    Args:
        groups: `OffloadKernels`' ``_Groups`` over ``main`` (its module and ``isa``; its
            class matches the grouped function's bindings).
        final: a variable of ``main``.

    Returns:
        ``(LibraryCall, block input var, constants, NHWC output shape)``, or None when
        `final` is not a fused block or the kernel cannot take it.
    """
    value = groups.value(final)
    if (not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.GlobalVar)
            or not value.op.name_hint.startswith(FUSED_PREFIX)):
        return None
    func = groups.mod[value.op]
    if not isinstance(func, relax.Function) or func.attrs is None or \
            FUSION_ATTR not in func.attrs:
        return None
    consts = value.args[1:]
    if len(consts) != len(func.params) - 1 or not all(
            isinstance(c, tvm.ir.GenericConst) for c in consts):
        return None
    memo = active_block_memo()
    path = (groups.isa, groups.int4_weights)  # the weights' layout and width
    answer = memo.get(func, consts, groups.mod, path) if memo is not None else None
    if answer is None:
        answer = _packed_call(groups, func, consts)
        if memo is not None:
            memo.put(func, consts, groups.mod, path, answer)
    if not answer:
        return None
    call, constants, out_shape = answer
    return call, value.args[0], list(constants), out_shape


def _packed_call(groups, func, consts) -> tuple:
    """``(LibraryCall, packed constants, NHWC output shape)`` of the fused block `func`
    called with `consts`, or ``()`` when the kernel cannot take it."""
    bound = func.bind_params(dict(zip(func.params[1:], consts, strict=True)))
    inner = type(groups)(bound, groups.mod, groups.isa, groups.int4_weights)
    try:
        packed = _pack(inner, bound.params[0], bound.body.body, groups.isa)
    except (ValueError, _Refused):
        return ()
    g = packed.geometry
    # int4 rows travel as int8 bytes, as an unfused int4 conv's do
    constants = tuple(a.view(np.int8) if a.dtype == np.uint8 else a
                      for a in packed.arrays().values())
    return (_library_call(packed, groups.isa), constants,
            (1, g.out_h, g.out_w, g.out_c))


class _Refused(Exception):
    """A part of the block the fused kernel does not take."""


def _need(condition: bool) -> None:
    if not condition:
        raise _Refused


def _stage(inner, out):
    """A requantized conv ending at `out`: (input var, weights, offset, attrs, Requant)."""
    tail = inner.tail(out)
    _need(tail is not None)
    got = inner.requantized_acc(tail)
    _need(got is not None)
    acc, m = got
    members = set(tail.members)
    offset = None
    add = inner.op(acc, "relax.add", members)
    if add is not None:
        offset, acc = const_value(add.args[1]), add.args[0]
        _need(offset is not None)
    conv = inner.conv_of(acc, members)
    _need(conv is not None and inner.private(members, out))
    x, w_expr, attrs = conv
    w = const_value(w_expr)
    _need(w is not None and w.dtype == np.int8 and isinstance(x, relax.Var))
    c_out = w.shape[0]
    bias = np.zeros(c_out, np.int64) if offset is None else offset.astype(np.int64).reshape(-1)
    _need(bias.size in (1, c_out))
    rq = inner.per_channel(m, tail.n, c_out)
    _need(rq is not None)
    requant = packing.Requant(rq[0], rq[1], tail.zero_point, tail.qmin, tail.qmax)
    return x, w, np.broadcast_to(bias, (c_out,)).copy(), attrs, requant


def _pointwise(attrs, w) -> bool:
    return (w.shape[2:] == (1, 1) and list(attrs["strides"]) == [1, 1]
            and not any(attrs["padding"]) and list(attrs["dilation"]) == [1, 1])


def _unfolded(w: np.ndarray, offset: np.ndarray, zero_point: int) -> np.ndarray:
    """The bias before folding ``−zp · Σ w`` (packing folds the same zp back in)."""
    bias = offset + int(zero_point) * w.reshape(w.shape[0], -1).astype(np.int64).sum(axis=1)
    _need(bool(np.all(np.abs(bias) < 2**31)))
    return bias.astype(np.int32)


def _residual(inner, out, x):
    """The residual add ending at `out`: (AddParams with a = R and b = P, the rescale of X
    or None, X's zero point or None, P var); None for a block without one."""
    tail = inner.tail(out)
    _need(tail is not None)
    prod = inner.value(tail.prod)
    if not (isinstance(prod, relax.Call) and isinstance(prod.op, tvm.ir.Op)
            and prod.op.name in ("relax.add", "relax.subtract")):
        return None
    found = inner.match_add(out, tail)
    _need(found is not None and inner.private(found.members, out))
    p = dict(found.call.params["add"])
    _need(found.call.params["b_channels"] == 0 and not p["subtract"])
    a, b = found.inputs
    if not (a.same_as(x) or _rescale(inner, a, x) is not None):
        a, b = b, a  # an add commutes: a = R, b = P
        p["a_zero_point"], p["b_zero_point"] = p["b_zero_point"], p["a_zero_point"]
        p["a_multiplier"], p["b_multiplier"] = p["b_multiplier"], p["a_multiplier"]
    add = packing.AddParams(p["a_zero_point"], p["b_zero_point"], p["a_multiplier"],
                            p["b_multiplier"], p["right_shift"], False,
                            p["output_zero_point"], p["qmin"], p["qmax"])
    if a.same_as(x):
        return add, None, add.a_zero_point, b
    rescaled = _rescale(inner, a, x)
    _need(rescaled is not None)
    return add, rescaled[0], rescaled[1], b


def _rescale(inner, r, x):
    """R = requant(X − zp_X): (Requant of one multiplier, zp_X), else None."""
    tail = inner.tail(r)
    got = inner.requantized_acc(tail) if tail is not None else None
    if got is None:
        return None
    acc, m = got
    members = set(tail.members)
    minus = inner.minus_zp(acc, "int32", members)
    if (minus is None or not minus[0].same_as(x) or not inner.private(members, r)
            or m.size != 1 or tail.n.size != 1):
        return None
    rq = inner.per_channel(m, tail.n, 1)
    return packing.Requant(rq[0], rq[1], tail.zero_point, tail.qmin, tail.qmax), minus[1]


def _pack(inner, x, out, isa: str) -> irb.PackedIRB:
    """The block of the grouped function (input `x`, result `out`) packed.

    Raises:
        _Refused: a part the fused kernel does not take.
    """
    zero_points = []  # X's zero point wherever the block reads it
    add = rescale = None
    proj_out = out
    residual = _residual(inner, out, x)
    if residual is not None:
        add, rescale, zp, proj_out = residual
        zero_points.append(zp)
    d, w_p, b_p, a_p, rq_p = _stage(inner, proj_out)
    _need(_pointwise(a_p, w_p))
    e, w_d, b_d, a_d, rq_d = _stage(inner, d)
    c, k = w_d.shape[0], w_d.shape[2]
    _need(w_d.shape == (c, 1, k, k) and a_d["groups"] == c == shape_of(e)[1]
          and len(set(a_d["strides"])) == 1 and len(set(a_d["dilation"])) == 1)
    has_expand = not e.same_as(x)
    if has_expand:
        xi, w_e, b_e, a_e, rq_e = _stage(inner, e)
        _need(xi.same_as(x) and _pointwise(a_e, w_e))
    pad = [int(v) for v in a_d["padding"]]
    if any(pad):
        if has_expand:
            _need(int(a_d["pad_value"]) == rq_e.zero_point)
        else:
            zero_points.append(int(a_d["pad_value"]))
    _need(len(set(zero_points)) <= 1)
    zp_x = zero_points[0] if zero_points else 0
    zp_e = rq_e.zero_point if has_expand else zp_x
    _, c_in, h, w = shape_of(x)
    expand = (irb.Stage(w_e, _unfolded(w_e, b_e, zp_x), rq_e, int(a_e["groups"]),
                        inner.int4_conv(w_e, int(a_e["groups"]), c_in))
              if has_expand else None)
    _, c_out, ho, wo = shape_of(out)
    geometry = irb.IRBGeometry(
        in_h=h, in_w=w, in_c=c_in, expanded_c=c, out_h=ho, out_w=wo, out_c=c_out, kernel=k,
        stride=int(a_d["strides"][0]), dilation=int(a_d["dilation"][0]), pad_top=pad[0],
        pad_left=pad[1], residual=add is not None)
    depthwise = irb.Stage(w_d, _unfolded(w_d, b_d, zp_e), rq_d)
    project = irb.Stage(w_p, _unfolded(w_p, b_p, rq_d.zero_point), rq_p, int(a_p["groups"]),
                        inner.int4_conv(w_p, int(a_p["groups"]), c))
    return irb.pack_inverted_residual(geometry, zp_x, expand, depthwise, project, add,
                                      rescale, isa)


def _requant_params(rq: packing.Requant | None) -> dict:
    if rq is None:
        return {"output_zero_point": 0, "qmin": -128, "qmax": 127}
    return {"output_zero_point": rq.zero_point, "qmin": rq.qmin, "qmax": rq.qmax}


def _library_call(packed: irb.PackedIRB, isa: str) -> LibraryCall:
    """The tag of the call: the ``qanas_irb_step_t`` fields (``qanas/kernel_steps.h``)."""
    g, a = packed.geometry, packed.add
    add = ({"a_zero_point": 0, "b_zero_point": 0, "a_multiplier": 0, "b_multiplier": 0,
            "right_shift": 1, "subtract": 0, "output_zero_point": 0, "qmin": -128,
            "qmax": 127} if a is None else
           {"a_zero_point": a.a_zero_point, "b_zero_point": a.b_zero_point,
            "a_multiplier": a.a_multiplier, "b_multiplier": a.b_multiplier,
            "right_shift": a.right_shift, "subtract": int(a.subtract),
            "output_zero_point": a.output_zero_point, "qmin": a.qmin, "qmax": a.qmax})
    params = {
        "irb": {"in_h": g.in_h, "in_w": g.in_w, "in_c": g.in_c, "expanded_c": g.expanded_c,
                "out_h": g.out_h, "out_w": g.out_w, "out_c": g.out_c, "kernel": g.kernel,
                "stride": g.stride, "dilation": g.dilation, "pad_top": g.pad_top,
                "pad_left": g.pad_left, "input_zero_point": packed.input_zero_point,
                "expand_groups": packed.expand_groups,
                "expand_rq": _requant_params(packed.expand_rq),
                "depthwise_rq": _requant_params(packed.depthwise_rq),
                "project_groups": packed.project_groups,
                "project_rq": _requant_params(packed.project_rq),
                "residual": int(g.residual),
                "residual_rescale": int(packed.residual_rescale is not None),
                "residual_rq": _requant_params(packed.residual_rescale), "add": add},
        "has_expand": int(packed.expand is not None),
        "weights_mve": int(isa == "mve"),
        "scratch_bytes": packed.scratch_bytes,
        "expand_s4": int("expand" in packed.int4_stages),
        "project_s4": int("project" in packed.int4_stages),
    }
    return LibraryCall(FUNCTION, params)
