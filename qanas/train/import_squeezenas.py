"""The authors' released SqueezeNAS Cityscapes weights as a qanas standalone checkpoint.

SqueezeNAS (Shaw et al., 2019) released six trained networks (`lat_small` ... `mac_xlarge`,
`qanas.space.squeezenas_published`) as plain PyTorch state dicts of their
``SqueezeNASNetCityscapes`` module. `import_squeezenas` maps each tensor of such a state
dict onto the static subnet of the matching genotype, built on the space's released-code
variant (`SqueezeNASSpace.as_released`: ReLU, align_corners=True, the 49×49 LR-ASPP gate
pool), and writes a ``qanas-standalone/1`` checkpoint that `qanas export` and `qanas eval
--checkpoint` read like one from `qanas train`. Its float outputs are the authors' model's.

Their key layout (module names of the released code):

* ``encoder.conv1.{0,1}``: stem conv and BN; ``encoder.last_conv.{0,1}``: the Small
  head conv;
* ``encoder.residuals.<i>.op.{0,1,3,4,6,7}``: an inverted residual's expansion conv/BN,
  depthwise conv/BN, projection conv/BN; a channel-changing stride-1 skip is
  ``encoder.residuals.<i>.op.op.{1,2}`` (ReLU, 1x1 conv, BN); an identity skip has no
  tensors;
* LR-ASPP: ``decoder._1x1_TL.{conv,bn}`` (conv-BN-ReLU), ``decoder._1x1_BL`` (gate conv),
  ``decoder._1x1_TR`` / ``decoder._1x1_BR`` (high / low classifiers);
* XLarge: ``decoder._1x1_1_conv``, ``decoder._3x3_{1,2,3}_conv``, ``decoder._1x1_2_conv``
  (ASPP, each ``.conv`` and ``.bn``), ``lowlevel1x1``, ``logits2.{conv,bn}``, ``logits3``.

The skip of lat_xlarge's first block is the released code's ReLU → 1x1 conv → BN on the
stem's output, which the stem's ReLU already made non-negative: our 1x1 conv → BN
computes the same. No published network has a skip elsewhere that changes the shape.

Example:
    >>> import_squeezenas("weights/lat_small.pth", "lat_small", "runs/lat_small")  # doctest: +SKIP
    {'arch': 'squeezenas-small:k3e1g1_skip_...', 'checkpoint': 'runs/lat_small/standalone.pt', ...}
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from qanas.errors import CheckpointError, ConfigError
from qanas.supernet import build_supernet

CITYSCAPES_SIZE = (1024, 2048)
"""The resolution the released networks were trained and evaluated at."""

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_IR = {"expand.0": "0", "expand.1": "1", "dw.0": "3", "dw.1": "4", "project.0": "6",
       "project.1": "7"}


def _block_pairs(space, cfg) -> list[tuple[str, str]]:
    """(our module, their module) for every superblock with weights."""
    from qanas.space.squeezenas import SKIP

    split = space.low_level_index + 1
    pairs = []
    for plan, label in zip(space.plans, cfg.labels(), strict=True):
        i = plan.index
        ours = f"low_blocks.{i}" if i < split else f"high_blocks.{i - split}"
        theirs = f"encoder.residuals.{i}.op"
        if label != SKIP:
            pairs += [(f"{ours}.{a}", f"{theirs}.{b}") for a, b in _IR.items()]
        elif plan.stride != 1:
            raise ConfigError(f"block {i}: the released stride-2 skip is a factorized reduce, "
                              "which qanas's 1x1 projection cannot hold")
        elif plan.in_channels != plan.out_channels:
            if i != 0:
                raise ConfigError(f"block {i}: the released projection skip starts with a ReLU, "
                                  "a no-op only on the stem's output (block 0)")
            pairs += [(f"{ours}.0", f"{theirs}.op.1"), (f"{ours}.1", f"{theirs}.op.2")]
    return pairs


def _decoder_pairs(space) -> list[tuple[str, str]]:
    """(our module, their module) of the head conv and the decoder."""
    pairs = [("stem.0", "encoder.conv1.0"), ("stem.1", "encoder.conv1.1")]
    if space.arch.head_channels is not None:
        pairs += [("head.0", "encoder.last_conv.0"), ("head.1", "encoder.last_conv.1")]
    if space.arch.decoder == "lraspp":
        return pairs + [("decoder.cbr.0", "decoder._1x1_TL.conv"),
                        ("decoder.cbr.1", "decoder._1x1_TL.bn"),
                        ("decoder.scale.1", "decoder._1x1_BL"),
                        ("decoder.high_classifier", "decoder._1x1_TR"),
                        ("decoder.low_classifier", "decoder._1x1_BR")]
    aspp = [("decoder.aspp.b0", "decoder._1x1_1_conv"), ("decoder.aspp.project",
                                                         "decoder._1x1_2_conv")]
    aspp += [(f"decoder.aspp.atrous.{k}", f"decoder._3x3_{k + 1}_conv") for k in range(3)]
    pairs += [(f"{a}.{j}", f"{b}.{part}") for a, b in aspp for j, part in ((0, "conv"),
                                                                          (1, "bn"))]
    return pairs + [("decoder.low_proj", "lowlevel1x1"), ("decoder.fuse.0", "logits2.conv"),
                    ("decoder.fuse.1", "logits2.bn"), ("decoder.classifier", "logits3")]


def released_key_map(space, cfg, our_keys) -> dict[str, str]:
    """Our state-dict key → the released code's key, for every key of our subnet.

    Raises:
        CheckpointError: one of our keys has no counterpart (an internal error: the
            module layout changed).
    """
    prefixes = dict(_block_pairs(space, cfg) + _decoder_pairs(space))
    mapping = {}
    for key in our_keys:
        module, _, leaf = key.rpartition(".")
        if module not in prefixes:
            raise CheckpointError(f"{key} has no counterpart in the released SqueezeNAS layout")
        mapping[key] = f"{prefixes[module]}.{leaf}"
    return mapping


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The released state dict at ``path`` (weights_only: no code runs).

    Accepts the plain dict the authors saved, and a ``{"state_dict": ...}`` wrapper;
    a ``module.`` prefix (DataParallel) is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no SqueezeNAS weights at {path}; download the authors' "
                              "weights/<arch>.pth (github.com/ashaw596/squeezenas)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path} is not a PyTorch state dict ({err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert_state_dict(state: dict[str, torch.Tensor], arch_name: str):
    """The subnet of published network `arch_name` (eval mode) loaded with `state`.

    Returns:
        (model, space, cfg, num_classes): the static subnet, the released-code space it
        was built on, its `SubnetConfig` and the classes of the weights' classifier.

    Raises:
        ConfigError: unknown `arch_name`.
        CheckpointError: a tensor is missing, has another shape (the weights of another
            network: check --arch) or is left over.
    """
    from qanas.space import get_space
    from qanas.space.squeezenas_published import published_config

    cfg = published_config(arch_name)
    space = get_space(cfg.space).as_released()
    classifier = "decoder._1x1_TR.weight" if space.arch.decoder == "lraspp" else "logits3.weight"
    if classifier not in state:
        raise CheckpointError(f"the weights have no {classifier}: not a released "
                              f"{space.name} network (is --arch {arch_name} right?)")
    num_classes = int(state[classifier].shape[0])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_supernet(space, num_classes).extract(cfg)
    ours = model.state_dict()
    mapping = released_key_map(space, cfg, ours)
    loaded = {}
    for key, theirs in mapping.items():
        if theirs not in state:
            if key.endswith("num_batches_tracked"):
                loaded[key] = ours[key]  # older PyTorch did not save the counter
                continue
            raise CheckpointError(f"the weights lack {theirs} (for {key}); they are not "
                                  f"{arch_name}'s: check --arch")
        if state[theirs].shape != ours[key].shape:
            raise CheckpointError(
                f"{theirs} has shape {tuple(state[theirs].shape)}, {arch_name} expects "
                f"{tuple(ours[key].shape)}: the weights are another network's; check --arch")
        loaded[key] = state[theirs].to(ours[key].dtype)
    unused = sorted(set(state) - set(mapping.values()))
    if unused:
        raise CheckpointError(f"{len(unused)} tensors of the weights have no place in "
                              f"{arch_name} (first: {unused[0]}); check --arch")
    model.load_state_dict(loaded)
    return model.eval(), space, cfg, num_classes


def import_squeezenas(path: str | Path, arch_name: str, out_dir: str | Path,
                      data_root: str | None = None) -> dict[str, Any]:
    """Writes ``out_dir/standalone.pt`` holding the released network `arch_name` from `path`.

    Args:
        path: the authors' ``weights/<arch>.pth``.
        arch_name: one of `qanas.space.squeezenas_published.PUBLISHED`.
        out_dir: the folder of the standalone checkpoint.
        data_root: the Cityscapes folder, recorded for calibration (`qanas export --format
            qdq|tflite` and `qanas eval --checkpoint` calibrate and score on it).

    Returns:
        {"arch", "checkpoint", "num_classes", "image_size", "macs", "params", "space_options"}.
    """
    from qanas.quant.spec import QuantSpec
    from qanas.train.standalone import CHECKPOINT_NAME, FORMAT, StandaloneConfig
    from qanas.utils.io import atomic_write

    model, space, cfg, num_classes = convert_state_dict(read_state_dict(path), arch_name)
    config = StandaloneConfig(arch=cfg.to_str(), init="imported", dataset="cityscapes",
                              data_root=data_root, image_size=CITYSCAPES_SIZE, epochs=0)
    options = space.arch_options()
    payload = {"format": FORMAT, "arch": cfg.to_str(), "num_classes": num_classes,
               "image_size": list(CITYSCAPES_SIZE), "config": config.to_dict(),
               "quant_spec": QuantSpec().to_dict(), "model": model.state_dict(),
               "qat_model": None, "history": [], "space_options": options,
               "source": {"weights": str(path), "published": arch_name}}
    ckpt = Path(out_dir) / CHECKPOINT_NAME
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(ckpt, lambda f: f.write(buf.getvalue()))
    costs = space.costs(cfg, CITYSCAPES_SIZE, num_classes)
    return {"arch": cfg.to_str(), "checkpoint": str(ckpt), "num_classes": num_classes,
            "image_size": list(CITYSCAPES_SIZE), "macs": int(costs["macs"]),
            "params": int(costs["params"]), "space_options": options}
