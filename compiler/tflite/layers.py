"""Layer-by-layer agreement of the TFLite export with the NumPy int8 reference.

End to end, a 1-LSB requantization difference in one layer (TFLite rounds twice, we
round once) propagates and grows through the following layers, most visibly in
small subnets whose feature maps shrink to 1×1. To measure each layer on its own,
`verify_layers` cuts the QDQ model into one model per quantized layer (float inputs
→ their QuantizeLinear → the layer's group → its QuantizeLinear → DQ), feeds each the
reference's own int8 inputs to that layer, and compares the interpreter's output
with the reference's int8 tensor of that layer.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, utils

from compiler.onnx_file import read_onnx
from compiler.reference import boundary, run_int8_reference
from compiler.tflite.verify import (
    BACKENDS,
    compare,
    reference_inputs,
    run_many,
    with_intermediate_outputs,
)


@dataclass(frozen=True)
class LayerAgreement:
    """One quantized layer (named by its QuantizeLinear output) in one interpreter."""

    backend: str
    layer: str
    ops: tuple[str, ...]
    elements: int
    exact: float
    max_lsb: int


class QDQRegions:
    """A QDQ model cut into its quantized layers: each activation QuantizeLinear closes the
    float region that reads the int8 tensors (QuantizeLinear outputs) before it."""

    def __init__(self, model: onnx.ModelProto):
        self.model = onnx.shape_inference.infer_shapes(model)
        g = self.model.graph
        self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in g.node:
            if n.op_type == "Constant":
                self.inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.producer = {o: n for n in g.node for o in n.output}
        self.graph_inputs = {i.name for i in g.input} - set(self.inits)

    def is_const(self, name: str) -> bool:
        if name in self.inits:
            return True
        n = self.producer.get(name)
        return (n is not None and n.op_type != "QuantizeLinear"
                and all(self.is_const(i) for i in n.input if i))

    def quantizers(self) -> list[onnx.NodeProto]:
        """Activation QuantizeLinear nodes that close a layer (not the input quantizers)."""
        return [n for n in self.model.graph.node
                if n.op_type == "QuantizeLinear" and not self.is_const(n.input[0])
                and n.input[0] not in self.graph_inputs]

    def region_inputs(self, name: str, found: set) -> None:
        """The int8 tensors (QuantizeLinear outputs) the float region ending at ``name`` reads."""
        n = self.producer.get(name)
        if n is None or self.is_const(name):
            return
        if n.op_type == "DequantizeLinear":
            found.add(n.input[0])
            return
        for i in n.input:
            if i:
                self.region_inputs(i, found)

    def layer_model(self, q: onnx.NodeProto) -> tuple[onnx.ModelProto, list[str]]:
        """One layer as a QDQ model, and the int8 tensors it reads (in input order)."""
        ins: set = set()
        self.region_inputs(q.input[0], ins)
        out = q.output[0]
        sub = utils.Extractor(self.model).extract_model(sorted(ins), [out])
        g = sub.graph
        have = {i.name for i in g.initializer}
        quant, float_inputs, order = [], [], []
        for gi in list(g.input):
            if gi.name not in ins:
                continue
            qn = self.producer[gi.name]
            float_inputs.append(helper.make_tensor_value_info(
                gi.name + "__f", onnx.TensorProto.FLOAT,
                [d.dim_value for d in gi.type.tensor_type.shape.dim]))
            quant.append(helper.make_node("QuantizeLinear", [gi.name + "__f", *qn.input[1:]],
                                          [gi.name]))
            for p in qn.input[1:]:
                if p and p not in have:
                    g.initializer.append(numpy_helper.from_array(self.inits[p], p))
                    have.add(p)
            g.input.remove(gi)
            order.append(gi.name)
        g.input.extend(float_inputs)
        dq = helper.make_node("DequantizeLinear", [out, *q.input[1:]], [out + "__dq"])
        for p in q.input[1:]:
            if p and p not in have:
                g.initializer.append(numpy_helper.from_array(self.inits[p], p))
                have.add(p)
        del g.output[:]
        g.output.append(helper.make_tensor_value_info(out + "__dq", onnx.TensorProto.FLOAT,
                                                      None))
        nodes = quant + list(g.node) + [dq]
        del g.node[:]
        g.node.extend(nodes)
        return helper.make_model(g, opset_imports=self.model.opset_import), order


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def verify_layers(model, *, seed: int = 0, backends=BACKENDS) -> list[LayerAgreement]:
    """Every quantized layer of ``model`` exported alone and run on the reference's inputs.

    Args:
        model: a QDQ ONNX path or ModelProto.
        seed: seed of the model inputs (`compiler.tflite.verify.reference_inputs`).
        backends: interpreters to run.

    Returns:
        One `LayerAgreement` per backend and layer, in graph order.
    """
    from compiler.tflite.export import export_tflite

    model = read_onnx(model) if isinstance(model, (str, Path)) else model
    probe = with_intermediate_outputs(model)
    feeds = reference_inputs(model, seed)
    values = run_int8_reference(probe, feeds)
    for t in boundary(model).inputs:
        values.setdefault(t.name, feeds[t.name])
    regions = QDQRegions(model)
    # the reference's int8 tensor of every QuantizeLinear output, by its ONNX name
    for q in regions.quantizers():
        if q.output[0] + "/layer" in values:
            values[q.output[0]] = values[q.output[0] + "/layer"]
    for o in model.graph.output:
        dq = regions.producer.get(o.name)
        if dq is not None and dq.input[0] not in values:
            values[dq.input[0]] = values[o.name]
    for q in regions.model.graph.node:
        if q.op_type == "QuantizeLinear" and q.input[0] in regions.graph_inputs:
            values[q.output[0]] = feeds[q.input[0]]

    with tempfile.TemporaryDirectory(prefix="qanas-tflite-layers-") as tmp:
        jobs, meta = [], []
        for k, q in enumerate(regions.quantizers()):
            sub, order = regions.layer_model(q)
            info = export_tflite(sub, Path(tmp) / f"layer{k}.tflite")
            jobs.append((info.path, [_nhwc(values[name]) for name in order]))
            meta.append((q.output[0], tuple(info.op_counts)))
        rows = []
        for backend in backends:
            for (layer, ops), got in zip(meta, run_many(backend, jobs), strict=True):
                ref = values[layer]
                exact, lsb = compare(ref, _nchw(got[0]).reshape(ref.shape))
                rows.append(LayerAgreement(backend, layer, ops, int(ref.size), exact, lsb))
        return rows
