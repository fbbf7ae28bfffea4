"""Code generation: fused TIR kernels → scheduled, linkable C sources with their scratch needs."""

from compiler.codegen.kernels import KernelSource, build_kernels, short_names, workspace_requests
from compiler.codegen.schedule import SCHEDULE_RULES, schedule_kernel

__all__ = ["SCHEDULE_RULES", "KernelSource", "build_kernels", "schedule_kernel", "short_names",
           "workspace_requests"]
