"""Standalone training of one subnet: float phase, then optional QAT fine-tuning.

`train_standalone` trains the static subnet of an architecture string, from scratch
or from the weights it inherits from a trained supernet (`load_supernet` +
`extract`), and returns its float and int8 validation mIoU:

1. **float phase** (`epochs`): SGD/AdamW with linear warmup + cosine decay per
   step (`qanas.train.optim`), gradient clipping, BatchNorm in train mode;
2. **QAT phase** (`qat_epochs`, only with ``qat=True``): the float result is
   BN-folded and quantized exactly as for deployment and its activation ranges
   calibrated (`qanas.quant.subnet_qat.prepare_qat`), then fine-tuned with Brevitas STE
   at `qat_lr_scale` × the float LR, again with a cosine schedule;
3. **evaluation** on the whole validation split: the float model (``miou_fp32``)
   and the int8 model (``miou``): the QAT model itself, or, without QAT, the
   post-training quantized float model (`quantize_model` + `calibrate`), which is
   what the supernet scorer measures.

A mixed-precision architecture (``space:...@w8448...``, from `qanas search --bits
w4w8`) is quantized in both phases with its per-conv weight bits
(`subnet_quant_spec`), and exports with INT4 weights.

After every epoch the state is written atomically to ``DIR/standalone.pt``
(format ``qanas-standalone/1``: arch, config, the QuantSpec trained with, float weights,
QAT weights, history),
so a crash never leaves a half-written file. An interrupted run restarts from
the beginning (no mid-run resume).

Example:
    >>> cfg = StandaloneConfig(arch="squeezenas-small:" + "_".join(["k3e6g1"] * 20),
    ...                        epochs=5, qat=True)  # doctest: +SKIP
    >>> result = train_standalone(cfg, "runs/sub0")  # doctest: +SKIP
    >>> result["miou"], result["miou_fp32"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qanas.errors import ConfigError
from qanas.utils.records import reject_unknown_keys

FORMAT = "qanas-standalone/1"
CHECKPOINT_NAME = "standalone.pt"
INITS = ("scratch", "supernet", "imported")


@dataclass(frozen=True)
class StandaloneConfig:
    """Every knob of `qanas train`, resolved.

    Attributes:
        arch: architecture string ``space:label_label_...`` (or max/min/seed with a
            supernet), optionally with per-conv weight bits (``...@w8448...``).
        init: "scratch" (fresh weights, seeded), "supernet" (inherited from `supernet`) or
            "imported" (published weights converted by `qanas import-weights`; not trained).
        supernet: checkpoint of `qanas train-supernet` (required for init="supernet";
            also supplies dataset, image size and classes when they are not given).
        dataset, data_root, image_size: the data (defaults: the supernet's, else synthetic 64x128).
        epochs: float epochs (0: skip the float phase, e.g. QAT-only from inherited weights).
        qat: fine-tune with Brevitas fake-quant after the float phase.
        qat_epochs: QAT epochs (None: max(1, epochs // 4)).
        qat_lr_scale: QAT peak LR = lr × this.
        batch_size, lr, optimizer, weight_decay, momentum, warmup_fraction, grad_clip: as
            in `TrainConfig`.
        quant_spec: `QuantSpec` dict (None: the default int8 spec).
        seed: weights (scratch), data order, calibration.
        steps_per_epoch: cap on steps per epoch (None: the whole training set).
        train_length, val_length: synthetic dataset sizes (None: its defaults).
        augment: random scale-crop/flip on training images.
        calib_batches: training batches for BN-free calibration of activation ranges.
        val_batches: cap on validation batches (None: the whole split).
    """

    arch: str
    init: str = "scratch"
    supernet: str | None = None
    dataset: str | None = None
    data_root: str | None = None
    image_size: tuple[int, int] | None = None
    epochs: int = 10
    qat: bool = False
    qat_epochs: int | None = None
    qat_lr_scale: float = 0.1
    batch_size: int = 8
    lr: float | None = None
    optimizer: str = "sgd"
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_fraction: float = 0.05
    grad_clip: float = 5.0
    quant_spec: dict | None = None
    seed: int = 0
    steps_per_epoch: int | None = None
    train_length: int | None = None
    val_length: int | None = None
    augment: bool = True
    calib_batches: int = 4
    val_batches: int | None = None

    def __post_init__(self):
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.init == "supernet" and not self.supernet:
            raise ConfigError("init='supernet' inherits weights from a supernet: pass "
                              "--supernet CKPT (or use --init scratch)")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        if int(self.epochs) < 0 or (self.qat_epochs is not None and int(self.qat_epochs) < 0):
            raise ConfigError(f"epochs must be >= 0; got epochs={self.epochs!r}, "
                              f"qat_epochs={self.qat_epochs!r}")
        if (int(self.epochs) == 0 and self.init != "imported"
                and not (self.qat and self.resolved_qat_epochs() > 0)):
            raise ConfigError("nothing to train: epochs=0 and no QAT epochs; pass --epochs N "
                              "or --qat --qat-epochs N")
        if self.qat_lr_scale <= 0:
            raise ConfigError(f"qat_lr_scale must be positive; got {self.qat_lr_scale!r}")

    def resolved_qat_epochs(self) -> int:
        """QAT epochs actually run (0 without QAT)."""
        if not self.qat:
            return 0
        return int(self.qat_epochs) if self.qat_epochs is not None else max(1, int(self.epochs) // 4)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = asdict(self)
        out["image_size"] = None if self.image_size is None else list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StandaloneConfig:
        """Inverse of `to_dict`; rejects unknown keys."""
        reject_unknown_keys(cls, data)
        return cls(**data)


def _train_config(cfg: StandaloneConfig, space: str, dataset: str, root, image_size, lr=None):
    """A `TrainConfig` carrying the data and optimizer settings (reused builders)."""
    from qanas.train.config import TrainConfig

    return TrainConfig(space=space, dataset=dataset, data_root=root, image_size=image_size,
                       batch_size=cfg.batch_size, lr=lr if lr is not None else cfg.lr,
                       optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                       momentum=cfg.momentum, warmup_fraction=cfg.warmup_fraction,
                       grad_clip=cfg.grad_clip, seed=cfg.seed, augment=cfg.augment,
                       train_length=cfg.train_length, val_length=cfg.val_length)


def build_subnet(cfg: StandaloneConfig, num_classes: int | None = None):
    """The static subnet of `cfg` (inherited or fresh) and what it was built from.

    Returns:
        (subnet, config, meta): the config is a `MixedPrecisionConfig` for an
        ``...@w84...`` architecture (see `subnet_quant_spec`); meta holds the supernet's dataset, image size and
        classes (empty for scratch without a supernet).
    """
    from qanas.quant.qat import strip_qat
    from qanas.space import get_space
    from qanas.space.bits import arch_of, parse_config
    from qanas.supernet import build_supernet
    from qanas.utils.seeding import seeded

    meta: dict[str, Any] = {}
    supernet = None
    if cfg.supernet:
        from qanas.train.checkpoint import load_supernet

        if cfg.init == "supernet":
            supernet, meta = load_supernet(cfg.supernet)
        else:
            meta = _supernet_meta(cfg.supernet)
    if meta.get("space") and not cfg.arch.startswith(f"{meta['space']}:"):
        arch = parse_config(cfg.arch, get_space(meta["space"]))  # max, seed, random:N...
    elif ":" in cfg.arch:
        arch = parse_config(cfg.arch)
    else:
        raise ConfigError(f"architecture {cfg.arch!r} has no space prefix; pass "
                          "'space:label_..._label' (or max/min/seed with --supernet)")
    if meta.get("space") and arch.space != meta["space"]:
        raise ConfigError(f"{arch} is from space {arch.space!r}, the supernet is "
                          f"{meta['space']!r}")
    classes = num_classes or meta.get("num_classes")
    if supernet is not None:
        if classes is not None and int(classes) != supernet.num_classes:
            raise ConfigError(f"the dataset has {classes} classes, the supernet {supernet.num_classes}")
        subnet = strip_qat(supernet.extract(arch_of(arch)))
    else:
        if classes is None:
            raise ConfigError("the number of classes is unknown; build the datasets first")
        with seeded(cfg.seed):  # layer constructors draw their weights from torch's RNG
            subnet = build_supernet(get_space(arch.space), int(classes)).extract(arch_of(arch))
    return subnet, arch, meta


def subnet_quant_spec(spec, arch, subnet: nn.Module, image_size, num_classes: int):
    """`spec` with the per-layer weight bits of `arch` (`QuantSpec.layer_weight_bits`).

    An all-int8 architecture returns `spec` itself; a ``...@w84...`` one is checked
    against its subnet (one digit per searchable conv, `qanas.space.bits`) and its
    4-bit convs are named in `subnet`'s module names.

    Raises:
        ConfigError: the bit string does not have one digit per searchable conv.
    """
    import dataclasses

    from qanas.quant.layer_bits import layer_weight_bits
    from qanas.space import get_space
    from qanas.space.bits import WeightBitsSpace, searched_bits

    if searched_bits(arch) is None:
        return spec
    space = WeightBitsSpace(get_space(arch.space), image_size, num_classes)
    space.validate(arch)
    return dataclasses.replace(spec, layer_weight_bits=layer_weight_bits(arch, subnet, space))


def _supernet_meta(path: str | None) -> dict[str, Any]:
    """Space, classes, image size and dataset of a supernet checkpoint ({} without one)."""
    if not path:
        return {}
    from qanas.train.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    return {k: payload.get(k) for k in ("space", "num_classes", "image_size", "dataset", "config")}


class TrainingPhase:
    """One training phase: optimizer + warmup-cosine schedule over a fixed number of steps.

    Args:
        model: the module trained (float or Brevitas fake-quant).
        tcfg: a `TrainConfig` giving optimizer, LR, warmup and gradient clipping.
        steps: optimizer steps the schedule spans.
        ignore_index: mask value excluded from the loss.
    """

    def __init__(self, model: nn.Module, tcfg, steps: int, ignore_index: int):
        from qanas.train.optim import build_optimizer, build_scheduler

        self.model, self.tcfg, self.ignore_index = model, tcfg, ignore_index
        self.optimizer = build_optimizer(model, tcfg)
        self.scheduler = build_scheduler(self.optimizer, steps, tcfg.warmup_fraction)

    def epoch(self, batches) -> float:
        """One pass over `batches` of (image, mask); returns the mean loss."""
        self.model.train()
        total, n = 0.0, 0
        for image, mask in batches:
            if not bool((mask != self.ignore_index).any()):
                continue
            self.optimizer.zero_grad(set_to_none=True)
            out = self.model(image)
            out = out.value if hasattr(out, "value") else out
            loss = F.cross_entropy(out, mask, ignore_index=self.ignore_index)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"standalone training loss became {float(loss)}; "
                                         f"lower --lr (now {self.tcfg.lr})")
            loss.backward()
            if self.tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            total += float(loss.detach())
            n += 1
        return total / max(1, n)


def train_standalone(cfg: StandaloneConfig, out_dir: str | Path, datasets=None,
                     progress=None, export_onnx: str | Path | None = None) -> dict[str, Any]:
    """Trains the subnet of `cfg` and writes ``out_dir/standalone.pt``; see the module docstring.

    Args:
        cfg: the run configuration.
        out_dir: run folder.
        datasets: optional (train, calibration, val) datasets (default: built from `cfg` and
            the supernet's metadata).
        progress: optional callable(str) receiving one line per epoch.
        export_onnx: if given, the int8 model (the QAT model, or the post-training
            quantized one) is exported there as QDQ ONNX, ready for `qanas compile`.

    Returns:
        {"arch", "miou" (int8), "miou_fp32", "epochs", "qat_epochs", "history",
        "checkpoint", "seconds", "init"} (+ "onnx" with `export_onnx`).
    """
    from qanas.data import make_loader
    from qanas.quant.brevitas_quant import calibrate, quantize_model
    from qanas.quant.spec import QuantSpec
    from qanas.quant.subnet_qat import prepare_qat
    from qanas.score.miou import evaluate_miou
    from qanas.train.trainer import build_datasets, epoch_seed
    from qanas.utils.io import atomic_write

    start = time.perf_counter()
    out_dir = Path(out_dir)
    # Data settings: explicit > the supernet's > synthetic 64x128.
    meta = _supernet_meta(cfg.supernet)
    ds_meta = meta.get("dataset") or "synthetic"
    ds_name = cfg.dataset or (ds_meta["name"] if isinstance(ds_meta, dict) else ds_meta)
    root = cfg.data_root or (ds_meta.get("root") if isinstance(ds_meta, dict) else None)
    if ds_name == "synthetic":
        root = None
    image_size = tuple(cfg.image_size or meta.get("image_size") or (64, 128))
    space_name = cfg.arch.split(":", 1)[0] if ":" in cfg.arch else meta.get("space", "?")
    tcfg = _train_config(cfg, space_name, ds_name, root, image_size)
    train_set, calib_set, val_set = datasets if datasets is not None else build_datasets(tcfg)
    num_classes = int(train_set.num_classes)
    ignore = int(getattr(train_set, "ignore_index", 255))
    subnet, arch, _ = build_subnet(cfg, num_classes)

    def loader(ds, shuffle, seed):
        return make_loader(ds, batch_size=cfg.batch_size, shuffle=shuffle, seed=seed,
                           drop_last=shuffle)

    steps = len(loader(train_set, True, 0))
    if steps == 0:
        raise ConfigError(f"the training set has {len(train_set)} samples, fewer than one batch "
                          f"of {cfg.batch_size}; lower --batch-size")
    steps = min(steps, cfg.steps_per_epoch or steps)
    calib = list(islice(iter(loader(calib_set, False, 0)), max(1, cfg.calib_batches)))
    val = list(islice(iter(loader(val_set, False, 0)), cfg.val_batches))
    spec = subnet_quant_spec(QuantSpec.from_dict(cfg.quant_spec) if cfg.quant_spec else
                             QuantSpec(), arch, subnet, image_size, num_classes)
    history: list[dict] = []
    ckpt = out_dir / CHECKPOINT_NAME

    def save(float_model, qat_model=None):
        import io

        payload = {"format": FORMAT, "arch": arch.to_str(), "num_classes": num_classes,
                   "image_size": list(image_size), "config": cfg.to_dict(),
                   "quant_spec": spec.to_dict(),
                   "model": float_model.state_dict(),
                   "qat_model": None if qat_model is None else qat_model.state_dict(),
                   "history": history}
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write(ckpt, lambda f: f.write(buf.getvalue()))

    def batches(epoch: int):
        return islice(iter(loader(train_set, True, epoch_seed(cfg.seed, epoch))), steps)

    if cfg.epochs > 0:
        loop = TrainingPhase(subnet, tcfg, steps * cfg.epochs, ignore)
        for e in range(cfg.epochs):
            loss = loop.epoch(batches(e))
            history.append({"phase": "float", "epoch": e + 1, "loss": loss})
            save(subnet)
            if progress:
                progress(f"{arch} float epoch {e + 1}/{cfg.epochs} loss {loss:.4f}")
    subnet.eval()
    fp32 = evaluate_miou(subnet, val, num_classes, ignore)["miou"]
    qat_epochs = cfg.resolved_qat_epochs()
    if cfg.qat and qat_epochs > 0:
        qmodel = prepare_qat(subnet, spec, calib)
        qcfg = _train_config(cfg, space_name, ds_name, root, image_size,
                             lr=tcfg.lr * cfg.qat_lr_scale)
        loop = TrainingPhase(qmodel, qcfg, steps * qat_epochs, ignore)
        for e in range(qat_epochs):
            loss = loop.epoch(batches(cfg.epochs + e))
            history.append({"phase": "qat", "epoch": e + 1, "loss": loss})
            save(subnet, qmodel)
            if progress:
                progress(f"{arch} QAT epoch {e + 1}/{qat_epochs} loss {loss:.4f}")
        qmodel.eval()
    else:
        qmodel = quantize_model(subnet, spec)
        calibrate(qmodel, calib, max_batches=spec.calibration_batches)
    with torch.no_grad():
        int8 = evaluate_miou(qmodel, val, num_classes, ignore)["miou"]
    save(subnet, qmodel if cfg.qat and qat_epochs > 0 else None)
    result = {"arch": arch.to_str(), "miou": _num(int8), "miou_fp32": _num(fp32),
              "epochs": cfg.epochs, "qat_epochs": qat_epochs, "init": cfg.init,
              "quantized": "qat" if cfg.qat and qat_epochs > 0 else "ptq",
              "history": history, "checkpoint": str(ckpt),
              "seconds": round(time.perf_counter() - start, 3)}
    if export_onnx is not None:
        from qanas.quant import export_qdq

        example = val[0][0][:1] if val else next(iter(calib))[0][:1]
        result["onnx"] = str(export_qdq(qmodel.eval(), example, export_onnx))
    return result


def _num(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def load_standalone(path: str | Path) -> dict[str, Any]:
    """Reads a ``qanas-standalone/1`` checkpoint (weights_only, so no code runs)."""
    from qanas.errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no standalone checkpoint at {path}; train one with `qanas train`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (written by `qanas train`)")
    return payload
