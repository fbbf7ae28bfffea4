"""Memory techniques: graph rewrites that shrink the arena, chosen by `--optimise`.

A technique takes the integer-lowered model and returns it rewritten, with one
`TechniqueUse` per place it applied (e.g. the inverted-residual blocks it fused). Each is
registered in `TECHNIQUES` with the `OPTIMISE` modes it runs in, and the modes it runs in
only when the kernel library takes its kernels (`compiler.passes.offload_kernels`):
``size`` runs every technique; ``speed`` leaves out those that recompute MACs (patches)
or make the kernels slower, so it runs a technique whose kernel is faster than the
layers it replaces. The `--output argmax` rewrite is not a mode choice: it runs when
asked for.

Lowering improvements that cost nothing (int8 resize, padding folded into its consumer,
TVM's operator fusion) are not techniques: they apply in every mode.

Registered, in the order they run: ``patches`` (``size`` only: the high-resolution
head, input to a split tensor, as one kernel in n x n spatial patches, the split and n
chosen to minimise the arena within 10 % extra MACs, `compiler.passes.patch_stage`; it
runs first so that inverted residuals in the head join the patches), then
``fused-inverted-residual`` (one row-band kernel per block instead of three layer kernels;
expanded rows two bands share sit in a ring buffer, and when the ring cannot be made they
are expanded again, counted in ``extra_macs``). It runs in ``size`` mode, and in
``speed`` mode when the library takes the blocks (``library=True``, the default): there
every fused block becomes one `qanas_inverted_residual_s8` call
(`compiler.passes.offload_fused_blocks`), which computes each expanded row once, keeps a
ring of expanded rows instead of the expanded tensor, and has no border windows to gather
(squeezenas-small seed at 64x128, `benchmarks/mcu_whole_model.py` at commit f3aa8d9:
132.1 M -> 104.2 M instructions on cortex-m4, 56.7 M -> 25.0 M on cortex-m55, arena
245,760 -> 60,448 B; since the unfused depthwise runs its border windows on the SIMD path
the two retire about the same instructions, `benchmarks/mcu_irb.py`, and the fusion keeps
the arena four times smaller at no cost).
With TVM's kernels (``library=False``) speed mode keeps the blocks unfused: TVM's
row-band kernel is the slower one (squeezenas-small seed at 64x128 on cortex-m4: 321.6 M
instructions fused against 313.6 M unfused, arena 62,752 B against 245,760 B). The
output rewrite is ``argmax-output`` (`compiler.passes.append_argmax`: the final resize
and the argmax as one kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TechniqueUse:
    """One technique applied to one model.

    Attributes:
        technique: registered name (``"fused-inverted-residual"``, ``"argmax-output"``, ...).
        where: the blocks or kernels it rewrote, by name.
        extra_macs: MACs it adds (recomputed patch halos; 0 for exact rewrites).
        changes_graph: it removed or shrank tensors, so the layer-wise bound of the
            unfused graph must be measured on the model without it.
    """

    technique: str
    where: tuple[str, ...] = ()
    extra_macs: int = 0
    changes_graph: bool = True

    def to_dict(self) -> dict:
        """JSON-friendly form (compile.json, reports)."""
        return {"technique": self.technique, "where": list(self.where),
                "count": len(self.where), "extra_macs": self.extra_macs}


Rewrite = Callable[[object], tuple[object, tuple[str, ...], int]]
"""model → (rewritten model, where it applied, extra MACs)."""


@dataclass(frozen=True)
class Technique:
    """A registered technique: its rewrite and the `OPTIMISE` modes it runs in.

    Attributes:
        name: registered name.
        modes: the modes it always runs in.
        rewrite: the graph rewrite.
        description: one line for reports and docs.
        library_modes: further modes it runs in when the kernel library takes its
            kernels (its library kernel is faster than the layers it replaces, TVM's
            is not).
    """

    name: str
    modes: tuple[str, ...]
    rewrite: Rewrite
    description: str = ""
    library_modes: tuple[str, ...] = ()

    def runs_in(self, optimise: str, library: bool) -> bool:
        """Whether it runs in mode `optimise`, with the library offload on (`library`)."""
        return optimise in self.modes or (library and optimise in self.library_modes)


TECHNIQUES: dict[str, Technique] = {}


def register_technique(technique: Technique) -> Technique:
    """Adds `technique` to `TECHNIQUES`; a second registration of a name raises."""
    if technique.name in TECHNIQUES:
        raise ValueError(f"memory technique {technique.name!r} is registered already")
    TECHNIQUES[technique.name] = technique
    return technique


def _patch_stages(model):
    from compiler.passes.patch_stage import patch_stages

    return patch_stages(model)


register_technique(Technique(
    "patches", ("size",), _patch_stages,
    "the high-resolution head (input -> split tensor) as one kernel in n x n spatial "
    "patches; halos recomputed, counted in extra_macs (compiler.passes.patch_stage)"))


def _fuse_inverted_residuals(model):
    from compiler.passes.fuse_inverted_residual import fuse_inverted_residuals

    return fuse_inverted_residuals(model)


register_technique(Technique(
    "fused-inverted-residual", ("size",), _fuse_inverted_residuals,
    "expand -> depthwise -> project (+ residual) as one kernel in row bands; the expanded "
    "tensor never exists in full (compiler.passes.fuse_inverted_residual)",
    library_modes=("speed",)))


def _append_argmax(model):
    from compiler.passes import append_argmax

    return append_argmax(model), tuple(t.name for t in model.outputs), 0


def apply_output(model, output: str):
    """`model` with its output in the form `output` (``logits`` or ``argmax``).

    Raises:
        CompilerError: ``argmax`` of an output that is not 4-D logits of at most 256
            classes (`compiler.passes.append_argmax`).
    """
    if output == "logits":
        return model, ()
    model, where, extra = _append_argmax(model)
    return model, (TechniqueUse("argmax-output", tuple(where), int(extra)),)


def apply_techniques(model, optimise: str, output: str = "logits", library: bool = True):
    """Runs the registered techniques of mode `optimise`, then the `output` rewrite.

    `library`: the kernel library takes the int8 groups it has (`CompileOptions.library`);
    a technique of `Technique.library_modes` runs only then.

    Returns:
        (rewritten model, the `TechniqueUse`s that applied somewhere).
    """
    uses: list[TechniqueUse] = []
    for technique in TECHNIQUES.values():
        if not technique.runs_in(optimise, library):
            continue
        model, where, extra = technique.rewrite(model)
        if where:
            uses.append(TechniqueUse(technique.name, tuple(where), int(extra)))
    model, output_uses = apply_output(model, output)
    return model, tuple(uses) + tuple(output_uses)
