"""Scoring one subnet of a trained supernet: float and int8 mIoU, MACs and parameters.

`score_subnet` extracts the subnet, re-estimates its BatchNorm statistics on a
few training batches, measures float mIoU on a fraction of the validation set,
then folds BatchNorm, quantizes it as `QuantSpec` says, calibrates the activation
ranges on training batches and measures the quantized mIoU on the same validation
fraction. The batches are materialised once (`cache_batches`) so that scoring many
subnets re-reads no data: `SubnetScorer` holds them.

Two engines quantize, with the same result (bit-identical logits, tested in
`tests/qanas/quant/test_quant_graph.py`): "lean" (the default) plans the quantized graph of the
subnet (`qanas.quant.quant_graph`) and runs it in plain torch ops
(`qanas.quant.quant_model`), about 7x cheaper per subnet at 64x128; "brevitas" builds the
Brevitas model (`quantize_model` + `calibrate`), which is also what `quantize`
returns for the QDQ export. A subnet the lean graph does not model is scored with
Brevitas.

Example:
    >>> scorer = SubnetScorer(supernet, train_loader, val_loader, QuantSpec())  # doctest: +SKIP
    >>> scorer.score(space.resolve("seed")).miou  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from itertools import islice

import torch
from torch import nn

from qanas.errors import ConfigError
from qanas.quant.brevitas_quant import calibrate, quantize_model
from qanas.quant.quant_graph import UnsupportedGraph
from qanas.quant.quant_model import quantize_fast
from qanas.quant.spec import QuantSpec
from qanas.score.bn import recalibrate_bn
from qanas.score.miou import evaluate_miou
from qanas.space.base import SubnetConfig
from qanas.supernet.base import Supernet

DEFAULT_BN_BATCHES = 4
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_EVAL_BATCH = 64
"""Images per evaluation forward pass (validation batches are merged up to this size)."""
ENGINES = ("lean", "brevitas")
"""How `SubnetScorer.score` quantizes: the lean quantized graph, or Brevitas modules."""

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SubnetScore:
    """The score of one subnet.

    Attributes:
        arch: the architecture string.
        miou: mIoU of the deployed model: int8 fake-quant, or float when no spec.
        miou_fp32: float mIoU after BN recalibration, for comparison.
        macs, params: analytic counts from the space's layer specs.
        seconds: wall time of the scoring.
        per_class: per-class IoU of `miou` (None for absent classes).
        quant: the `QuantSpec` as a dict, or None for float scoring.
    """

    arch: str
    miou: float
    miou_fp32: float
    macs: int
    params: int
    seconds: float
    per_class: tuple[float | None, ...] = field(default=())
    quant: dict | None = None

    def to_dict(self) -> dict:
        """JSON-friendly form (NaN mIoU becomes None)."""
        out = asdict(self)
        out["per_class"] = list(self.per_class)
        for key in ("miou", "miou_fp32"):
            if isinstance(out[key], float) and math.isnan(out[key]):
                out[key] = None
        return out


def cache_batches(batches: Iterable, limit: int | None = None) -> tuple[Batch, ...]:
    """Materialises up to `limit` `(image, mask)` batches (all if None) into a tuple.

    Tuples are returned unchanged (already cached), so callers can pass either.
    """
    if isinstance(batches, tuple) and (limit is None or len(batches) <= limit):
        return batches
    return tuple(islice(iter(batches), limit))


def merge_batches(batches: Iterable, max_images: int) -> tuple[Batch, ...]:
    """Concatenates consecutive `(image, mask)` batches into batches of up to `max_images`.

    Brevitas's fake quantization runs hundreds of small ops per forward; fewer,
    larger batches amortise their overhead (about 20 % of the int8 evaluation time at
    64x128, 8 -> 32 images; float evaluation does not gain and keeps its batches).
    Predictions can still depend on the batching: the float convolutions under the
    fake quantization reduce in a batch-size-dependent order, and a value within an
    ulp of a rounding tie can round the other way.
    """
    merged: list[Batch] = []
    images: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    count = 0
    for image, mask in batches:
        if images and count + int(image.shape[0]) > max_images:
            merged.append((torch.cat(images), torch.cat(masks)))
            images, masks, count = [], [], 0
        images.append(image)
        masks.append(mask)
        count += int(image.shape[0])
    if images:
        merged.append((torch.cat(images), torch.cat(masks)))
    return tuple(merged)


def val_subset(loader: Iterable, fraction: float) -> tuple[Batch, ...]:
    """The first `ceil(fraction * len(loader))` batches of a (non-shuffled) loader.

    Raises:
        ConfigError: if `fraction` is not in (0, 1].
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1], e.g. 0.2; got {fraction!r}")
    try:
        total = len(loader)  # type: ignore[arg-type]
    except TypeError:
        batches = cache_batches(loader)
        total = len(batches)
        return batches[:max(1, math.ceil(fraction * total))]
    return cache_batches(loader, max(1, math.ceil(fraction * total)))


