"""Int4 weights in a QCDQ ONNX export: `pack_int4_weights`.

Brevitas exports every quantized weight as an int8 constant, a `Clip` to the
quantizer's integer range and a `DequantizeLinear` (per output channel). A weight
quantized to 4 bits (`QuantSpec.layer_weight_bits`) is therefore an int8 tensor
clipped to [-7, 7] (narrow range) or [-8, 7]. This pass stores each such weight as
an ONNX ``INT4`` initializer (two values per byte) read by the `DequantizeLinear`
directly, with an ``INT4`` zero point of 0, and drops the `Clip`. ``INT4`` needs
opset 21, so a model that gains one is moved to opset 21 (our ops keep their
meaning: the versions between 17 and 21 only add attributes with neutral defaults,
new types, or block quantization).

A model without 4-bit weights is returned untouched, so int8 exports stay byte for
byte what they were.

Example:
    >>> model, packed = pack_int4_weights(onnx.load("subnet.onnx"))  # doctest: +SKIP
    >>> packed  # names of the int4 weight initializers  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

INT4_OPSET = 21
INT4_LOW, INT4_HIGH = -8, 7


def _constants(graph) -> dict:
    from onnx import numpy_helper

    return {init.name: (init, numpy_helper.to_array(init)) for init in graph.initializer}


def _int4_clip(node, consts) -> np.ndarray | None:
    """The clipped int8 codes of a weight `Clip` whose bounds fit 4 bits, else None."""
    from onnx import TensorProto

    if node.op_type != "Clip" or len(node.input) != 3 or any(i not in consts for i in node.input):
        return None
    (data, codes), (_, low), (_, high) = (consts[i] for i in node.input)
    if data.data_type != TensorProto.INT8 or low.size != 1 or high.size != 1:
        return None
    if int(low) < INT4_LOW or int(high) > INT4_HIGH:
        return None
    return np.clip(codes, int(low), int(high))


def pack_nibbles(codes: np.ndarray) -> bytes:
    """ONNX's INT4 raw data: two's-complement nibbles, the first element in the low 4 bits."""
    flat = codes.astype(np.int8).reshape(-1)
    if flat.size % 2:
        flat = np.append(flat, np.int8(0))
    nibbles = (flat.astype(np.uint8) & 0x0F).reshape(-1, 2)
    return (nibbles[:, 0] | (nibbles[:, 1] << 4)).astype(np.uint8).tobytes()


def pack_int4_weights(model):
    """Stores the 4-bit weights of a QCDQ model as INT4 initializers (see the module docstring).

    Args:
        model: an `onnx.ModelProto` from `qanas.quant.export_qdq`.

    Returns:
        (model, names): the model (the same object when nothing was packed) and the
        names of the INT4 weight initializers written.
    """
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    consts = _constants(graph)
    producers = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    packed, dropped = [], []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) != 3:
            continue
        clip = producers.get(node.input[0])
        codes = None if clip is None else _int4_clip(clip, consts)
        if codes is None or readers[clip.output[0]] != 1:
            continue
        base = clip.input[0]
        weight = helper.make_tensor(f"{base}_int4", TensorProto.INT4, codes.shape,
                                    pack_nibbles(codes), raw=True)
        zero_shape = consts[node.input[2]][1].shape if node.input[2] in consts else ()
        zero = helper.make_tensor(f"{base}_int4_zero_point", TensorProto.INT4, zero_shape,
                                  pack_nibbles(np.zeros(zero_shape, dtype=np.int8)), raw=True)
        graph.initializer.extend([weight, zero])
        node.input[0], node.input[2] = weight.name, zero.name
        dropped.append(clip)
        packed.append(weight.name)
    if not packed:
        return model, []
    for clip in dropped:
        graph.node.remove(clip)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < INT4_OPSET:
            opset.version = INT4_OPSET
    onnx.checker.check_model(model)
    return model, packed


__all__ = ["INT4_OPSET", "pack_int4_weights", "pack_nibbles"]
