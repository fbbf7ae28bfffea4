"""The emitted C project: model.h / model.c, weights.c, copied headers and runtime, Makefile,
and the `.qanas-project` marker that lets ``--force`` replace only folders qanas wrote."""

from compiler.project.c_strings import c_string_literal
from compiler.project.files import collect_headers, copy_runtime, render_makefile
from compiler.project.model_c import render_header, render_model_c
from compiler.project.output_dir import (
    MARKER_FILE,
    OutputDirExistsError,
    OutputIsAFileError,
    check_output_dir,
    prepare_output_dir,
)
from compiler.project.weights import render_weights

__all__ = ["MARKER_FILE", "OutputDirExistsError", "OutputIsAFileError", "c_string_literal",
           "check_output_dir", "collect_headers", "copy_runtime", "prepare_output_dir",
           "render_header", "render_makefile", "render_model_c", "render_weights"]
