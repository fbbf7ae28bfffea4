"""The summary table at the top and the Protocol section at the bottom of the report."""

from __future__ import annotations

from qanas.report.fmt import nbytes, num, pct, text
from qanas.report.load import RunData
from qanas.report.model import Section, Table
from qanas.report.plotting import median

VERSION_KEYS = ("qanas", "torch", "brevitas", "tvm", "onnx", "onnxruntime", "vela", "pymoo",
                "numpy", "python", "platform")


def summary_table(run: RunData) -> Table:
    """The headline numbers of the run, each with the results.json key it comes from."""
    r = run.results
    c = run.section("chosen") or {}
    f = run.section("fidelity") or {}
    rows = [("space", text(r.get("space")), "space"), ("target", text(r.get("target")), "target")]
    if c:
        rows += [("chosen subnet", text(c.get("arch")), "chosen.arch"),
                 ("int8 mIoU / float mIoU", f"{num(c.get('miou_int8'))} / "
                  f"{num(c.get('miou_fp32'))}", "chosen.miou_int8, miou_fp32"),
                 ("MACs", num(c.get("macs")), "chosen.macs"),
                 ("arena / lower bound", f"{nbytes(c.get('arena_bytes'))} / "
                  f"{nbytes(c.get('lower_bound_bytes'))}", "chosen.arena_bytes, lower_bound_bytes"),
                 ("weights (flash)", nbytes(c.get("weights_bytes")), "chosen.weights_bytes")]
    if f:
        rows += [("deployed vs fake-quant mIoU", f"{num(f.get('miou_deployed_int8'))} vs "
                  f"{num(f.get('miou_fake_quant'))}", "fidelity"),
                 ("bit-exact vs NumPy int8 reference",
                  pct(f.get("bit_exact_fraction_integer_reference"), 3), "fidelity")]
    for fw in run.section("firmware") or []:
        if fw.get("fits", True) and fw.get("latency"):
            rows.append((f"firmware latency on {fw['target']}",
                         f"{num(median(fw['latency']))} {fw.get('unit', '')}",
                         "firmware[].latency (median)"))
        elif not fw.get("fits", True):
            rows.append((f"firmware on {fw['target']}", "does not fit", "firmware[].fits"))
    lut = run.section("lut_validation")
    for item in (lut if isinstance(lut, list) else [lut] if lut else []):
        rows.append((f"LUT MAPE on {item.get('target', '?')}", f"{num(item.get('mape'))} %",
                     "lut_validation.mape"))
    rc = run.section("rankcorr")
    if rc:
        rows.append(("rank correlation (Kendall τ)", num(rc.get("kendall_tau")),
                     "rankcorr.kendall_tau"))
    rows.append(("run time", f"{num(r.get('seconds'))} s", "seconds"))
    return Table(("quantity", "value", "results.json key"), tuple(rows))


def protocol_section(run: RunData, sections: list[Section]) -> Section:
    """Versions, seeds, target, data and host; the stages; where each figure comes from."""
    proto = run.protocol()
    sec = Section("protocol", "Protocol")
    host = proto.get("host") or {}
    size = proto.get("image_size")
    sec.tables.append(Table(("item", "value"), (
        ("run directory", str(run.run_dir)),
        ("command", text(proto.get("command"))),
        ("space", text(proto.get("space"))), ("target", text(proto.get("target"))),
        ("dataset", text(proto.get("dataset"))),
        ("image size (H × W)", f"{size[0]} × {size[1]}" if size else "—"),
        ("seed", text(proto.get("seed"))),
        ("host CPU", text(host.get("cpu")) if host else "not recorded by this run"),
        ("host cores", text(host.get("cores")) if host else "not recorded by this run"),
        ("total run time", f"{num(run.results.get('seconds'))} s"),
    ), "The run"))
    versions = proto.get("versions") or {}
    keys = [k for k in VERSION_KEYS if k in versions] + sorted(set(versions) - set(VERSION_KEYS))
    sec.tables.append(Table(("package", "version"),
                            tuple((k, text(versions[k])) for k in keys)
                            or (("versions", "not recorded by this run"),),
                            "Versions (results.json protocol.versions, else config.json)"))
    stages = run.section("stages") or []
    if stages:
        sec.tables.append(Table(("stage", "seconds", "details"), tuple(
            (text(s.get("stage")), num(s.get("seconds")),
             text({k: v for k, v in s.items() if k not in ("stage", "seconds")}))
            for s in stages), "Stages of the run, in order"))
    measurement = _measurement_rows(run)
    if measurement:
        sec.tables.append(Table(("section", "item", "value"), tuple(measurement),
                                "How the measurements were taken (as recorded by each step)"))
    figures = [fig for s in sections for fig in s.figures]
    sec.tables.append(Table(("figure", "title", "kind", "unit", "source"), tuple(
        (str(i), fig.title, fig.kind, fig.unit, fig.source)
        for i, fig in enumerate(figures, start=1)),
        "Where every figure comes from (measured: run in this run on the host or emulator; "
        "estimate: a model's prediction; derived: computed from the run's artifacts)"))
    return sec


PROTOCOL_KEYS = {
    "training": ("sampler", "batch_size", "steps_per_epoch", "optimizer", "checkpoint"),
    "search": ("metric_set", "checkpoint_sha256", "seed", "scored", "cache_hits"),
    "lut_validation": ("lut", "protocol"),
    "firmware": ("runner", "clock_hz", "warmup", "tick_unit", "toolchain", "emulator",
                 "compiler_version", "protocol"),
    "qat": ("lr", "batch_size", "protocol"),
    "npu": ("protocol",),
    "rankcorr": ("standalone", "pool"),
}
"""Keys a step may record next to its numbers that say how they were obtained."""


def _measurement_rows(run: RunData) -> list[tuple[str, str, str]]:
    rows = []
    for key, names in PROTOCOL_KEYS.items():
        value = run.section(key)
        items = value if isinstance(value, list) else [value] if value else []
        for item in items:
            if not isinstance(item, dict):
                continue
            label = f"{key} ({item['target']})" if item.get("target") else key
            rows += [(label, name, text(item[name])) for name in names
                     if item.get(name) not in (None, {}, [])]
    return rows
