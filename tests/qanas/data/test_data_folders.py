"""Folder datasets on tiny Cityscapes / VOC / ADE20K trees written here with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qanas.data import build_dataset
from qanas.data.palette import color_map
from qanas.errors import DatasetError

H, W = 8, 16


def _image(path: Path, seed: int, fmt: str = "PNG") -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt, quality=100)
    return pixels


def _label_png(path: Path, ids: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8), mode="L")
    if palette:
        img = img.convert("P")
        img.putpalette(color_map().ravel().tolist())
        img.putdata(ids.ravel().tolist())
    img.save(path)


def _ids(values: list[int]) -> np.ndarray:
    """An H x W mask cycling through `values` column by column."""
    cols = np.array(values * (W // len(values) + 1))[:W]
    return np.broadcast_to(cols, (H, W)).copy()


# Cityscapes label ids → train ids, a mix of evaluated and void ids.
CITY_IDS = [0, 7, 8, 11, 26, 33, 6, 34]
CITY_TRAIN = [255, 0, 1, 2, 13, 18, 255, 255]


def make_cityscapes(root: Path, split: str = "train") -> None:
    for k, (city, name) in enumerate([("aachen", "aachen_000000_000019"),
                                      ("bremen", "bremen_000001_000019")]):
        _image(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", k)
        _label_png(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png",
                   _ids(CITY_IDS))


def make_voc(root: Path) -> None:
    names = ["2007_000032", "2007_000033", "2008_000001"]
    for k, name in enumerate(names):
        _image(root / "JPEGImages" / f"{name}.jpg", k, fmt="JPEG")
        _label_png(root / "SegmentationClass" / f"{name}.png", _ids([0, 15, 20, 255]),
                   palette=True)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("\n".join(names[:2]) + "\n")
    (sets / "val.txt").write_text(names[2] + "\n")


def make_ade20k(root: Path) -> None:
    for sub, names in (("training", ["ADE_train_00000001", "ADE_train_00000002"]),
                       ("validation", ["ADE_val_00000001"])):
        for k, name in enumerate(names):
            _image(root / "images" / sub / f"{name}.jpg", k, fmt="JPEG")
            _label_png(root / "annotations" / sub / f"{name}.png", _ids([0, 1, 2, 150]))


def _mask_of(ds, index: int = 0) -> np.ndarray:
    return ds[index][1].numpy()


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    make_cityscapes(tmp_path)
    ds = build_dataset("cityscapes", "train", image_size=(H, W), root=tmp_path)
    assert len(ds) == 2 and ds.num_classes == 19
    assert [p.parent.name for p, _ in ds.pairs] == ["aachen", "bremen"]
    np.testing.assert_array_equal(_mask_of(ds), _ids(CITY_TRAIN))
    image, mask = ds[1]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, H, W)
    assert mask.dtype == torch.int64


def test_cityscapes_image_is_read_exactly(tmp_path):
    make_cityscapes(tmp_path)
    ds = build_dataset("cityscapes", "train", image_size=(H, W), root=tmp_path)
    raw, _ = ds.load_raw(0)
    expected = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(raw, expected)


def test_cityscapes_resizes_to_the_requested_size(tmp_path):
    make_cityscapes(tmp_path)
    ds = build_dataset("cityscapes", "train", image_size=(4, 8), root=tmp_path)
    image, mask = ds[0]
    assert tuple(image.shape) == (3, 4, 8) and tuple(mask.shape) == (4, 8)
    assert set(np.unique(mask.numpy())) <= set(CITY_TRAIN)


def test_voc_reads_palette_indices_and_keeps_border_ignore(tmp_path):
    make_voc(tmp_path / "VOCdevkit" / "VOC2012")
    # The root may be the folder holding VOCdevkit/.
    ds = build_dataset("voc", "train", image_size=(H, W), root=tmp_path)
    assert len(ds) == 2 and ds.num_classes == 21
    assert build_dataset("voc", "val", image_size=(H, W), root=tmp_path).pairs[0][0].stem == \
        "2008_000001"
    np.testing.assert_array_equal(_mask_of(ds), _ids([0, 15, 20, 255]))


def test_voc_rgb_masks_are_mapped_back_through_the_palette(tmp_path):
    make_voc(tmp_path)
    ids = _ids([0, 15, 20, 255])
    rgb = color_map()[ids]
    rgb[0, 0] = (1, 2, 3)  # a colour outside the palette → ignore
    Image.fromarray(rgb).save(tmp_path / "SegmentationClass" / "2007_000032.png")
    expected = ids.copy()
    expected[0, 0] = 255
    ds = build_dataset("voc", "train", image_size=(H, W), root=tmp_path)
    np.testing.assert_array_equal(_mask_of(ds), expected)


def test_voc_rejects_out_of_range_class_ids(tmp_path):
    make_voc(tmp_path)
    _label_png(tmp_path / "SegmentationClass" / "2007_000032.png", _ids([0, 42]))
    ds = build_dataset("voc", "train", image_size=(H, W), root=tmp_path)
    with pytest.raises(DatasetError, match=r"2007_000032\.png.*\[42\]"):
        ds[0]


def test_ade20k_maps_zero_to_ignore_and_shifts_classes(tmp_path):
    make_ade20k(tmp_path / "ADEChallengeData2016")
    ds = build_dataset("ade20k", "train", image_size=(H, W), root=tmp_path)
    assert len(ds) == 2 and ds.num_classes == 150
    assert ds.class_names[0] == "wall" and ds.class_names[149] == "flag"
    np.testing.assert_array_equal(_mask_of(ds), _ids([255, 0, 1, 149]))
    assert len(build_dataset("ade20k", "val", image_size=(H, W), root=tmp_path)) == 1


def test_missing_mask_names_the_path(tmp_path):
    make_cityscapes(tmp_path)
    missing = tmp_path / "gtFine" / "train" / "bremen" / "bremen_000001_000019_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(DatasetError, match="bremen_000001_000019_gtFine_labelIds.png.*missing"):
        build_dataset("cityscapes", "train", image_size=(H, W), root=tmp_path)


def test_missing_voc_image_names_the_path_and_list(tmp_path):
    make_voc(tmp_path)
    (tmp_path / "JPEGImages" / "2007_000033.jpg").unlink()
    with pytest.raises(DatasetError, match=r"2007_000033\.jpg.*train\.txt"):
        build_dataset("voc", "train", image_size=(H, W), root=tmp_path)


def test_unreadable_image_names_the_path(tmp_path):
    make_ade20k(tmp_path)
    bad = tmp_path / "images" / "training" / "ADE_train_00000002.jpg"
    bad.write_bytes(b"this is not a jpeg")
    ds = build_dataset("ade20k", "train", image_size=(H, W), root=tmp_path)
    ds[0]  # the good one still loads
    with pytest.raises(DatasetError, match=r"cannot read image .*ADE_train_00000002\.jpg"):
        ds[1]


def test_truncated_mask_names_the_path(tmp_path):
    make_cityscapes(tmp_path)
    mask = tmp_path / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    mask.write_bytes(mask.read_bytes()[:20])
    ds = build_dataset("cityscapes", "train", image_size=(H, W), root=tmp_path)
    with pytest.raises(DatasetError, match="cannot read mask .*aachen_000000_000019"):
        ds[0]


def test_mask_of_the_wrong_size_is_reported(tmp_path):
    make_ade20k(tmp_path)
    _label_png(tmp_path / "annotations" / "training" / "ADE_train_00000001.png",
               np.zeros((H, W + 1), dtype=np.uint8))
    ds = build_dataset("ade20k", "train", image_size=(H, W), root=tmp_path)
    with pytest.raises(DatasetError, match="17x8 but image .*16x8"):
        ds[0]


@pytest.mark.parametrize("name, make, expected", [
    ("cityscapes", make_ade20k, "leftImg8bit"),
    ("voc", make_cityscapes, "JPEGImages"),
    ("ade20k", make_voc, "annotations"),
])
def test_unknown_layout_explains_the_expected_one(tmp_path, name, make, expected):
    make(tmp_path)
    with pytest.raises(DatasetError, match=f"unknown {name} layout") as info:
        build_dataset(name, "train", image_size=(H, W), root=tmp_path)
    assert expected in str(info.value) and str(tmp_path) in str(info.value)


@pytest.mark.parametrize("name", ["cityscapes", "voc", "ade20k"])
def test_missing_root_is_a_dataset_error(tmp_path, name):
    with pytest.raises(DatasetError, match="needs a root folder"):
        build_dataset(name, "train", image_size=(H, W))
    with pytest.raises(DatasetError, match="is not a directory"):
        build_dataset(name, "train", image_size=(H, W), root=tmp_path / "nope")


def test_empty_split_is_a_dataset_error(tmp_path):
    make_cityscapes(tmp_path, split="val")
    (tmp_path / "leftImg8bit" / "train").mkdir()
    with pytest.raises(DatasetError, match="no train images found"):
        build_dataset("cityscapes", "train", image_size=(H, W), root=tmp_path)