class SubnetScorer:
    """Scores subnets of one supernet on cached training and validation batches.

    Args:
        supernet: the trained supernet (its `extract` gives static subnets).
        train_batches: `(image, mask)` batches for BN recalibration and activation
            calibration (the first `bn_batches` are kept).
        val_batches: validation `(image, mask)` batches; a loader is cut to
            `fraction` of its batches, a tuple is used as is.
        spec: the quantization spec, or None to score in float only.
        fraction: share of the validation loader used.
        bn_batches: training batches used for BN recalibration.
        ignore_index: mask value of unlabelled pixels.
        image_size: `(H, W)` for MAC counts (default: the training images' size).
        eval_batch: validation images per fake-quant forward pass (validation batches
            are merged up to it, see `merge_batches`).
        engine: "lean" (default) or "brevitas", see the module docstring; both give
            the same scores.
    """

    def __init__(self, supernet: Supernet, train_batches: Iterable, val_batches: Iterable,
                 spec: QuantSpec | None = None, fraction: float = DEFAULT_VAL_FRACTION,
                 bn_batches: int = DEFAULT_BN_BATCHES, ignore_index: int = 255,
                 image_size: tuple[int, int] | None = None,
                 eval_batch: int = DEFAULT_EVAL_BATCH, engine: str = "lean"):
        if engine not in ENGINES:
            raise ConfigError(f"scoring engine must be one of {', '.join(ENGINES)}; "
                              f"got {engine!r}")
        self.engine = engine
        self.lean_fallbacks = 0
        self.supernet = supernet
        self.spec = spec
        need = max(bn_batches, spec.calibration_batches if spec else 0)
        self.train_batches = cache_batches(train_batches, need)
        if not self.train_batches:
            raise ConfigError("scoring needs at least one training batch for BN recalibration")
        self.val_batches = (val_batches if isinstance(val_batches, tuple)
                            else val_subset(val_batches, fraction))
        if not self.val_batches:
            raise ConfigError("scoring needs at least one validation batch")
        self.eval_batches = merge_batches(self.val_batches, eval_batch)
        self.bn_batches = bn_batches
        self.ignore_index = ignore_index
        first = self.train_batches[0][0]
        self.image_size = tuple(image_size) if image_size else tuple(first.shape[-2:])

    def prepare(self, cfg: SubnetConfig) -> nn.Module:
        """The extracted subnet of `cfg` with recalibrated BatchNorm, in eval mode."""
        subnet = self.supernet.extract(cfg)
        recalibrate_bn(subnet, self.train_batches[:self.bn_batches])
        return subnet.eval()

    def _spec(self, spec: QuantSpec | None) -> QuantSpec:
        """`spec`, else this scorer's; `ConfigError` when neither is given."""
        spec = spec if spec is not None else self.spec
        if spec is None:
            raise ConfigError("this scorer has no QuantSpec; it scores in float only "
                              "(pass spec= to quantize with one)")
        return spec

    def quantize(self, subnet: nn.Module, copy_model: bool = True,
                 spec: QuantSpec | None = None) -> nn.Module:
        """The calibrated Brevitas fake-quant model of a prepared subnet.

        `spec` overrides this scorer's (e.g. one with a subnet's per-layer weight bits);
        `copy_model=False` folds BatchNorm into `subnet` itself (when it is discarded after).
        """
        spec = self._spec(spec)
        qmodel = quantize_model(subnet, spec, copy_model=copy_model)
        calibrate(qmodel, self.train_batches, max_batches=spec.calibration_batches)
        return qmodel

    def quantize_for_scoring(self, subnet: nn.Module, spec: QuantSpec | None = None) -> nn.Module:
        """The calibrated fake-quant model the score is measured on (this scorer's engine).

        `spec` overrides this scorer's. The lean model reads `subnet`'s weights without
        changing them; the Brevitas one folds BatchNorm into `subnet` in place. Either way
        `subnet` is not used after.
        """
        spec = self._spec(spec)
        if self.engine == "lean":
            try:
                qmodel = quantize_fast(subnet, spec)
            except UnsupportedGraph:
                self.lean_fallbacks += 1
            else:
                qmodel.calibrate(self.train_batches, max_batches=spec.calibration_batches)
                return qmodel
        return self.quantize(subnet, copy_model=False, spec=spec)

    def score(self, cfg: SubnetConfig, spec: QuantSpec | None = None) -> SubnetScore:
        """Scores one subnet (see the module docstring for the steps).

        `spec` quantizes with another spec than this scorer's (a mixed-precision
        subnet's per-layer weight bits, `qanas.search.bits.BitsEvaluator`); without
        either the score is float only.
        """
        from targets.cost import total_macs, total_params

        start = time.perf_counter()
        num_classes = self.supernet.num_classes
        spec = spec if spec is not None else self.spec
        with torch.no_grad():
            subnet = self.prepare(cfg)
            with torch.inference_mode():
                fp32 = evaluate_miou(subnet, self.val_batches, num_classes, self.ignore_index)
            result = fp32
            if spec is not None:
                qmodel = self.quantize_for_scoring(subnet, spec)
                with torch.inference_mode():
                    result = evaluate_miou(qmodel, self.eval_batches, num_classes,
                                           self.ignore_index)
        layers = self.supernet.space.layer_specs(cfg, self.image_size)
        return SubnetScore(
            arch=cfg.to_str(),
            miou=result["miou"],
            miou_fp32=fp32["miou"],
            macs=int(total_macs(layers)),
            params=int(total_params(layers)),
            seconds=time.perf_counter() - start,
            per_class=tuple(result["per_class_iou"]),
            quant=spec.to_dict() if spec is not None else None,
        )


def score_subnet(supernet: Supernet, cfg: SubnetConfig, train_batches: Iterable,
                 val_loader: Iterable, spec: QuantSpec | None = None,
                 fraction: float = DEFAULT_VAL_FRACTION, **kwargs) -> SubnetScore:
    """Scores one subnet; see `SubnetScorer` for the arguments.

    For repeated scoring build one `SubnetScorer` (or pass tuples from
    `cache_batches` / `val_subset`), so batches are loaded once.
    """
    return SubnetScorer(supernet, train_batches, val_loader, spec, fraction, **kwargs).score(cfg)
