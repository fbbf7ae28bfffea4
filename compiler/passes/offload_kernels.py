"""OffloadKernels: int8 groups of the integer-lowered graph → calls of the kernel library.

After `integer_lowering` every quantized conv, pool and element-wise op is a *group* of
Relax bindings ending in the requantization the lowering emits
(`QuantRewriter.requantize` / `round_shift_clamp`)::

    acc  = conv2d(x, w) [+ offset]                 (or pool sums, products, ...)
    prod = astype(acc, int64) * M                  (add: Ma·(a − za) ± Mb·(b − zb))
    y    = clip(((prod + 2^(n−1) − 1 + ((prod >> n) & 1)) >> n) + zp, qmin, qmax) → int8

The pass reads the integers of each group straight from its constants (``M``, ``n``, the
folded offset, the zero points), so the library computes with the very numbers the TVM
kernel would have: bit-exact by construction, whatever float expressions produced them.
A matched group becomes one ``R.call_tir`` of a PrimFunc whose body is the
``call_extern`` of the library function, tagged (`compiler.kernels.calls`), its weights
packed by `compiler.kernels.packing` for the target's `kernel_isa`:

* conv2d (pointwise, k×k, grouped, stems): ``qanas_pointwise_conv_s8`` /
  ``qanas_conv2d_s8``; with int4 weights (the source's INT4 initializers,
  `compiler.int4`) ``qanas_pointwise_conv_s4`` / ``qanas_conv2d_s4``, the weights packed
  two per byte by `compiler.kernels.packing_s4`; depthwise (stride, dilation, multiplier):
  ``qanas_depthwise_conv2d_s8``;
* average pooling (all-ones depthwise sums): ``qanas_avg_pool2d_s8``; global average
  pooling (``sum`` over H, W): ``qanas_global_avg_pool_s8``;
* add / sub / mul of two tensors (``b`` may be a per-channel vector):
  ``qanas_add_s8`` / ``qanas_mul_s8``;
* fused inverted residuals (`compiler.passes.offload_fused_blocks`) and patch stages that
  are chains of convolutions (`compiler.passes.offload_patch_stage`);
* int8 nearest / bilinear resize (`compiler.passes.offload_resize`): ``qanas_resize_s8``,
  writing NCHW when no library call reads its output.
* the integer softmax kernel (`compiler.passes.lower_softmax`, tagged with its
  parameters): ``qanas_softmax_s8``, on the tensor as it is (rows of the last axis).
* the int8 product of two activations (attention's ``Q·Kᵀ``, ``softmax·V``;
  `compiler.passes.offload_matmul`): ``qanas_matmul_s8``, batched over the heads.

The library is NHWC; the graph stays NCHW in meaning. Each call reads and writes NHWC
tensors, with ``permute_dims`` to and from NCHW around it, and a transpose that would undo
the one before it is never emitted: inside a run of library ops the tensors stay NHWC,
and transposes remain only where a TVM kernel (resize, concat, tables, max-pool, fused
inverted residuals) or the model's input or output meets a library op.

Anything else stays as it was (a TVM kernel): a group of another shape, a bias that does
not fit int32, multipliers beyond int32, a requantization shift outside the library's
range, a batch other than 1. The result is never wrong, only slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax, te, tirx
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.int4 import weight_digest
from compiler.kernels import packing, packing_s4
from compiler.kernels.calls import LIBRARY_ATTR, LibraryCall
from compiler.passes._common import const_value, dtype_of, is_op, prim_number, shape_of
from compiler.passes.fuse_inverted_residual import _vars_in as _vars
from compiler.passes.offload_fused_blocks import fused_block_call
from compiler.passes.offload_matmul import matmul_call
from compiler.passes.offload_patch_stage import patch_stage_call
from compiler.passes.offload_resize import FUNCTION as RESIZE_FUNCTION
from compiler.passes.offload_resize import nchw_output, resize_call
from compiler.passes.resize_kernels import kernel_tag
from compiler.te_memo import emit_te

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)

MIN_RIGHT_SHIFT, MAX_RIGHT_SHIFT = 1, 62
"""Right shifts ``n = 31 − shift`` the library's requantization takes (shift −31 .. 30)."""


