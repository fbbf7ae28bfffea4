"""Code generation: fused TIR kernels → linkable C sources with their scratch needs."""

from compiler.codegen.kernels import KernelSource, build_kernels, short_names, workspace_requests

__all__ = ["KernelSource", "build_kernels", "short_names", "workspace_requests"]
