"""`torch.export` programs (float models) → Relax, through TVM's own importer."""

from __future__ import annotations

import torch
from tvm import relax
from tvm.relax.frontend.torch import from_exported_program

from compiler.errors import UnsupportedOpError
from compiler.frontend.model import ImportedModel, TensorInfo


def _infos(types, names) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(n, tuple(int(d) for d in t.shape), str(t.dtype))
                 for n, t in zip(names, types, strict=True))


def import_exported_program(program: torch.export.ExportedProgram) -> ImportedModel:
    """Imports a float ``torch.export`` program; weights are bound as constants.

    Raises:
        UnsupportedOpError: TVM's importer does not know one of the program's ATen ops.
    """
    try:
        mod = from_exported_program(program, keep_params_as_input=False,
                                    unwrap_unit_return_tuple=True)
    except (AssertionError, KeyError, NotImplementedError, ValueError) as err:
        raise UnsupportedOpError(
            f"torch.export program could not be imported: {err}. The torch frontend supports "
            "the ATen ops TVM's from_exported_program converts; export the model to ONNX to "
            "see the compiler's own supported-op table") from err
    mod = relax.transform.Normalize()(mod)
    main = mod["main"]
    in_names = [s.arg.name for s in program.graph_signature.input_specs
                if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    ret = main.ret_ty
    out_types = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    out_names = [f"output_{i}" for i in range(len(out_types))]
    return ImportedModel(
        mod=mod,
        inputs=_infos([p.ty for p in main.params], in_names),
        outputs=_infos(out_types, out_names),
        quantized=False,
        source="torch.export",
    )
