"""The emitted C project: model.h / model.c, weights.c, copied headers and runtime, Makefile."""

from compiler.project.files import collect_headers, copy_runtime, render_makefile
from compiler.project.model_c import render_header, render_model_c
from compiler.project.weights import render_weights

__all__ = ["collect_headers", "copy_runtime", "render_header", "render_makefile",
           "render_model_c", "render_weights"]