@dataclass
class _Tail:
    """The requantization that ends a group."""

    prod: relax.Var
    n: np.ndarray
    zero_point: int
    qmin: int
    qmax: int
    members: set = field(default_factory=set)


@dataclass
class _Match:
    """One group to offload: the library call and the tensors it reads."""

    call: LibraryCall
    inputs: list              # activation Relax vars (NCHW), in argument order
    nhwc_inputs: list         # per input: transpose it to NHWC (else passed as it is)
    constants: list           # numpy arrays, in argument order after the inputs
    out_shape: tuple          # the call's output shape
    out_nhwc: bool            # the output is NHWC (transposed back to NCHW after the call)
    members: set


def _key(var) -> int:
    return hash(var)


class _Groups:
    """Bindings of ``main`` with their users, and the group matchers."""

    def __init__(self, func: relax.Function, mod: tvm.IRModule, isa: str,
                 int4_weights: frozenset = frozenset()):
        self.mod, self.isa, self.int4_weights = mod, isa, int4_weights
        self.binds: dict[int, relax.Expr] = {}
        self.users: dict[int, set] = {}
        for block in func.body.blocks:
            for b in block.bindings:
                if isinstance(b, relax.VarBinding):
                    self.binds[_key(b.var)] = b.value
                    for v in _vars(b.value):
                        self.users.setdefault(_key(v), set()).add(_key(b.var))
        for v in _vars(func.body.body):
            self.users.setdefault(_key(v), set()).add(None)

    # ---- helpers ------------------------------------------------------------------------
    def value(self, expr):
        return self.binds.get(_key(expr)) if isinstance(expr, relax.Var) else None

    def op(self, expr, name: str, members: set):
        """The call bound to `expr` when it is op `name` (and records it in `members`)."""
        v = self.value(expr)
        if is_op(v, name):
            members.add(_key(expr))
            return v
        return None

    def private(self, members: set, final) -> bool:
        """Every member but `final` is read only inside the group."""
        return all(self.users.get(k, set()) <= members for k in members - {_key(final)})

    def minus_scalar(self, expr, members: set):
        """``e [- c]`` with a scalar constant c → (e, c) (c = 0 without a subtraction), or
        None when the subtrahend is not a scalar constant."""
        sub = self.op(expr, "relax.subtract", members)
        if sub is None:
            return expr, 0
        c = const_value(sub.args[1])
        if c is None or c.size != 1:
            return None
        return sub.args[0], int(c.reshape(-1)[0])

    def minus_zp(self, expr, dtype: str, members: set):
        """``astype(x, dtype) [- zp]`` → (x, zp), else None."""
        got = self.minus_scalar(expr, members)
        if got is None:
            return None
        expr, zp = got
        cast = self.op(expr, "relax.astype", members)
        if cast is None or dtype_of(cast) != dtype:
            return None
        x = cast.args[0]
        if not isinstance(x, relax.Var) or dtype_of(x) != "int8":
            return None
        return x, zp

    # ---- the requantization tail ----------------------------------------------------------
    def tail(self, final) -> _Tail | None:
        """The requantization ending at `final` (an int8 var), or None."""
        if not isinstance(final.ty, relax.TensorType) or dtype_of(final) != "int8":
            return None
        m: set = set()
        cast = self.op(final, "relax.astype", m)
        clip = self.op(cast.args[0], "relax.clip", m) if cast is not None else None
        if clip is None:
            return None
        qmin, qmax = int(prim_number(clip.args[1])), int(prim_number(clip.args[2]))
        y, zp = clip.args[0], 0
        add = self.op(y, "relax.add", m)
        if add is not None:
            c = const_value(add.args[1])
            if c is None or c.size != 1:
                return None
            zp, y = int(c.reshape(-1)[0]), add.args[0]
        shifted = self.op(y, "relax.right_shift", m)
        if shifted is None or const_value(shifted.args[1]) is None:
            return None
        n = const_value(shifted.args[1]).astype(np.int64)
        total = self.op(shifted.args[0], "relax.add", m)
        if total is None:
            return None
        rounded = self.op(total.args[0], "relax.add", m)
        odd = self.op(total.args[1], "relax.bitwise_and", m)
        if rounded is None or odd is None:
            return None
        prod = rounded.args[0]
        half = const_value(rounded.args[1])
        inner = self.op(odd.args[0], "relax.right_shift", m)
        one = const_value(odd.args[1])
        if (half is None or inner is None or one is None or int(one.reshape(-1)[0]) != 1
                or one.size != 1 or not inner.args[0].same_as(prod)
                or const_value(inner.args[1]) is None
                or not np.array_equal(const_value(inner.args[1]), n)):
            return None
        if np.any(n < MIN_RIGHT_SHIFT) or np.any(n > MAX_RIGHT_SHIFT):
            return None
        if not np.array_equal(np.broadcast_to(half, np.broadcast_shapes(half.shape, n.shape)),
                              np.broadcast_to((np.int64(1) << (n - 1)) - 1,
                                              np.broadcast_shapes(half.shape, n.shape))):
            return None
        if not (-128 <= qmin <= qmax <= 127) or not -128 <= zp <= 127:
            return None
        return _Tail(prod, n, zp, qmin, qmax, m)

    def requantized_acc(self, tail: _Tail):
        """``astype(acc, int64) * M`` → (acc int32 var, M int64 array), else None."""
        mul = self.op(tail.prod, "relax.multiply", tail.members)
        if mul is None:
            return None
        m = const_value(mul.args[1])
        cast = self.op(mul.args[0], "relax.astype", tail.members)
        if m is None or cast is None or dtype_of(cast.args[0]) != "int32":
            return None
        if np.any(m < 0) or np.any(m >= 2**31):
            return None
        return cast.args[0], m.astype(np.int64)

    # ---- matchers -------------------------------------------------------------------------
    def match(self, final) -> _Match | None:
        """The library call that computes `final`, or None."""
        block = fused_block_call(self, final)  # a fused inverted residual (size mode)
        if block is not None:
            call, x, constants, out_shape = block
            return _Match(call, [x], [True], constants, out_shape, True, {_key(final)})
        stage = patch_stage_call(self, final)  # a patch stage (size mode): NCHW input
        if stage is not None:
            call, x, constants, out_shape = stage
            return _Match(call, [x], [False], constants, out_shape, True, {_key(final)})
        resize = resize_call(self, final)  # an int8 resize kernel
        if resize is not None:
            call, x, constants, out_shape = resize
            return _Match(call, [x], [True], constants, out_shape, True, {_key(final)})
        softmax = self.match_softmax(final)
        if softmax is not None:
            return softmax
        tail = self.tail(final)
        if tail is None:
            return None
        prod = self.value(tail.prod)
        if is_op(prod, "relax.add") or is_op(prod, "relax.subtract"):
            found = self.match_add(final, tail)
        else:
            found = self.match_requantized(final, tail)
        if found is None or not self.private(found.members, final):
            return None
        return found

    def match_softmax(self, final) -> _Match | None:
        """The integer softmax kernel (`compiler.passes.lower_softmax`): its tag holds the
        library's parameters; rows of the last axis, so no layout change."""
        v = self.value(final)
        tag = kernel_tag(self.mod, v)
        if tag is None or tag.get("op") != "softmax":
            return None
        params = {k: value for k, value in tag.items() if k != "op"}
        return _Match(LibraryCall("qanas_softmax_s8", {"softmax": params}),
                      [v.args[1].fields[0]], [False], [], shape_of(final), False, {_key(final)})

    def match_matmul(self, final, tail: _Tail, acc, m) -> _Match | None:
        """An int8 product of two activations (`compiler.passes.offload_matmul`): operands
        and output as the graph holds them, no layout change."""
        found = matmul_call(self, final, tail, acc, m)
        if found is None:
            return None
        call, inputs, constants, out_shape, members = found
        return _Match(call, inputs, [False, False], constants, out_shape, False, members)

    def match_requantized(self, final, tail: _Tail) -> _Match | None:
        got = self.requantized_acc(tail)
        if got is None:
            return None
        acc, m = got
        for matcher in (self.match_conv, self.match_global_pool, self.match_mul,
                        self.match_matmul):
            found = matcher(final, tail, acc, m)
            if found is not None:
                return found
        return None

    def conv_of(self, expr, members: set):
        """``conv2d`` (Relax op or the zero-point-padded kernel) → (x, w, attrs dict)."""
        v = self.value(expr)
        if is_op(v, "relax.nn.conv2d"):
            a = v.attrs
            if (str(a.data_layout) != "NCHW" or str(a.kernel_layout) != "OIHW"
                    or str(a.out_dtype) != "int32"):
                return None
            members.add(_key(expr))
            return v.args[0], v.args[1], {
                "strides": [int(s) for s in a.strides], "padding": [int(p) for p in a.padding],
                "dilation": [int(d) for d in a.dilation], "groups": int(a.groups),
                "pad_value": 0}
        tag = kernel_tag(self.mod, v)
        if tag is None or tag.get("op") != "conv2d":
            return None
        members.add(_key(expr))
        x, w = v.args[1].fields
        return x, w, tag

    def match_conv(self, final, tail: _Tail, acc, m) -> _Match | None:
        members = set(tail.members)
        offset, sub = None, None
        add = self.op(acc, "relax.add", members)
        if add is not None:
            offset, acc = const_value(add.args[1]), add.args[0]
            if offset is None:
                return None
        else:
            s = self.op(acc, "relax.subtract", members)
            if s is not None:
                sub, acc = const_value(s.args[1]), s.args[0]
                if sub is None or sub.size != 1:
                    return None
        got = self.conv_of(acc, members)
        if got is None:
            return None
        x, w_c, attrs = got
        w = const_value(w_c)
        if (w is None or w.dtype != np.int8 or not isinstance(x, relax.Var)
                or dtype_of(x) != "int8"):
            return None
        n_, c_in, h, wd = shape_of(x)
        _, c_out, ho, wo = shape_of(final)
        o, c_per_group, kh, kw = w.shape
        groups = attrs["groups"]
        if n_ != 1 or o != c_out:
            return None
        top, left = attrs["padding"][0], attrs["padding"][1]
        geometry = {"in_h": h, "in_w": wd, "in_c": c_in, "out_h": ho, "out_w": wo,
                    "out_c": c_out, "kernel_h": kh, "kernel_w": kw,
                    "stride_h": attrs["strides"][0], "stride_w": attrs["strides"][1],
                    "dilation_h": attrs["dilation"][0], "dilation_w": attrs["dilation"][1],
                    "pad_top": top, "pad_left": left}
        zp_x = int(attrs["pad_value"])
        depthwise = groups == c_in and c_per_group == 1 and c_out % c_in == 0
        if (depthwise and offset is None and np.all(w == 1) and c_out == c_in
                and (sub is not None or zp_x == 0)):
            pool = self.pool_call(final, tail, m, geometry, sub, zp_x, members)
            if pool is not None:
                return _Match(pool[0], [x], [True], pool[1], (1, ho, wo, c_out), True, members)
        if sub is not None:
            return None
        bias = np.zeros(c_out, np.int64) if offset is None else offset.astype(np.int64)
        bias = np.broadcast_to(bias.reshape(-1), (c_out,)) if bias.size in (1, c_out) else None
        if bias is None or np.any(np.abs(bias) >= 2**31):
            return None
        rq = self.per_channel(m, tail.n, c_out)
        if rq is None:
            return None
        int4 = not depthwise and self.int4_conv(w, groups, c_in)
        pointwise = ((kh, kw) == (1, 1) and geometry["stride_h"] == geometry["stride_w"] == 1
                     and not any(attrs["padding"]) and groups == 1)
        if depthwise:
            function = "qanas_depthwise_conv2d_s8"
            weights = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)).reshape(kh, kw, 1, c_out)
        elif int4:
            function = "qanas_pointwise_conv_s4" if pointwise else "qanas_conv2d_s4"
            weights = packing_s4.pack_conv(w).view(np.int8)
        else:
            if c_in % groups or c_out % groups or c_per_group * groups != c_in:
                return None
            packed = packing.pack_conv(w, None, 0, groups, self.isa).weights
            function = "qanas_pointwise_conv_s8" if pointwise else "qanas_conv2d_s8"
            rows = -(-(c_out // groups) // packing.MVE_ROWS) * packing.MVE_ROWS * groups
            weights = (packed.reshape(rows, -1) if self.isa == "mve"
                       else packed.reshape(c_out, kh, kw, c_per_group))
        params = {"conv": {**geometry, "groups": groups if not depthwise else 1,
                           "depth_multiplier": c_out // c_in if depthwise else 1,
                           "input_zero_point": zp_x},
                  "output_zero_point": tail.zero_point, "qmin": tail.qmin, "qmax": tail.qmax,
                  "weights_mve": int(self.isa == "mve" and not depthwise and not int4)}
        return _Match(LibraryCall(function, params), [x], [True],
                      [weights, bias.astype(np.int32), *rq], (1, ho, wo, c_out), True, members)

    def int4_conv(self, w: np.ndarray, groups: int, c_in: int) -> bool:
        """The conv's weights are an INT4 weight of the source that the int4 kernels take
        (its window fits `packing_s4.PATCH_MAX`, its channels divide into the groups)."""
        depth = w[0].size
        return (weight_digest(w) in self.int4_weights and c_in % groups == 0
                and w.shape[0] % groups == 0 and depth <= packing_s4.PATCH_MAX)

    @staticmethod
    def per_channel(m: np.ndarray, n: np.ndarray, channels: int):
        """(multiplier, shift) int32 per channel from the graph's M and n, else None."""
        def channel_vector(a):
            if a.size == 1:
                return np.full(channels, a.reshape(-1)[0], np.int64)
            if a.shape == (1, channels, 1, 1):
                return a.reshape(-1).astype(np.int64)
            return None

        mv, nv = channel_vector(m), channel_vector(n)
        if mv is None or nv is None:
            return None
        return mv.astype(np.int32), (31 - nv).astype(np.int32)

    def pool_call(self, final, tail: _Tail, m, geometry: dict, sub, zp_x: int, members):
        """The average pool of an all-ones depthwise sum, or None."""
        kh, kw = geometry["kernel_h"], geometry["kernel_w"]
        if geometry["dilation_h"] != 1 or geometry["dilation_w"] != 1:
            return None
        if sub is not None:
            total = int(sub.reshape(-1)[0])
            if total % (kh * kw) or (zp_x and total != zp_x * kh * kw):
                return None
            zp_x = total // (kh * kw)
        _, _, ho, wo = shape_of(final)
        counts = _window_counts(geometry)
        full = kh * kw
        mult = np.zeros(full + 1, np.int64)
        shift = np.zeros(full + 1, np.int64)
        seen = np.zeros(full + 1, bool)
        mb = np.broadcast_to(m, (1, 1, ho, wo)) if m.size in (1, ho * wo) else None
        nb = np.broadcast_to(tail.n, (1, 1, ho, wo)) if tail.n.size in (1, ho * wo) else None
        if mb is None or nb is None or m.ndim not in (0, 4) or tail.n.ndim not in (0, 4):
            return None
        for count, mm, nn in zip(counts.reshape(-1), mb.reshape(-1), nb.reshape(-1),
                                 strict=True):
            if seen[count] and (mult[count] != mm or shift[count] != 31 - nn):
                return None  # one count, two multipliers: not the library's table
            mult[count], shift[count], seen[count] = mm, 31 - nn, True
        include_pad = m.size == 1 and tail.n.size == 1
        if include_pad:
            mult[:], shift[:] = int(m.reshape(-1)[0]), 31 - int(tail.n.reshape(-1)[0])
            mult[0] = shift[0] = 0
        elif not seen[1:].any():
            return None
        params = {"pool": {"in_h": geometry["in_h"], "in_w": geometry["in_w"],
                           "channels": geometry["in_c"], "out_h": ho, "out_w": wo,
                           "kernel_h": kh, "kernel_w": kw, "stride_h": geometry["stride_h"],
                           "stride_w": geometry["stride_w"], "pad_top": geometry["pad_top"],
                           "pad_left": geometry["pad_left"],
                           "count_include_pad": int(include_pad), "input_zero_point": zp_x},
                  "output_zero_point": tail.zero_point, "qmin": tail.qmin, "qmax": tail.qmax}
        return (LibraryCall("qanas_avg_pool2d_s8", params),
                [mult.astype(np.int32), shift.astype(np.int32)])

    def match_global_pool(self, final, tail: _Tail, acc, m) -> _Match | None:
        members = set(tail.members)
        got = self.minus_scalar(acc, members)
        if got is None:
            return None
        acc, zp_x = got
        total = self.op(acc, "relax.sum", members)
        if total is None:
            return None
        got = self.minus_zp(total.args[0], "int32", members)
        if got is None or got[1] != 0 or m.size != 1 or tail.n.size != 1:
            return None
        x = got[0]
        axes = sorted(int(a) for a in total.attrs.axis) if total.attrs.axis is not None else None
        n_, c, h, w = shape_of(x)
        if axes != [2, 3] or n_ != 1 or zp_x % (h * w):
            return None
        params = {"height": h, "width": w, "channels": c, "input_zero_point": zp_x // (h * w),
                  "multiplier": int(m.reshape(-1)[0]), "shift": 31 - int(tail.n.reshape(-1)[0]),
                  "output_zero_point": tail.zero_point, "qmin": tail.qmin, "qmax": tail.qmax}
        out = shape_of(final)  # (1, C, 1, 1) keeps its NHWC form; (1, C) is the same bytes
        return _Match(LibraryCall("qanas_global_avg_pool_s8", params), [x], [True], [],
                      _nhwc(out) if len(out) == 4 else out, len(out) == 4, members)

    def operands(self, a, b, final, commutes: bool):
        """(a, b, b_channels, transposes) for an element-wise op, else None."""
        out = shape_of(final)
        sa, sb = shape_of(a), shape_of(b)
        if len(out) != 4 or out[0] != 1:
            return None
        if sa == sb == out:
            return a, b, 0, [True, True]
        vec = (1, out[1], 1, 1)
        if sa == out and sb == vec:
            return a, b, out[1], [True, False]
        if commutes and sb == out and sa == vec:
            return b, a, out[1], [True, False]
        return None

    def centred_product(self, acc, name: str, tail: _Tail, m):
        """``name(astype(a, int32) [- za], astype(b, int32) [- zb])`` bound to `acc` and
        requantized once (one multiplier and shift) → (the call, (a, za), (b, zb),
        members), else None: the mul's and the matmul's operands."""
        members = set(tail.members)
        call = self.op(acc, name, members)
        if call is None or m.size != 1 or tail.n.size != 1:
            return None
        ga = self.minus_zp(call.args[0], "int32", members)
        gb = self.minus_zp(call.args[1], "int32", members)
        if ga is None or gb is None:
            return None
        return call, ga, gb, members

    def match_mul(self, final, tail: _Tail, acc, m) -> _Match | None:
        got = self.centred_product(acc, "relax.multiply", tail, m)
        if got is None:
            return None
        _, (a, za), (b, zb), members = got
        ops = self.operands(a, b, final, commutes=True)
        if ops is None:
            return None
        a2, b2, b_channels, nhwc = ops
        if a2 is not a:
            za, zb = zb, za
        params = {"count": int(np.prod(shape_of(final))), "b_channels": b_channels,
                  "mul": {"a_zero_point": za, "b_zero_point": zb,
                          "multiplier": int(m.reshape(-1)[0]),
                          "shift": 31 - int(tail.n.reshape(-1)[0]),
                          "output_zero_point": tail.zero_point, "qmin": tail.qmin,
                          "qmax": tail.qmax}}
        return _Match(LibraryCall("qanas_mul_s8", params), [a2, b2], nhwc, [],
                      _nhwc(shape_of(final)), True, members)

    def match_add(self, final, tail: _Tail) -> _Match | None:
        members = set(tail.members)
        v = self.value(tail.prod)
        subtract = is_op(v, "relax.subtract")
        members.add(_key(tail.prod))
        if tail.n.size != 1:
            return None
        terms = []
        for arg in v.args:
            mul = self.op(arg, "relax.multiply", members)
            c = const_value(mul.args[1]) if mul is not None else None
            if c is None or c.size != 1:
                return None
            got = self.minus_zp(mul.args[0], "int64", members)
            if got is None:
                return None
            terms.append((got[0], got[1], int(c.reshape(-1)[0])))
        (a, za, ma), (b, zb, mb) = terms
        if max(abs(ma), abs(mb)) >= 2**31:
            return None
        ops = self.operands(a, b, final, commutes=not subtract)
        if ops is None:
            return None
        a2, b2, b_channels, nhwc = ops
        if a2 is not a:
            (za, ma), (zb, mb) = (zb, mb), (za, ma)
        params = {"count": int(np.prod(shape_of(final))), "b_channels": b_channels,
                  "add": {"a_zero_point": za, "b_zero_point": zb, "a_multiplier": ma,
                          "b_multiplier": mb, "right_shift": int(tail.n.reshape(-1)[0]),
                          "subtract": int(subtract), "output_zero_point": tail.zero_point,
                          "qmin": tail.qmin, "qmax": tail.qmax}}
        return _Match(LibraryCall("qanas_add_s8", params), [a2, b2], nhwc, [],
                      _nhwc(shape_of(final)), True, members)


def _nhwc(shape):
    n, c, h, w = shape
    return (n, h, w, c)


def _same_bytes_in_nhwc(shape) -> bool:
    """Whether an NCHW tensor of `shape` has the bytes of its NHWC transpose (C or H·W is 1)."""
    _, c, h, w = shape
    return c == 1 or h * w == 1


def _window_counts(g: dict) -> np.ndarray:
    """Valid input elements of each pooling window, (out_h, out_w)."""
    def axis(size, k, stride, before, out):
        starts = np.arange(out) * stride - before
        return np.minimum(starts + k, size) - np.maximum(starts, 0)

    return np.outer(axis(g["in_h"], g["kernel_h"], g["stride_h"], g["pad_top"], g["out_h"]),
                    axis(g["in_w"], g["kernel_w"], g["stride_w"], g["pad_left"], g["out_w"]))


def _extern(*tensors, function: str, out_shape):
    """TE: the library function called on the buffers of `tensors`, writing one output."""
    return te.extern([list(out_shape)], list(tensors),
                     lambda ins, outs: tirx.call_extern(
                         "int32", function, *[b.data for b in ins], outs[0].data),
                     name=function, dtype="int8")


class _Offloader(PyExprMutator):
    def __init__(self, mod=None, isa: str = "portable", int4_weights: frozenset = frozenset()):
        super().__init__(mod)
        self.isa, self.int4_weights = isa, int4_weights
        self.matches: dict[int, _Match] = {}
        self.to_nhwc: dict[int, relax.Var] = {}    # NCHW var → its NHWC transpose
        self.from_nhwc: dict[int, relax.Var] = {}  # NCHW var made from → the NHWC var
        self.count = 0

    def offload(self, func: relax.Function) -> relax.Function:
        groups = _Groups(func, self.builder_.get(), self.isa, self.int4_weights)
        for block in func.body.blocks:
            for b in block.bindings:
                if isinstance(b, relax.VarBinding):
                    found = groups.match(b.var)
                    if found is not None:
                        self.matches[_key(b.var)] = found
        in_library = set().union(*(m.members for m in self.matches.values()))
        for key, found in self.matches.items():  # a resize no library call reads: NCHW
            if found.call.function == RESIZE_FUNCTION and not (
                    groups.users.get(key, set()) & in_library):
                n, h, w, c = found.out_shape
                found.call, found.out_shape = nchw_output(found.call), (n, c, h, w)
                found.out_nhwc = False
        if not self.matches:
            return func
        return relax.analysis.remove_all_unused(self.visit_expr(func))

    def nhwc(self, var) -> relax.Var:
        if _key(var) in self.from_nhwc:
            return self.from_nhwc[_key(var)]
        if _same_bytes_in_nhwc(shape_of(var)):
            return var
        if _key(var) not in self.to_nhwc:
            self.to_nhwc[_key(var)] = self.builder_.emit(relax.op.permute_dims(var, TO_NHWC))
        return self.to_nhwc[_key(var)]

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:  # noqa: D102
        found = self.matches.get(_key(binding.var))
        if found is None:
            super().visit_var_binding_(binding)
            return
        args = []
        for var, to_nhwc in zip(found.inputs, found.nhwc_inputs, strict=True):
            new = self.visit_expr(var)
            if to_nhwc:
                new = self.nhwc(new)
            elif _key(new) in self.from_nhwc and all(d == 1 for d in shape_of(new)[2:]):
                # a (1, C, 1, 1) vector: the same bytes
                new = self.from_nhwc[_key(new)]
            args.append(new)
        args += [relax.const(c) for c in found.constants]
        nchw_shape = (found.out_shape[0], found.out_shape[3], *found.out_shape[1:3])
        same_bytes = found.out_nhwc and _same_bytes_in_nhwc(nchw_shape)
        out = emit_te(self.builder_, _extern, *args, function=found.call.function,
                      out_shape=nchw_shape if same_bytes else found.out_shape,
                      primfunc_name_hint=found.call.function)
        gv = self.builder_.lookup_binding(out).args[0]
        self.builder_.update_func(gv, self.builder_.get()[gv].with_attr(
            LIBRARY_ATTR, found.call.to_json()))
        self.count += 1
        if found.out_nhwc and not same_bytes:
            nchw = self.builder_.emit(relax.op.permute_dims(out, TO_NCHW), binding.var.name)
            self.from_nhwc[_key(nchw)] = out
            out = nchw
        self.set_var_remap(binding.var, out)


def OffloadKernels(isa: str = "portable",  # noqa: N802 - TVM pass naming
                   int4_weights: frozenset = frozenset()):
    """The pass: matched int8 groups of ``main`` become kernel library calls.

    Args:
        isa: the target's kernel path (`compiler.kernels.isa_for_cpu`); it decides the
            conv weight layout (``"mve"``: Helium blocks; every other: OHWI).
        int4_weights: `compiler.int4.weight_digest` of the source's INT4 weights: a conv
            with one of them calls the int4 kernels, its weights packed two per byte.
    """

    def transform(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
            return mod
        offloader = mutator(_Offloader)(mod, isa, int4_weights)
        new_main = offloader.offload(mod["main"])
        if not offloader.count:
            return mod
        out = offloader.builder_.finalize()
        out["main"] = new_main
        return out

    return tvm.transform.module_pass(transform, opt_level=0, name="OffloadKernels")


def offload_kernels(model, isa: str = "portable"):
    """`OffloadKernels` on an integer-lowered `ImportedModel` (a float model: unchanged)."""
    if not getattr(model, "quantized", False):
        return model
    int4 = getattr(model, "int4_weights", frozenset())
    return model.with_module(OffloadKernels(isa, int4)(model.mod))
