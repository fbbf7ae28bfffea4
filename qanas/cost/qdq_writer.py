"""`QdqWriter`: the ONNX nodes, constants, shapes and scales of a QDQ graph being written.

`qanas.cost.subnet_qdq` writes a subnet's QCDQ graph node by node through it; the
ops without weights of attention (`qanas.cost.qdq_layout`) too.
"""

from __future__ import annotations

import numpy as np


class UnsupportedGraph(Exception):
    """A node or quantizer this writer does not cover (export through Brevitas instead)."""


class QdqWriter:
    """Accumulates ONNX nodes and initializers; tracks each value's shape and scale.

    It writes one constant per distinct value. A second node with the same operator,
    inputs and attributes (a module called twice on one tensor) is refused: the
    TorchScript exporter's common-subexpression pass merges such calls and what
    follows them in ways not modelled here. Quantizers are the exception: Brevitas
    exports them as autograd functions, which that pass never merges (two convs that
    read one slice each get their own QuantizeLinear of it, with equal scales).

    Attributes:
        nodes: the `onnx.NodeProto`s in graph order.
        inits: the initializers (one per distinct constant).
        shape: each value's shape, by name.
        scale: each dequantized value's scale, by name.
    """

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self.shape: dict[str, tuple[int, ...]] = {}
        self.scale: dict[str, np.float32] = {}
        self._n = 0
        self._consts: dict[tuple, str] = {}
        self._ops: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        """A new value name from `hint`."""
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: np.ndarray, hint: str) -> str:
        """The name of the initializer holding `value` (written once per distinct value)."""
        from onnx import numpy_helper

        value = np.array(value, order="C")  # keeps 0-d scalars 0-d
        key = (value.dtype.str, value.shape, value.tobytes())
        if key not in self._consts:
            self._consts[key] = name = self.name(hint)
            self.inits.append(numpy_helper.from_array(value, name))
        return self._consts[key]

    def node(self, op: str, inputs: list[str], shape, hint: str, merged: bool = True,
             **attrs) -> str:
        """Appends `op` with output shape `shape` and returns its output's name.

        `merged=False` for the quantizers, which the exporter never merges.

        Raises:
            UnsupportedGraph: the same op on the same inputs was written before.
        """
        from onnx import NodeProto

        out = self.name(hint)
        attr_key = repr(sorted(attrs.items()))
        if merged:
            key = (op, tuple(inputs), attr_key)
            if key in self._ops:  # a module called twice on one tensor: the exporter's common-
                raise UnsupportedGraph(  # subexpression pass merges what follows unpredictably
                    f"{op} computed twice on the same tensor (a module called twice on it)")
            self._ops[key] = out
        node = NodeProto(op_type=op, name=out, input=inputs, output=[out])
        if attrs:
            node.attribute.extend(_attributes(attr_key, attrs))
        self.nodes.append(node)
        self.shape[out] = tuple(int(d) for d in shape)
        return out

    def quant_dequant(self, x: str, scale: np.float32, signed: bool, hint: str) -> str:
        """QuantizeLinear → DequantizeLinear of `x` at `scale` (zero point 0, int8 or uint8)."""
        s = self.const(np.array(scale, np.float32), f"{hint}_scale")
        zp = self.const(np.array(0, np.int8 if signed else np.uint8), f"{hint}_zp")
        q = self.node("QuantizeLinear", [x, s, zp], self.shape[x], f"{hint}_q", merged=False)
        dq = self.node("DequantizeLinear", [q, s, zp], self.shape[x], f"{hint}_dq", merged=False)
        self.scale[dq] = scale
        return dq


_ATTRIBUTES: dict[str, list] = {}


def _attributes(key: str, attrs: dict) -> list:
    """`attrs` as `onnx.AttributeProto`s sorted by name (as `onnx.helper.make_node` writes
    them), made once per distinct set: most nodes of a subnet repeat a few."""
    if key not in _ATTRIBUTES:
        from onnx import helper

        _ATTRIBUTES[key] = [helper.make_attribute(name, value)
                            for name, value in sorted(attrs.items())]
    return _ATTRIBUTES[key]


__all__ = ["QdqWriter", "UnsupportedGraph"]
