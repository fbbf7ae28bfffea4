"""What the model checks read: folded constants, shapes, element types, producers.

`ModelFacts` is built once per model by `compiler.frontend.validate.check_model_values`
and handed to every check (`validate.py` for quantization, `validate_attrs.py` for
attributes and graph structure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper


def node_name(node: onnx.NodeProto) -> str:
    """``Op (node 'name')``, how every message names a node."""
    return f"{node.op_type} (node {node.name or '<unnamed>'!r})"


def node_attrs(node: onnx.NodeProto) -> dict:
    """The attributes of ``node`` as a name → Python value dict."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


@dataclass(frozen=True)
class ModelFacts:
    """What the checks read: folded constants, static shapes, element types, producers and
    consumers (tensor name → the (node, input index) pairs reading it)."""

    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, int]
    producers: dict[str, onnx.NodeProto]
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: onnx.ModelProto, consts: dict[str, np.ndarray],
           shapes: dict[str, tuple[int, ...]]) -> ModelFacts:
        """The facts of a shape-inferred ``model`` whose constants are already folded."""
        g = model.graph
        dtypes = {vi.name: vi.type.tensor_type.elem_type
                  for vi in [*g.input, *g.value_info, *g.output]}
        dtypes.update({t.name: t.data_type for t in g.initializer})
        for name, value in consts.items():
            if name not in dtypes and value.dtype != object:
                dtypes[name] = helper.np_dtype_to_tensor_dtype(value.dtype)
        producers = {o: n for n in g.node for o in n.output if o}
        consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        for n in g.node:
            for i, name in enumerate(n.input):
                if name:
                    consumers.setdefault(name, []).append((n, i))
        return cls(consts, shapes, dtypes, producers, consumers)

    def dq_source(self, name: str) -> onnx.NodeProto | None:
        """The ``DequantizeLinear`` node producing ``name``, or None."""
        node = self.producers.get(name)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    def scale(self, qdq: onnx.NodeProto) -> np.ndarray | None:
        """The constant scale of a Q/DQ node as float64, or None when not constant."""
        value = self.consts.get(qdq.input[1])
        return None if value is None else np.asarray(value, dtype=np.float64)

    def zero_point(self, qdq: onnx.NodeProto) -> np.ndarray | None:
        """The constant zero point of a Q/DQ node (None when omitted or not constant)."""
        if len(qdq.input) < 3 or not qdq.input[2]:
            return None
        return self.consts.get(qdq.input[2])

    def shape(self, name: str) -> tuple[int, ...] | None:
        """The static shape of ``name`` (inferred, or of its constant value)."""
        if name in self.shapes:
            return tuple(self.shapes[name])
        return tuple(self.consts[name].shape) if name in self.consts else None


__all__ = ["ModelFacts", "node_attrs", "node_name"]
