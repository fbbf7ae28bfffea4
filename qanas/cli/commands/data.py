"""`qanas data-preview`: draw a grid of samples and their masks, report class shares.

Shows what the network will see: each tile is an image after the dataset's
transforms (denormalized) above its mask in the VOC palette (the light border
colour marks ignored pixels); a legend names the classes present.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from qanas.cli.command import Command

_PNG = "preview.png"
_COLUMNS = 4
_GAP = 4


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="synthetic", help="dataset name (default: synthetic)")
    parser.add_argument("--data-root", default=None,
                        help="dataset folder (needed by cityscapes, voc, ade20k)")
    parser.add_argument("--split", default="val", help="split to preview (default: val)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128),
                        metavar=("H", "W"), help="sample size (default: 64 128)")
    parser.add_argument("--n", type=int, default=8, help="number of samples (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="dataset / augmentation seed")
    parser.add_argument("--augment", action="store_true", help="show training augmentation")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier preview")


def _legend(class_ids: list[int], names: tuple[str, ...], width: int) -> np.ndarray:
    """A white strip with one colour swatch and name per class id."""
    from qanas.data import colorize

    font = ImageFont.load_default()
    row_h, swatch = 14, 10
    entries = [(i, names[i] if i < len(names) else "ignore") for i in class_ids]
    widths = [swatch + 6 + int(font.getlength(label)) + 12 for _, label in entries]
    rows, x = 1, 0
    for w in widths:
        if x and x + w > width:
            rows, x = rows + 1, 0
        x += w
    strip = Image.new("RGB", (width, rows * row_h + 4), "white")
    draw = ImageDraw.Draw(strip)
    x, y = 0, 2
    for (cid, label), w in zip(entries, widths, strict=True):
        if x and x + w > width:
            x, y = 0, y + row_h
        colour = tuple(int(c) for c in colorize(np.array([[cid]]))[0, 0])
        draw.rectangle([x + 2, y + 1, x + 2 + swatch, y + 1 + swatch], fill=colour,
                       outline="black")
        draw.text((x + swatch + 6, y), label, fill="black", font=font)
        x += w
    return np.asarray(strip)


def _run(args: argparse.Namespace) -> dict:
    from qanas.data import build_dataset, colorize, denormalize
    from qanas.errors import ConfigError
    from qanas.utils.io import atomic_write, prepare_output_dir, write_run_metadata

    if args.n <= 0:
        raise ConfigError(f"--n must be a positive number of samples; got {args.n}")
    dataset = build_dataset(args.data, args.split, tuple(args.image_size), root=args.data_root,
                            seed=args.seed, augment=args.augment)
    out = prepare_output_dir(args.out, args.force, marker=_PNG)
    n = min(args.n, len(dataset))
    h, w = dataset.image_size
    cols = min(_COLUMNS, n)
    rows = -(-n // cols)
    tile_h, tile_w = 2 * h + _GAP, w + _GAP
    grid = np.full((rows * tile_h, cols * tile_w, 3), 255, dtype=np.uint8)
    counts = np.zeros(256, dtype=np.int64)
    for k in range(n):
        image, mask = dataset[k]
        m = mask.numpy()
        counts += np.bincount(m.ravel(), minlength=256)
        y, x = (k // cols) * tile_h, (k % cols) * tile_w
        grid[y:y + h, x:x + w] = denormalize(image, dataset.mean, dataset.std)
        grid[y + h:y + 2 * h, x:x + w] = colorize(m)
    present = [int(i) for i in np.flatnonzero(counts)]
    picture = np.concatenate([grid, _legend(present, dataset.class_names, grid.shape[1])], 0)

    def write(f: io.BufferedIOBase) -> None:
        Image.fromarray(picture).save(f, format="PNG")

    path = atomic_write(out / _PNG, write)
    labelled = counts[:dataset.num_classes].sum()
    share = {name: (float(counts[i] / labelled) if labelled else 0.0)
             for i, name in enumerate(dataset.class_names)}
    result = {
        "path": str(path),
        "dataset": args.data,
        "split": args.split,
        "n": n,
        "image_size": [h, w],
        "num_classes": dataset.num_classes,
        "class_pixel_share": share,
        "ignore_share": float(counts[dataset.ignore_index] / counts.sum()),
    }
    write_run_metadata(out, {"command": "data-preview", "dataset": dataset.to_dict(),
                             "n": n, "result": result}, args.seed)
    return result


COMMAND = Command("data-preview",
                  "draw a PNG grid of dataset samples and masks; report class pixel shares",
                  _add_arguments, _run)
