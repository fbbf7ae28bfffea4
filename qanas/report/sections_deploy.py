"""Sections of the deployment side: arena memory, firmware runs, fidelity, NPU estimate."""

from __future__ import annotations

from qanas.report import deploy_figures as df
from qanas.report.fmt import nbytes, num, pct, text
from qanas.report.load import RunData
from qanas.report.memory import memory_profile, technique_rows
from qanas.report.model import Figure, Section, Table, absent
from qanas.report.plotting import median


def target_capacity(name: str) -> tuple[int | None, int | None]:
    """(SRAM bytes, weights-region bytes) of a registered target; (None, None) if unknown."""
    from qanas.cost.hardware import target_budgets
    from targets import get_target
    from targets.registry import UnknownNameError

    try:
        budgets = target_budgets(get_target(name))
    except UnknownNameError:
        return None, None
    return budgets["sram_bytes"], budgets["flash_bytes"]


def memory_section(run: RunData) -> Section:
    """Arena vs lower bound and live bytes over the schedule (plan.json, else results)."""
    given = run.section("memory") or {}
    if run.plan is None and not given:
        return absent("memory", "Arena vs lower bound",
                      "no memory plan: neither results.json memory nor the chosen project's "
                      "plan.json")
    sec = Section("memory", "Arena vs lower bound")
    target = run.results.get("target")
    sram = target_capacity(target)[0] if target else None
    if run.plan is None:
        sec.tables.append(Table(("quantity", "value"), tuple(
            (k, nbytes(v) if k.endswith("_bytes") else text(v)) for k, v in given.items())))
        sec.notes.append("The compiled project (plan.json) is not in the run directory, so "
                         "the per-kernel profile is not drawn.")
        return sec
    profile = memory_profile(run.plan)
    ratio = profile.arena_bytes / profile.lower_bound_bytes if profile.lower_bound_bytes else 1.0
    sec.tables.append(Table(("quantity", "value"), (
        ("planned arena", nbytes(profile.arena_bytes)),
        ("lower bound (compiler)", nbytes(profile.lower_bound_bytes)),
        ("lower bound (recomputed from plan.json lifetimes)",
         nbytes(profile.recomputed_lower_bound)),
        ("arena / lower bound", f"{ratio:.4f}"),
        ("planner", profile.planner),
        ("kernel calls", num(len(profile.kernels))),
        ("arena buffers", num(len(profile.placements))),
        ("peak at kernel call", f"{profile.peak_step} ({profile.kernels[profile.peak_step]})"
         if profile.kernels else "—"),
        (f"SRAM of {target}", nbytes(sram)),
        *technique_rows(run.compile_info),
    )))
    if profile.recomputed_lower_bound != profile.lower_bound_bytes:
        sec.notes.append(f"Warning: the lower bound recomputed from the buffer lifetimes "
                         f"({profile.recomputed_lower_bound} B) differs from the compiler's "
                         f"({profile.lower_bound_bytes} B).")
    sec.figures.append(Figure(
        df.memory_figure(profile), "Arena memory over the schedule",
        f"Top: bytes of arena buffers (activations, I/O, kernel scratch; 16-byte aligned) live "
        f"at each of the {len(profile.kernels)} kernel calls, against the planned arena "
        f"({profile.arena_bytes:,} B, {profile.planner} planner) and the lower bound "
        f"({profile.lower_bound_bytes:,} B). Bottom: the memory map, one rectangle per buffer "
        "(lifetime × offset range).", "KiB (1024 bytes); kernel call index",
        f"{run.project}/plan.json (compiler memory plan)", "derived"))
    return sec


def firmware_section(run: RunData) -> Section:
    """Per-target latency, per-kernel latency and SRAM/flash of the firmware runs."""
    rows = run.section("firmware")
    if rows is None:
        return absent("firmware", "Firmware: latency and memory per target",
                      "no firmware runs in this run (`qanas run --runner qemu`, `qanas demo`)")
    sec = Section("firmware", "Firmware: latency and memory per target")
    table = []
    for r in rows:
        if not r.get("fits", True):
            table.append((r["target"], "no: " + text(r.get("reason")),) + ("—",) * 10)
            continue
        mem = r.get("sram_bytes") or {}
        lat = r.get("latency") or []
        table.append((r["target"], "yes", num(median(lat)) if lat else "—",
                      text(r.get("unit")), num(len(lat)), num(r.get("repeatable")),
                      num(r.get("outputs_match_host")), nbytes(r.get("flash_bytes")),
                      nbytes(mem.get("arena")), nbytes(mem.get("static")),
                      nbytes(mem.get("stack_peak")), nbytes(mem.get("stack_reserved"))))
    sec.tables.append(Table(("target", "fits", "median latency", "unit", "runs", "repeatable",
                             "outputs = host", "flash", "arena", "static SRAM", "stack peak",
                             "stack reserved"), tuple(table)))
    ran = [r for r in rows if r.get("fits", True) and r.get("latency")]
    units = ", ".join(sorted({str(r.get("unit")) for r in ran}))
    if ran:
        sec.figures.append(Figure(
            df.firmware_latency_figure(ran), "Firmware latency per target",
            "Median end-to-end latency of one inference of the chosen subnet's firmware on "
            f"each target ({', '.join(r['target'] for r in ran)}).", f"latency: {units}",
            "results.json firmware[].latency (runtime runners)", "measured"))
        capacity = {r["target"]: target_capacity(r["target"]) for r in ran}
        sec.figures.append(Figure(
            df.firmware_memory_figure(ran, capacity), "Firmware SRAM and flash",
            "SRAM of the firmware (arena + static data + measured stack peak) and its flash "
            "image, per target; black bars are the target's SRAM and the region its weights "
            "are linked into (targets registry).", "KiB (1024 bytes)",
            "results.json firmware[].sram_bytes / flash_bytes; targets registry", "measured"))
    layered = [r for r in ran if r.get("layers")]
    if layered:
        profile = memory_profile(run.plan) if run.plan is not None else None
        sec.figures.append(Figure(
            df.firmware_layers_figure(layered, profile), "Per-kernel latency and memory",
            "Latency of every kernel call of the firmware, per target, coloured by kernel "
            "family; bottom: arena bytes live at the same kernel call.",
            f"latency: {units}; memory: KiB",
            "results.json firmware[].layers (profile_layers=True); plan.json", "measured"))
        sec.tables.append(_top_kernels(layered[0]))
        attention = _attention_kernels(layered[0])
        if attention is not None:
            sec.tables.append(attention)
    elif ran:
        sec.notes.append("The firmware ran without per-layer profiling (firmware[].layers is "
                         "empty): run the firmware with profile_layers=True to get it.")
    return sec


