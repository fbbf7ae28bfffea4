"""Sections of the model side: training, search fronts, chosen subnet, QAT, LUT
validation, rank correlation and (older runs) the scored candidates."""

from __future__ import annotations

from qanas.report import search_figures as sf
from qanas.report.architecture import (
    draw_blocks,
    subnet_blocks,
    subnet_conv_bits,
    weight_bits_of,
)
from qanas.report.deploy_figures import qat_figure
from qanas.report.fmt import nbytes, num, pct, text
from qanas.report.load import RunData
from qanas.report.model import Figure, Section, Table, absent
from qanas.report.plotting import short_arch
from qanas.space.bits import BITS_SEP


def training_section(run: RunData) -> Section:
    """Loss and quick-val mIoU per epoch of the FairNAS supernet."""
    t = run.section("training")
    if t is None:
        return absent("training", "Training curves",
                      "no supernet training in this run (`qanas train-supernet`, `qanas demo`)")
    sec = Section("training", "Training curves")
    val = t.get("val_miou") or {}
    sec.tables.append(Table(("epochs", "final loss", "baseline mIoU", "val mIoU seed / min / max"),
                            ((num(t.get("epochs")), num(t.get("final_loss")),
                              num(t.get("baseline_miou")),
                              " / ".join(num(val.get(k)) for k in ("seed", "min", "max"))),)))
    history = [h for h in t.get("history") or [] if h.get("loss") is not None]
    if history:
        sec.figures.append(Figure(
            sf.training_figure(history), "Training curves",
            f"FairNAS supernet training over {len(history)} epochs: mean training loss per "
            "epoch and the quick-validation mIoU of the seed, smallest and largest subnets "
            "(float, BN recalibrated), against the majority-class baseline.",
            "loss: cross-entropy (nats); mIoU: fraction in [0, 1]",
            "results.json training.history (SupernetTrainer.fit)", "measured"))
    else:
        sec.notes.append("This run recorded no per-epoch history (training.history); only "
                         "the final figures are shown.")
    return sec


def _searches(run: RunData) -> list[dict]:
    s = run.section("search")
    if s is None:
        return []
    return list(s) if isinstance(s, list) else [s]


def search_section(run: RunData) -> Section:
    """One Pareto figure and table per searched target, the chosen subnet starred."""
    searches = _searches(run)
    if not searches:
        return absent("search", "Pareto front(s) per target",
                      "no NSGA-II / random search in this run (`qanas search`)")
    sec = Section("search", "Pareto front(s) per target")
    chosen = (run.section("chosen") or {}).get("arch")
    for s in searches:
        target = s.get("target", "?")
        star = s.get("chosen_arch") or chosen
        evaluated = s.get("evaluated") or s.get("front") or []
        sources = sorted({sf.latency_of(r)[2] for r in evaluated if sf.latency_of(r)[2]})
        units = sorted({sf.latency_of(r)[1] for r in evaluated if sf.latency_of(r)[1]})
        kind = "measured" if sources == ["measured"] else "estimate"
        hv = s.get("hypervolume")
        sec.tables.append(Table(
            ("target", "algorithm", "budget", "objectives", "constraints", "evaluated",
             "front", "hypervolume"),
            ((target, text(s.get("algo") or s.get("algorithm")), num(s.get("budget")),
              text(s.get("objectives")), text(s.get("constraints") or s.get("budgets")),
              num(len(evaluated)), num(len(s.get("front") or [])), text(hv)),)))
        if evaluated:
            sec.figures.append(Figure(
                sf.pareto_figure(s, star), f"Pareto front on {target}",
                f"Every subnet the search evaluated on {target} ({len(evaluated)}), its "
                "feasible non-dominated front, and the chosen subnet (star). mIoU is the int8 "
                "fake-quant mIoU from the supernet; latency comes from "
                f"{', '.join(sources) or 'the search rows'}.",
                f"latency: {', '.join(units) or 'see rows'}; SRAM: KiB; mIoU: fraction",
                f"results.json search (target {target})", kind))
        front = sorted(s.get("front") or [], key=lambda r: -(r.get("miou") or 0))
        if front:
            sec.tables.append(_front_table(front, star, target))
    return sec


def _front_table(front: list[dict], star: str | None, target: str) -> Table:
    """One row per front subnet; a weight-bits column when some subnet is mixed precision."""
    # Plain rows are not parsed, so a front of an older space still renders.
    bits = [weight_bits_of(r["arch"]) if BITS_SEP in r.get("arch", "") else None for r in front]
    mixed = any(b is not None for b in bits)
    rows = []
    for r, b in zip(front, bits, strict=True):
        row = (("★ " if r.get("arch") == star else "") + r.get("arch", ""),
               num(r.get("miou")), num(sf.latency_of(r)[0]), sf.latency_of(r)[1],
               sf.latency_of(r)[2], nbytes(r.get("sram_bytes")), nbytes(r.get("flash_bytes")))
        rows.append(row + ((b or "all int8",) if mixed else ()))
    header = ("arch", "int8 mIoU", "latency", "unit", "source", "SRAM", "flash")
    return Table(header + (("weight bits",) if mixed else ()), tuple(rows),
                 f"Pareto front on {target} (★ = chosen)")


