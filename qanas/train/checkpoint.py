"""Supernet checkpoints: atomic save, validated load, and supernet reconstruction.

Format "qanas-supernet/1" is a dict saved with `torch.save`:

    {"format", "space", "num_classes", "image_size", "dataset", "model",
     "optimizer", "scheduler", "epoch", "step",
     "rng": {"torch", "numpy", "python", "sampler"}, "config", "history",
     "qat", "quant_spec"}

plus "epoch_progress" = {"epoch", "batches", "loss_total", "loss_steps"} in a
checkpoint written in the middle of an epoch (`SupernetTrainer` writes one every
`checkpoint_every` steps), where "epoch" is the unfinished epoch and "batches" the
batches of it already trained.

Everything in it is a tensor or a plain Python value, so it loads with
`torch.load(weights_only=True)`: opening a checkpoint never runs code.
Writes go through `qanas.utils.io.atomic_write` (temp file in the same folder,
fsync, rename), so a crash never leaves a half-written `supernet.pt`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from qanas.errors import CheckpointError
from qanas.utils.io import atomic_write

FORMAT = "qanas-supernet/1"
REQUIRED_KEYS = ("format", "space", "num_classes", "image_size", "dataset", "model", "epoch",
                 "config", "history")
META_KEYS = ("space", "num_classes", "image_size", "dataset", "epoch", "step", "qat",
             "quant_spec", "history", "config")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Writes `payload` to `path` atomically (temp file in the same folder, fsync, rename).

    Args:
        path: destination file, e.g. `runs/x/supernet.pt`.
        payload: the checkpoint dict; "format" is set to "qanas-supernet/1" if absent.

    Returns:
        The path written.
    """
    payload = dict(payload)
    payload.setdefault("format", FORMAT)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    return atomic_write(path, lambda f: f.write(data))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Reads and validates a qanas supernet checkpoint.

    Args:
        path: a file written by `save_checkpoint` / `qanas train-supernet`.
        map_location: where tensors are loaded.

    Returns:
        The payload dict.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, not a qanas
            checkpoint, or of an unknown format version; the message names the
            path, the problem and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; train one with `qanas train-supernet --out DIR` "
            f"(it writes DIR/supernet.pt) or fix the path"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was not written by "
                              f"qanas, whose writes are atomic. Re-copy it or retrain")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: "
            f"{_first_line(exc)}). qanas writes checkpoints atomically, so this usually "
            f"means an interrupted copy or download: copy the file again, or retrain with "
            f"`qanas train-supernet`"
        ) from exc
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(
            f"{path} is a torch file but not a qanas supernet checkpoint (no 'format' key); "
            f"pass a supernet.pt written by `qanas train-supernet`. A MobileNetV2 state dict "
            f"goes to `--init-from` instead"
        )
    if payload["format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {payload['format']!r}; this qanas reads "
            f"{FORMAT!r}. Use the qanas version that wrote it, or retrain"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the keys {missing}; it is damaged or "
                              f"was not written by qanas. Retrain with `qanas train-supernet`")
    return payload


def checkpoint_meta(payload: dict[str, Any]) -> dict[str, Any]:
    """The descriptive part of a payload (space, classes, image size, dataset, epoch, ...)."""
    return {key: payload.get(key) for key in META_KEYS}


def load_supernet(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Rebuilds the trained supernet stored at `path`.

    The supernet is built from the stored space name and class count; for a QAT
    checkpoint it is prepared with `qanas.quant.qat.prepare_supernet_qat` and the
    stored `QuantSpec` before the weights are loaded.

    Args:
        path: a checkpoint written by `qanas train-supernet`.
        map_location: where tensors are loaded.

    Returns:
        `(supernet, meta)`, the supernet in eval mode with `max_config` active, and
        meta = {space, num_classes, image_size, dataset, epoch, step, qat, quant_spec,
        history, config}.

    Raises:
        CheckpointError: see `load_checkpoint`, or weights that do not fit the space's supernet.

    Example:
        >>> supernet, meta = load_supernet("runs/sq/supernet.pt")  # doctest: +SKIP
        >>> supernet.set_active(supernet.space.resolve("seed"))  # doctest: +SKIP
    """
    from qanas.space import get_space
    from qanas.supernet import build_supernet

    payload = load_checkpoint(path, map_location)
    space = get_space(payload["space"])
    supernet = build_supernet(space, int(payload["num_classes"]))
    if payload.get("qat"):
        from qanas.train.qat import prepare_qat

        supernet = prepare_qat(supernet, payload.get("quant_spec"))
    load_model_state(supernet, payload["model"], source=str(path))
    supernet.to(map_location)
    supernet.set_active(space.max_config())
    supernet.eval()
    return supernet, checkpoint_meta(payload)


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """`model.load_state_dict(state)` (strict) raising `CheckpointError` that names what does not fit.

    Torch's own strict check is used rather than comparing against
    `model.state_dict()`: Brevitas quantizers that initialise from runtime
    statistics only list their learned scales in `state_dict()` once initialised,
    yet load them from a checkpoint.
    """
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        if len(detail) > 600:
            detail = detail[:600] + " ..."
        raise CheckpointError(
            f"the weights in {source} do not fit the supernet built from its space ({detail}). "
            f"The space definition changed since training; retrain with `qanas train-supernet`"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"
