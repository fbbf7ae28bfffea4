"""The synthetic dataset: determinism, splits, class coverage, sizes and the factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qanas.data import DATASETS, build_dataset, list_datasets
from qanas.data.synthetic import CLASS_NAMES, generate_scene
from qanas.errors import ConfigError
from targets.registry import UnknownNameError


def test_registry_lists_all_datasets():
    assert set(list_datasets()) == {"synthetic", "cityscapes", "voc", "ade20k"}
    assert list(DATASETS) == list_datasets()


def test_sample_types_shapes_and_normalization():
    ds = build_dataset("synthetic", "train", image_size=(48, 80), length=3)
    image, mask = ds[1]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 48, 80)
    assert mask.dtype == torch.int64 and tuple(mask.shape) == (48, 80)
    assert ds.num_classes == len(CLASS_NAMES) == 6
    assert ds.ignore_index == 255
    assert int(mask.min()) >= 0 and int(mask.max()) < ds.num_classes
    # Normalized with ImageNet statistics: roughly zero-centred, not in [0, 1].
    assert image.min() < 0 < image.max()
    raw, _ = ds.load_raw(1)
    mean, std = torch.tensor(ds.mean)[:, None, None], torch.tensor(ds.std)[:, None, None]
    expected = (torch.from_numpy(raw).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(image, expected)


def test_same_seed_split_index_gives_identical_scenes():
    a = build_dataset("synthetic", "train", image_size=(32, 64), seed=3, length=4)
    b = build_dataset("synthetic", "train", image_size=(32, 64), seed=3, length=4)
    for i in range(4):
        ia, ma = a[i]
        ib, mb = b[i]
        assert torch.equal(ia, ib) and torch.equal(ma, mb)
    # Reading out of order or twice changes nothing.
    assert torch.equal(a[2][1], a[2][1]) and torch.equal(a[2][0], b[2][0])


def test_seed_split_and_index_each_change_the_scene():
    base = generate_scene((32, 64), seed=0, split_code=0, index=0)[1]
    others = [generate_scene((32, 64), 1, 0, 0)[1], generate_scene((32, 64), 0, 1, 0)[1],
              generate_scene((32, 64), 0, 0, 1)[1]]
    for other in others:
        assert not np.array_equal(base, other)


def test_every_class_appears_and_background_does_not_swamp():
    ds = build_dataset("synthetic", "val", image_size=(32, 64), length=12)
    counts = np.zeros(ds.num_classes, dtype=np.int64)
    for i in range(len(ds)):
        counts += np.bincount(ds[i][1].numpy().ravel(), minlength=ds.num_classes)
    share = counts / counts.sum()
    assert (counts > 0).all(), f"classes missing: {share}"
    assert 0.4 < share[0] < 0.9, f"background share {share[0]:.2f}"
    assert share[1:].min() > 0.01


def test_scene_is_the_same_at_every_size():
    small = generate_scene((32, 64), 0, 0, 5)[1]
    large = generate_scene((64, 128), 0, 0, 5)[1]
    # Downsample the large mask by picking one pixel per 2x2 block; the
    # geometry is defined in fractions of the image, so most pixels agree.
    agree = (large[1::2, 1::2] == small).mean()
    assert agree > 0.95


def test_classes_are_not_separable_by_mean_colour_alone():
    # The generator must make the network use texture and shape: the per-object
    # mean colours of different classes overlap, checked with a nearest-centroid
    # classifier on pixel colour that must stay far from perfect.
    colours, labels = [], []
    for i in range(16):
        image, mask = generate_scene((32, 64), 0, 0, i)
        colours.append(image.reshape(-1, 3).astype(np.float64))
        labels.append(mask.ravel())
    x, y = np.concatenate(colours), np.concatenate(labels)
    centroids = np.stack([x[y == c].mean(0) for c in range(len(CLASS_NAMES))])
    pred = np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    per_class_recall = [(pred[y == c] == c).mean() for c in range(len(CLASS_NAMES))]
    assert np.mean(per_class_recall) < 0.7


def test_default_lengths_and_options():
    assert len(build_dataset("synthetic", "train")) == 512
    assert len(build_dataset("synthetic", "val")) == 128
    ds = build_dataset("synthetic", "val", length=5, objects=(0, 0))
    assert (ds[0][1] == 0).all()  # no objects: all background
    assert ds.to_dict()["length"] == 5
    with pytest.raises(IndexError, match="out of range"):
        ds[5]


@pytest.mark.parametrize("kwargs, match", [
    ({"split": "test"}, "valid splits: train, val"),
    ({"image_size": (0, 64)}, "positive"),
    ({"image_size": (32,)}, "two integers"),
    ({"root": "/data"}, "reads no files"),
    ({"length": 0}, "positive integer"),
])
def test_bad_options_raise_config_errors(kwargs, match):
    args = {"split": "train", **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_dataset("synthetic", **args)


def test_unknown_dataset_name_lists_known_ones():
    known = "known datasets: ade20k, cityscapes, synthetic, voc"
    with pytest.raises(UnknownNameError, match=known):
        build_dataset("cityscape", "train")


def test_augmented_samples_vary_with_sample_seed_only():
    ds = build_dataset("synthetic", "train", image_size=(32, 64), length=2, augment=True)
    assert torch.equal(ds[(0, 7)][0], ds[(0, 7)][0])
    draws = {ds[(0, s)][1].numpy().tobytes() for s in range(6)}
    assert len(draws) > 1