def chosen_section(run: RunData) -> Section:
    """The chosen subnet's figures and its block-by-block drawing from the arch string."""
    c = run.section("chosen")
    if c is None or not c.get("arch"):
        return absent("chosen", "Chosen subnet", "no subnet was chosen and compiled in this run")
    sec = Section("chosen", "Chosen subnet, block by block")
    rows = [("architecture", c["arch"]), ("int8 mIoU (fake-quant)", num(c.get("miou_int8"))),
            ("float mIoU", num(c.get("miou_fp32"))), ("MACs", num(c.get("macs"))),
            ("parameters", num(c.get("params"))), ("weights (flash)", nbytes(c.get("weights_bytes"))),
            ("arena (SRAM)", nbytes(c.get("arena_bytes"))),
            ("arena lower bound", nbytes(c.get("lower_bound_bytes"))),
            ("kernels", num(c.get("kernels"))), ("project", text(c.get("project"))),
            ("ONNX", text(c.get("onnx"))), ("TFLite", text(c.get("tflite")))]
    bits = weight_bits_of(c["arch"])
    if bits is not None:
        rows.insert(1, ("weight bits", bits))
    sec.tables.append(Table(("quantity", "value"), tuple(rows)))
    proto = run.protocol()
    size = proto.get("image_size")
    if size is None:
        sec.notes.append("The run records no image size (protocol.image_size, config.json or "
                         "the project's compile.json), so the block diagram is not drawn.")
        return sec
    classes = run.num_classes()
    if bits is not None:
        sec.tables.append(_conv_bits_table(c["arch"], size, classes, c.get("weights_bytes")))
    blocks = subnet_blocks(c["arch"], size, classes)
    sec.figures.append(Figure(
        draw_blocks(blocks, short_arch(c["arch"], 110)), "Chosen subnet architecture",
        f"The chosen subnet drawn block by block (top = input) at {size[0]}×{size[1]} "
        f"with {classes if classes is not None else 'the space default number of'} classes: "
        "each row is one block of layers from the search space's layer_specs of the arch "
        "string, with its search choice, the kernel (k), expansion (e), groups (g), dilation "
        "(d), stride (s), residual (+res), channels and output resolution; the bar is the "
        "block's analytic MACs. Hatched rows are identity (skip) choices.",
        "channels; pixels; MACs (millions)",
        "results.json chosen.arch → qanas.space layer_specs", "derived"))
    skipped = [b.name for b in blocks if b.kind == "identity"]
    if skipped:
        sec.notes.append(f"{len(skipped)} superblock(s) chose the identity skip: "
                         f"{', '.join(skipped)}.")
    return sec


def _conv_bits_table(arch: str, size, classes: int | None, compiled: int | None) -> Table:
    """Per-conv weight bits and weight bytes of a mixed-precision chosen subnet."""
    convs = subnet_conv_bits(arch, size, classes)
    rows = [(c.name, f"{c.in_channels}→{c.out_channels}", f"{c.kernel[0]}×{c.kernel[1]}",
             num(c.groups), num(c.bits), num(c.weight_bytes), num(c.weight_bytes_int8))
            for c in convs]
    total = sum(c.weight_bytes for c in convs)
    total8 = sum(c.weight_bytes_int8 for c in convs)
    rows.append(("all convs", "", "", "", f"{sum(c.bits == 4 for c in convs)} at 4",
                 num(total), num(total8)))
    saved = 1.0 - total / total8 if total8 else None
    return Table(("conv", "channels", "kernel", "groups", "weight bits", "weight bytes",
                  "int8 bytes"), tuple(rows),
                 f"Weight bits per conv: the conv weights take {pct(saved, 1)} less than all "
                 "int8 (qanas.space.layer_bits.stored_weight_bytes, as the compiler stores "
                 "them: every 4-bit conv packed two weights per byte; biases and requantization parameters excluded). The compiled weights "
                 f"region: {nbytes(compiled)}.")