def _top_kernels(row: dict, k: int = 10) -> Table:
    layers = sorted(row["layers"], key=lambda layer: -layer["value"])
    total = sum(layer["value"] for layer in layers) or 1.0
    return Table(("kernel call", "kernel", f"latency ({row.get('unit', '')})", "share"),
                 tuple((num(layer["index"]), layer["kernel"], num(layer["value"]),
                        pct(layer["value"] / total, 1)) for layer in layers[:k]),
                 f"The {min(k, len(layers))} slowest kernels on {row['target']}")


ATTENTION_OPS = ("matmul", "softmax")
"""Kernel-name parts of the attention steps: the int8 products Q·Kᵀ and A·V (the library's
``qanas_matmul_s8`` or a fused TVM ``matmul`` kernel) and the integer softmax."""


def _attention_kernels(row: dict) -> Table | None:
    """Every attention step of a profiled firmware run with its latency; None without any."""
    layers = [layer for layer in row["layers"]
              if any(op in layer["kernel"] for op in ATTENTION_OPS)]
    if not layers:
        return None
    total = sum(layer["value"] for layer in row["layers"]) or 1.0
    spent = sum(layer["value"] for layer in layers)
    unit = row.get("unit", "")
    return Table(("kernel call", "kernel", f"latency ({unit})", "share"),
                 tuple((num(layer["index"]), layer["kernel"], num(layer["value"]),
                        pct(layer["value"] / total, 2)) for layer in layers),
                 f"Attention steps on {row['target']} (matmul, softmax): {len(layers)} kernel "
                 f"calls, {num(spent)} {unit}, {pct(spent / total, 2)} of the inference")


def fidelity_section(run: RunData) -> Section:
    """Deployed integer vs fake-quant mIoU and bit-exactness of the compiled C."""
    f = run.section("fidelity")
    if f is None:
        return absent("fidelity", "Fidelity: fake-quant vs deployed integer",
                      "no host fidelity check in this run (`qanas demo`)")
    sec = Section("fidelity", "Fidelity: fake-quant vs deployed integer")
    sec.tables.append(Table(("quantity", "value"), (
        ("images", num(f.get("images"))),
        ("mIoU fake-quant (Brevitas)", num(f.get("miou_fake_quant"))),
        ("mIoU deployed int8 (compiled C)", num(f.get("miou_deployed_int8"))),
        ("bit-exact vs " + text(f.get("reference")), pct(f.get("bit_exact_fraction"), 3)),
        ("max difference", f"{num(f.get('max_lsb_diff'))} LSB"),
        ("bit-exact vs " + text(f.get("integer_reference")),
         pct(f.get("bit_exact_fraction_integer_reference"), 3)),
        ("host latency (median)", f"{num(f.get('host_latency_s_median'))} s"),
    )))
    fp32 = (run.section("chosen") or {}).get("miou_fp32")
    sec.figures.append(Figure(
        df.fidelity_figure(f, fp32), "Fidelity",
        f"Left: mIoU on {num(f.get('images'))} validation images of the float subnet, its "
        "Brevitas fake-quant int8 model and the compiled integer-only C run on the host. "
        "Right: share of int8 output elements equal to the references.",
        "mIoU: fraction; bit-exact: percent of output elements",
        "results.json fidelity (qanas.demo.host_fidelity)", "measured"))
    return sec


def npu_section(run: RunData) -> Section:
    """The NPU (Vela) estimate: cycles, latency, memory and operators left on the CPU."""
    n = run.section("npu")
    if n is None:
        return absent("npu", "NPU estimate", "no NPU (TFLite + Vela) estimate in this run")
    sec = Section("npu", "NPU estimate")
    for item in n if isinstance(n, list) else [n]:
        sec.tables.append(Table(("quantity", "value"), (
            ("target", text(item.get("target"))),
            ("kind", "estimate (compiler performance model)" if item.get("estimate", True)
             else "measured"),
            ("cycles", num(item.get("cycles"))), ("latency", f"{num(item.get('latency_s'))} s"),
            ("SRAM", nbytes(item.get("sram_bytes"))), ("flash", nbytes(item.get("flash_bytes"))),
            ("operators on the CPU", text(item.get("cpu_fallback")) or "none"),
            ("protocol", text(item.get("protocol"))),
        )))
    if any((i.get("estimate", True)) for i in (n if isinstance(n, list) else [n])):
        sec.notes.append("These NPU figures are Vela's estimates, not measurements on an NPU.")
    return sec
