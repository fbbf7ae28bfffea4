"""Steps that call the int8 kernel library: no generated C, a parameter struct instead.

A library call (`compiler.kernels.calls`) is run by an adapter of the runtime
(``runtime/c/src/kernel_steps.c``, `LibraryCall.adapter`) with the packed calling
convention of the TVM kernels, so `model.c`'s step table calls both alike; what a library
step adds is a ``const`` struct of its parameters, passed as the adapter's ``self``.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.kernels.calls import LibraryCall, library_calls, library_scratch_bytes


@dataclass(frozen=True)
class LibraryKernel:
    """One library call as `model.c` emits it (the counterpart of `KernelSource`).

    Attributes:
        kernel: the PrimFunc name in the Relax module.
        call: the library function and its parameters.
    """

    kernel: str
    call: LibraryCall

    @property
    def symbol(self) -> str:
        """The C function the step calls (the runtime's adapter)."""
        return self.call.adapter

    @property
    def short_name(self) -> str:
        """The name profiling hooks and per-layer reports see: the library function."""
        return self.call.function

    @property
    def workspace_bytes(self) -> int:
        """Arena scratch (`compiler.kernels.calls.library_scratch_bytes`): the fused
        inverted residual's ring, none for the others."""
        return library_scratch_bytes(self.call)

    def float_usage(self) -> list[str]:
        """Floating point in the step: none (the library and its adapters compute in
        integers only; no float type appears in runtime/c/kernels)."""
        return []

    @property
    def params_name(self) -> str:
        """The C name of its parameter struct in `model.c`."""
        return f"kParams_{self.kernel}"

    def params_definition(self) -> str:
        """The ``static const`` definition of its parameter struct."""
        return (f"static const {self.call.step_type} {self.params_name} = "
                f"{self.call.c_initializer()};")


def library_kernels(mod, kernels) -> dict[str, LibraryKernel]:
    """Kernel name → `LibraryKernel` for the `kernels` of the fused `mod` that are calls of
    the library (the others are TVM's, built by `compiler.codegen.build_kernels`)."""
    return {k: LibraryKernel(k, c) for k, c in library_calls(mod, kernels).items()}