def qat_section(run: RunData) -> Section:
    """int8 mIoU of the chosen subnet before and after QAT fine-tuning."""
    q = run.section("qat")
    if q is None:
        return absent("qat", "QAT fine-tune", "no QAT fine-tune of the chosen subnet in this run")
    sec = Section("qat", "QAT fine-tune")
    before, after = q.get("miou_int8_before"), q.get("miou_int8_after")
    gain = None if before is None or after is None else after - before
    # The demo fine-tunes for a number of steps, `qanas train` for epochs.
    unit = "steps" if q.get("steps") is not None else "epochs"
    length = q.get(unit)
    sec.tables.append(Table((unit, "int8 mIoU before", "int8 mIoU after", "change"),
                            ((num(length), num(before), num(after),
                              "—" if gain is None else f"{gain:+.4f}"),)))
    fp32 = (run.section("chosen") or {}).get("miou_fp32")
    sec.figures.append(Figure(
        qat_figure(q, fp32), "QAT before/after",
        f"int8 mIoU of the chosen subnet before and after {num(length)} {unit} of "
        "quantization-aware fine-tuning, with its float mIoU.", "mIoU: fraction",
        "results.json qat", "measured"))
    return sec


def lut_section(run: RunData) -> Section:
    """Predicted vs measured latency of held-out subnets (lut_validation, one or a list)."""
    v = run.section("lut_validation")
    if v is None:
        return absent("lut_validation", "Latency table validation",
                      "no latency-table validation in this run (`qanas lut validate`)")
    sec = Section("lut_validation", "Latency table validation")
    for item in v if isinstance(v, list) else [v]:
        target = item.get("target", "?")
        sec.tables.append(Table(
            ("target", "--optimise", "subnets", "MAPE", "within ±10 %", "worst error",
             "Kendall τ", "unit"),
            ((target, text(item.get("optimise")), num(item.get("n")), f"{num(item.get('mape'))} %",
              pct(item.get("within_10"), 1), f"{num(item.get('max_ape'))} %",
              num(item.get("kendall_tau")), text(item.get("unit"))),)))
        if item.get("rows"):
            sec.figures.append(Figure(
                sf.lut_figure(item), f"LUT validation on {target}",
                f"End-to-end latency of {len(item['rows'])} held-out subnets on {target}: the "
                "per-block table's prediction (fixed part + Σ block entries) against the "
                "measurement of the compiled subnet on the target's runner; right: error per "
                "subnet (green within ±10 %).",
                f"latency: {item.get('unit', '?')}; error: percent of measured",
                "results.json lut_validation (qanas.cost.lut.table.validate_lut)",
                "measured vs estimate"))
    return sec


def rankcorr_section(run: RunData) -> Section:
    """Supernet vs standalone ranking: τ, ρ, top-k and the scatter."""
    r = run.section("rankcorr")
    if r is None:
        return absent("rankcorr", "Ranking correlation",
                      "no rank correlation in this run (`qanas rankcorr`)")
    sec = Section("rankcorr", "Ranking correlation")
    top_k = r.get("top_k_overlap", r.get("top_k")) or {}
    sec.tables.append(Table(("subnets", "Kendall τ", "Spearman ρ", "top-k overlap"),
                            ((num(r.get("n")), num(r.get("kendall_tau")),
                              num(r.get("spearman_rho")),
                              ", ".join(f"top-{k}: {pct(v, 0)}" for k, v in top_k.items())
                              or "—"),)))
    points = r.get("points") or r.get("subnets") or []
    if points:
        sec.figures.append(Figure(
            sf.rankcorr_figure(points), "Rank correlation",
            f"{len(points)} subnets spread over the front: int8 mIoU inherited from the "
            "supernet (the search's proxy) against the int8 mIoU of the same subnet trained "
            f"standalone with QAT; Kendall τ = {num(r.get('kendall_tau'))}.",
            "mIoU: fraction", "results.json rankcorr (qanas rankcorr)", "measured"))
    return sec


def candidates_section(run: RunData) -> Section | None:
    """Older runs scored a few candidates instead of searching; None when there are none."""
    cands = run.section("candidates")
    if cands is None:
        return None
    sec = Section("candidates", "Scored candidate subnets")
    chosen = (run.section("chosen") or {}).get("arch")
    sec.figures.append(Figure(
        sf.candidates_figure(cands, chosen), "Scored candidates",
        f"The {len(cands)} candidate subnets this run scored (seed, min, max and random "
        "samples): int8 fake-quant and float mIoU against analytic MACs; the star is the one "
        "compiled.", "MACs: millions; mIoU: fraction", "results.json candidates", "measured"))
    sec.tables.append(Table(("arch", "int8 mIoU", "float mIoU", "MACs", "params"),
                            tuple((("★ " if c.get("arch") == chosen else "") + c.get("arch", ""),
                                   num(c.get("miou")), num(c.get("miou_fp32")),
                                   num(c.get("macs")), num(c.get("params"))) for c in cands)))
    return sec
