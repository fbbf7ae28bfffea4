"""A seeded mutation fuzzer over tiny int8 QDQ models, and its oracle.

Each case is a seed: it picks a base model (`BASES` in `tests.support.fuzz_qdq_bases`: conv,
depthwise, gemm, matmul, add, concat, average and max pooling, resize, sigmoid, an
onnxruntime-quantized net), builds it with random weights and scales, applies zero to
two mutations (`MUTATIONS` in `tests.support.fuzz_qdq_mutations`: attributes, shapes, dtypes,
scales, per-channel lengths and activations, zero points, biases, dropped or rewired
inputs, Resize scales, opsets, IR versions) and judges what qanas does with it
(`run_case`):

* qanas refuses it with a `compiler.errors.CompilerError` subclass: fine;
* qanas compiles it (import + integer lowering, the host compile path up to code
  generation): onnxruntime must accept the model too, and the compiled model's int8
  outputs (the lowered Relax run by TVM, which is what the C kernels compute, or for a
  cheap check the NumPy integer reference) must equal onnxruntime's re-quantized
  outputs within the documented tolerance, 1 LSB (``docs/int8-arithmetic.md``);
* anything else (another exception type, a hang past the per-case timeout) is a
  finding, and so is a `CompilerStageError`: the safety net that keeps a library error
  from reaching the user raw caught it, which means a check in
  `compiler.frontend.validate` is missing.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import onnx

from tests.support.fuzz_qdq_bases import BASES
from tests.support.fuzz_qdq_mutations import MUTATIONS

#: The documented int8 tolerance against onnxruntime (docs/int8-arithmetic.md).
MAX_LSB = 1
#: Seconds one case may take before it counts as a hang.
CASE_TIMEOUT_S = 60


@dataclass(frozen=True)
class Case:
    """One fuzz case: the seed, the base model, the mutations applied and the model."""

    seed: int
    base: str
    mutations: tuple[str, ...]
    model: onnx.ModelProto

    def describe(self) -> str:
        """``seed=…, base=…, mutations=[…]``, enough to replay the case."""
        return f"seed={self.seed} base={self.base} mutations={list(self.mutations)}"


def make_case(seed: int, base: str | None = None,
              kinds: tuple[str, ...] | None = None) -> Case:
    """The case of ``seed``.

    Args:
        seed: seeds everything (weights, scales, which mutations, their values).
        base: the base model; default ``list(BASES)[seed % len(BASES)]``.
        kinds: the mutation kinds (`MUTATIONS` keys) to apply in order; default 0-2
            drawn at random. A regression case gives both, so that adding a base or a
            mutation kind later does not change it.
    """
    rng = np.random.default_rng(seed)
    base = base or list(BASES)[seed % len(BASES)]
    model = BASES[base](rng)
    if kinds is None:
        names = list(MUTATIONS)
        kinds = tuple(names[int(rng.integers(len(names)))]
                      for _ in range(int(rng.choice([0, 1, 1, 1, 2]))))
    done = tuple(MUTATIONS[kind](model, rng) for kind in kinds)
    return Case(seed, base, done, model)


# ---- oracle ------------------------------------------------------------------------------
class CaseTimeout(Exception):
    """A case ran past `CASE_TIMEOUT_S`."""


@contextmanager
def _deadline(seconds: int):
    def expire(signum, frame):
        raise CaseTimeout(f"case took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def ort_session(model: onnx.ModelProto):
    """onnxruntime with graph optimizations off: the ONNX semantics op by op.

    Its fused int8 kernels (QLinearAveragePool ...) overflow on extreme scale ratios
    that the ONNX definition and qanas compute correctly (seed 203: input scale 1e6).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Outcome:
    """What happened to a case: ``refused`` / ``compiled`` / ``finding``, and why."""

    status: str
    detail: str
    lsb: int | None = None


def _int8_feeds(lowered, rng):
    feeds_q, feeds_f = {}, {}
    for info in lowered.inputs:
        q = rng.integers(-128, 128, size=info.shape).astype(np.int8)
        feeds_q[info.name] = q
        feeds_f[info.name] = ((q.astype(np.float32) - np.float32(info.zero_point))
                              * np.float32(info.scale))
    return feeds_q, feeds_f


def _run_lowered(lowered, feeds_q: dict, engine: str, model: onnx.ModelProto) -> list:
    if engine == "reference":
        from compiler.reference import run_int8_reference

        outs = run_int8_reference(model, feeds_q)
        return [outs[o.name] for o in lowered.outputs]
    from tests.support.qdq_models import run_relax

    out = run_relax(lowered.mod, *(feeds_q[i.name] for i in lowered.inputs))
    return [out] if len(lowered.outputs) == 1 else list(out)


def run_case(case: Case, engine: str = "reference", timeout_s: int = CASE_TIMEOUT_S) -> Outcome:
    """Judges ``case`` (see the module docstring).

    Args:
        case: from `make_case`.
        engine: how a compiled case's int8 outputs are computed: ``"relax"`` runs the
            lowered module on TVM (what the C kernels compute), ``"reference"`` the NumPy
            integer reference (cheaper; it is bit-exact with the C on valid models).
        timeout_s: per-case limit before the case counts as a hang.
    """
    from compiler.errors import CompilerError, CompilerStageError
    from compiler.pipeline import resolve_model

    try:
        with _deadline(timeout_s):
            try:
                lowered = resolve_model(case.model, integer=None)  # compile's import + lowering
            except CompilerStageError as err:  # the safety net: a check is missing
                return Outcome("finding", f"unforeseen failure: {err}")
            except CompilerError as err:
                return Outcome("refused", f"{type(err).__name__}: {err}")
            try:
                sess = ort_session(case.model)
            except Exception as err:  # noqa: BLE001 - any onnxruntime refusal
                return Outcome("finding", "qanas compiled a model onnxruntime rejects: "
                               f"{' '.join(str(err).split())[:300]}")
            rng = np.random.default_rng(case.seed)
            feeds_q, feeds_f = _int8_feeds(lowered, rng)
            try:
                refs = sess.run([o.name for o in sess.get_outputs()], feeds_f)
            except Exception as err:  # noqa: BLE001 - any onnxruntime refusal
                return Outcome("finding", "qanas compiled a model onnxruntime cannot run: "
                               f"{' '.join(str(err).split())[:300]}")
            ours = _run_lowered(lowered, feeds_q, engine, case.model)
    except CaseTimeout as err:
        return Outcome("finding", f"hang: {err}")
    except Exception as err:  # noqa: BLE001 - the oracle's whole point
        return Outcome("finding", f"raw {type(err).__module__}.{type(err).__name__}: "
                       f"{' '.join(str(err).split())[:300]}")
    worst = 0
    for info, mine, ref in zip(lowered.outputs, ours, refs, strict=True):
        ref_q = np.clip(np.rint(ref.astype(np.float32) / np.float32(info.scale))
                        + info.zero_point, -128, 127)
        worst = max(worst, int(np.abs(np.asarray(mine, np.int64) - ref_q.astype(np.int64)).max()))
    if worst > MAX_LSB:
        return Outcome("finding", f"compiled, but {worst} LSB off onnxruntime", worst)
    return Outcome("compiled", "matches onnxruntime", worst)
