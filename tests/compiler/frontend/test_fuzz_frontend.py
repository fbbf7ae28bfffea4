"""The seeded QDQ mutation fuzzer (`tests.support.fuzz_qdq`): refused by name, or compiled and
right.

Tiers:

* default: the regression table below plus `DEFAULT_CASES` fresh seeds, judged with
  the NumPy integer reference as the cheap engine (about 0.05 s a case on one core);
* ``slow``: `SLOW_CASES` more seeds, and a sample of the compiled cases built into a
  real host C project, run, and compared with onnxruntime (the same 1 LSB bar).

A case that fails is a finding: add its seed to `REGRESSIONS` with what it found
and the fix, so it is replayed in the default tier forever.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.fuzz_qdq import BASES, MAX_LSB, Case, make_case, run_case

#: Fresh seeds in the default tier (measured: 400 in 13-19 s on one core).
DEFAULT_CASES = 400
#: Seeds in the slow tier, after the default ones (measured: 3000 in 93-132 s on one core).
SLOW_CASES = 3000
#: Compiled cases of the slow tier built as host C projects and run (measured: 31-38 s).
C_SAMPLE = 20

#: Findings kept as regression cases: (seed, base, mutation kinds, the status the case
#: must now have, what it found once and the fix). The base and kinds are explicit, so
#: adding a base or a mutation kind to the fuzzer does not change these cases.
REGRESSIONS = [
    (0, "avgpool", ("scale",), "compiled",
     "input scale 1e6: optimized onnxruntime overflows in its fused QLinearAveragePool "
     "(255 LSB off); fix: the oracle runs onnxruntime op by op"),
    (0, "concat", ("drop_input",), "refused",
     "Concat with an empty input name: KeyError in the importer; fix: required inputs "
     "present (validate)"),
    (161, "gemm", ("rewire",), "refused",
     "Gemm bias rewired to an activation: Relax reshape ValueError; fix: Gemm bias shape"),
    (779, "conv", ("rewire",), "refused",
     "Conv bias rewired to a 4-D activation: Relax reshape ValueError; fix: Conv bias shape"),
    (629, "conv", ("rewire",), "refused",
     "Conv weight rewired to a 1-D tensor: TVM conv2d type error; fix: Conv weight rank"),
    (2, "concat", ("opset",), "refused",
     "opset 28 compiled, but onnxruntime has no QuantizeLinear-28; fix: MAX_OPSET 27"),
    (19, "depthwise", ("drop_input",), "compiled",
     "Clip with min only (torch.clamp(min=0)): qmax wrapped to INT64_MIN, 186 LSB off; "
     "fix: int8.quantize saturates before the int64 cast"),
]


def _findings(seeds, engine: str = "reference") -> tuple[list[str], dict[str, int]]:
    findings, counts = [], {"refused": 0, "compiled": 0, "finding": 0}
    for seed in seeds:
        case = make_case(seed)
        outcome = run_case(case, engine)
        counts[outcome.status] += 1
        if outcome.status == "finding":
            findings.append(f"{case.describe()}: {outcome.detail}")
    return findings, counts


@pytest.mark.parametrize("seed, base, kinds, status, history", REGRESSIONS,
                         ids=[f"{r[1]}-{'-'.join(r[2])}-{r[0]}" for r in REGRESSIONS])
def test_fuzz_regression(seed, base, kinds, status, history):
    case = make_case(seed, base, kinds)
    outcome = run_case(case)
    assert outcome.status == status, f"{case.describe()} (once: {history}): {outcome.detail}"


def test_fuzz_default_tier():
    findings, counts = _findings(range(DEFAULT_CASES))
    assert not findings, "\n".join(findings)
    # The fuzzer must exercise both branches of the oracle, not only refusals.
    assert counts["compiled"] >= DEFAULT_CASES // 5 and counts["refused"] >= DEFAULT_CASES // 5, \
        counts


@pytest.mark.parametrize("name", list(BASES))
def test_every_unmutated_base_compiles_and_matches(name):
    case = Case(0, name, (), BASES[name](np.random.default_rng(0)))
    outcome = run_case(case)
    assert outcome.status == "compiled" and outcome.lsb <= MAX_LSB, outcome


@pytest.mark.slow
def test_fuzz_slow_tier():
    findings, counts = _findings(range(DEFAULT_CASES, DEFAULT_CASES + SLOW_CASES))
    assert not findings, "\n".join(findings)
    assert counts["compiled"] >= SLOW_CASES // 5, counts


@pytest.mark.slow
def test_fuzz_compiled_sample_runs_as_host_c(tmp_path):
    """A sample of compiled (mutated) cases, built and run as C on the host vs onnxruntime."""
    from compiler.driver import compile_model
    from runtime.runners import get_runner
    from tests.support.fuzz_qdq import ort_session
    from tests.support.tools import require_tools

    require_tools("gcc", "make")
    done = 0
    for seed in range(DEFAULT_CASES, DEFAULT_CASES + SLOW_CASES):
        case = make_case(seed)
        if not case.mutations or run_case(case).status != "compiled":
            continue
        out = tmp_path / f"case{seed}"
        result = compile_model(case.model, "host", out)
        rng = np.random.default_rng(seed)
        feeds_q, feeds_f = {}, {}
        for spec in result.io["inputs"]:
            q = rng.integers(-128, 128, size=spec["shape"]).astype(spec["dtype"])
            feeds_q[spec["name"]] = q
            feeds_f[spec["name"]] = ((q.astype(np.float32) - np.float32(spec["zero_point"]))
                                     * np.float32(spec["scale"]))
        ours = get_runner("host").run(out, feeds_q).outputs
        refs = ort_session(case.model).run([o["name"] for o in result.io["outputs"]], feeds_f)
        for spec, ref in zip(result.io["outputs"], refs, strict=True):
            ref_q = np.clip(np.rint(ref / np.float32(spec["scale"])) + spec["zero_point"],
                            -128, 127)
            worst = int(np.abs(ours[spec["name"]].astype(np.int64) - ref_q).max())
            assert worst <= MAX_LSB, f"{case.describe()}: host C {worst} LSB off onnxruntime"
        done += 1
        if done == C_SAMPLE:
            break
    assert done == C_SAMPLE, f"only {done} compiled mutated cases in the slow range"
